#!/bin/sh
# build-kit.sh: build the guest kit (vmlinux, initrd.gz with husk-agent as /init, demo rootfs).
#
#   deploy/guest/build-kit.sh --out DIR --agent PATH
#
# Everything comes from Debian packages: the kernel through apt (`apt-get download`, the
# versioned linux-image that linux-image-amd64 depends on), busybox from busybox-static.
# The kernel .deb, the extracted vmlinux and the module tree are cached in DIR/cache, so a
# re-run with everything present only repacks the initramfs and never touches apt. Remove
# DIR/cache to move to a newer kernel.
set -eu

# Modules carried in the initramfs, with their dependencies. The agent loads the virtio
# ones at boot and the file systems when a workload needs them. 9p: template clones get their
# image over virtio-9p (a private copy of the template's memory cannot serve vhost-user virtio-fs).
MODULES="virtio_mmio virtio_pci virtio_blk virtio_net virtio_console virtiofs fuse
vmw_vsock_virtio_transport vsock overlay ext4 isofs 9p 9pnet_virtio"

usage() {
        echo "usage: $0 --out DIR --agent PATH" >&2
        exit 2
}

die() {
        echo "build-kit: $*" >&2
        exit 1
}

OUT=
AGENT=
while [ $# -gt 0 ]; do
        case "$1" in
        --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
        --agent) [ $# -ge 2 ] || usage; AGENT=$2; shift 2 ;;
        -h|--help) usage ;;
        *) usage ;;
        esac
done
[ -n "$OUT" ] && [ -n "$AGENT" ] || usage
[ -x "$AGENT" ] || die "agent $AGENT is not an executable"
for tool in dpkg-deb xz cpio gzip depmod modprobe; do
        command -v $tool >/dev/null || die "$tool not found (deploy/install-deps.sh installs it)"
done
BUSYBOX=/bin/busybox
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }
[ -x "$BUSYBOX" ] && file_is_static "$BUSYBOX" || die "$BUSYBOX is not busybox-static"

mkdir -p "$OUT/cache"
OUT=$(cd "$OUT" && pwd)
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
CACHE=$OUT/cache
TMP=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# ---- kernel package ----------------------------------------------------------------------
# The versioned image package linux-image-amd64 points at, e.g. linux-image-6.1.0-56-amd64.
fetch_kernel_deb() {
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
              sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
        if [ -z "$pkg" ]; then
                apt-get update -q >&2
                pkg=$(apt-cache depends linux-image-amd64 |
                      sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
        fi
        [ -n "$pkg" ] || die "cannot find the kernel package linux-image-amd64 depends on"
        echo "build-kit: downloading $pkg through apt" >&2
        # As root apt would drop to its _apt user, which cannot write into our temp dir.
        sandbox=
        [ "$(id -u)" -ne 0 ] || sandbox="-o APT::Sandbox::User=root"
        if ! (cd "$TMP" && apt-get download -q $sandbox "$pkg" >&2); then
                apt-get update -q >&2
                (cd "$TMP" && apt-get download -q $sandbox "$pkg" >&2) || die "apt-get download $pkg failed"
        fi
        deb=$(ls "$TMP"/"$pkg"_*.deb)
        mv "$deb" "$CACHE/"
        basename "$deb" > "$CACHE/kernel-deb"
}

# ---- vmlinux -----------------------------------------------------------------------------
# QEMU's microvm boots an ELF through its PVH entry note; Debian ships a bzImage whose
# payload is that ELF, xz-compressed. Try every xz magic until one decompresses to an ELF.
extract_vmlinux() {
        bz=$1 dst=$2
        for off in $(LC_ALL=C grep -obUaP '\xfd\x37\x7a\x58\x5a\x00' "$bz" | cut -d: -f1); do
                if tail -c +$((off + 1)) "$bz" | xz -dc --single-stream > "$TMP/vmlinux" 2>/dev/null &&
                   [ "$(head -c 4 "$TMP/vmlinux" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
                        if command -v readelf >/dev/null &&
                           ! LC_ALL=C readelf -n "$TMP/vmlinux" | grep -q '(0x00000012)'; then
                                die "vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"
                        fi
                        mv "$TMP/vmlinux" "$dst"
                        return 0
                fi
        done
        die "no xz-compressed ELF found in $bz"
}

# ---- module tree -------------------------------------------------------------------------
# Copy MODULES and their dependencies (modules.dep and softdeps, as kmod's modprobe
# resolves them against the whole package) into $2/lib/modules/$ver, then index that tree.
collect_modules() {
        root=$1 dst=$2 ver=$3
        depmod -b "$root" "$ver"
        mkdir -p "$dst/lib/modules/$ver"
        for m in $MODULES; do
                modprobe -d "$root" -S "$ver" --show-depends "$m" ||
                        die "module $m not found in the kernel package"
        done | awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
                rel=${ko#"$root/lib/modules/$ver/"}
                mkdir -p "$dst/lib/modules/$ver/$(dirname "$rel")"
                case "$ko" in
                *.ko.xz) xz -dc "$ko" > "$dst/lib/modules/$ver/${rel%.xz}" ;;
                *.ko.zst) die "zstd-compressed modules are not supported ($ko)" ;;
                *) cp "$ko" "$dst/lib/modules/$ver/$rel" ;;
                esac
        done
        for f in modules.order modules.builtin modules.builtin.modinfo; do
                [ -e "$root/lib/modules/$ver/$f" ] && cp "$root/lib/modules/$ver/$f" "$dst/lib/modules/$ver/"
        done
        depmod -b "$dst" "$ver"
}

# The module tree is cached with the list it was made from: a longer list re-collects it.
if [ -s "$CACHE/kernel-version" ] && [ -s "$OUT/vmlinux" ] && [ -d "$CACHE/modules" ] &&
   [ "$(cat "$CACHE/modules-list" 2>/dev/null)" = "$(echo $MODULES)" ]; then
        KVER=$(cat "$CACHE/kernel-version")
else
        [ -s "$CACHE/kernel-deb" ] && [ -s "$CACHE/$(cat "$CACHE/kernel-deb")" ] || fetch_kernel_deb
        deb=$CACHE/$(cat "$CACHE/kernel-deb")
        echo "build-kit: extracting $(basename "$deb")"
        dpkg-deb -x "$deb" "$TMP/pkg"
        KVER=$(ls "$TMP/pkg/lib/modules" | head -n1)
        [ -n "$KVER" ] && [ -f "$TMP/pkg/boot/vmlinuz-$KVER" ] || die "unexpected layout in $deb"
        extract_vmlinux "$TMP/pkg/boot/vmlinuz-$KVER" "$OUT/vmlinux.new"
        rm -rf "$CACHE/modules" "$TMP/modules"
        collect_modules "$TMP/pkg" "$TMP/modules" "$KVER"
        cp "$TMP/pkg/boot/config-$KVER" "$CACHE/config"
        mv "$TMP/modules" "$CACHE/modules"
        echo $MODULES > "$CACHE/modules-list"
        mv "$OUT/vmlinux.new" "$OUT/vmlinux"
        echo "$KVER" > "$CACHE/kernel-version"
        rm -rf "$TMP/pkg"
fi

# ---- busybox trees -----------------------------------------------------------------------
# busybox plus one symlink per applet, where busybox itself would install it.
install_busybox() {
        root=$1
        mkdir -p "$root/bin"
        cp "$BUSYBOX" "$root/bin/busybox"
        "$BUSYBOX" --list-full | while read -r applet; do
                case "$applet" in
                */*) ;;
                *) continue ;; # linuxrc: our init is /init
                esac
                [ "$applet" = bin/busybox ] && continue
                mkdir -p "$root/$(dirname "$applet")"
                ln -sf /bin/busybox "$root/$applet"
        done
}

# ---- initramfs ---------------------------------------------------------------------------
if [ ! -s "$OUT/initrd.gz" ] || [ "$AGENT" -nt "$OUT/initrd.gz" ] || [ "$0" -nt "$OUT/initrd.gz" ] ||
   [ "$CACHE/kernel-version" -nt "$OUT/initrd.gz" ]; then
        R=$TMP/initrd
        mkdir -p "$R"
        install_busybox "$R"
        for d in dev proc sys run tmp etc root mnt; do mkdir -p "$R/$d"; done
        chmod 1777 "$R/tmp"
        cp -R "$CACHE/modules/lib" "$R/"
        # Debug info stays in the build tree: the initramfs is unpacked at every boot.
        if ! command -v strip >/dev/null || ! strip --strip-debug -o "$R/init" "$AGENT" 2>/dev/null; then
                cp "$AGENT" "$R/init"
        fi
        chmod 0755 "$R/init"
        # Sorted names, one owner, one mtime and no timestamp in gzip: the same inputs give
        # the same initramfs bytes.
        find "$R" -exec touch -h -d @0 {} +
        (cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
                cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -6 > "$OUT/initrd.gz.new"
        mv "$OUT/initrd.gz.new" "$OUT/initrd.gz"
fi

# ---- demo rootfs -------------------------------------------------------------------------
# The hello deployment's image: a tiny busybox root the agent will run a command in.
H=$OUT/rootfs/hello
if [ ! -x "$H/bin/busybox" ] || ! cmp -s "$BUSYBOX" "$H/bin/busybox"; then
        rm -rf "$H"
        mkdir -p "$TMP/hello"
        install_busybox "$TMP/hello"
        for d in etc proc sys dev tmp; do mkdir -p "$TMP/hello/$d"; done
        chmod 1777 "$TMP/hello/tmp"
        mkdir -p "$OUT/rootfs"
        mv "$TMP/hello" "$H"
fi

echo "build-kit: kernel $KVER"
echo "build-kit: $OUT/vmlinux $OUT/initrd.gz ($(wc -c < "$OUT/initrd.gz") bytes) $H"
