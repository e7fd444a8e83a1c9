#!/bin/bash
# build-image.sh: build a bootable raw disk image (GPT, EFI system partition, ext4 root) of
# Debian 12 with cloud-init (NoCloud), husk-agent and a page on port 8080 showing /etc/husk/env.
#
#   deploy/image/build-image.sh --out FILE --agent PATH [--cache DIR] [--size BYTES]
#
# Everything comes from Debian packages through debootstrap, from the mirror this machine's apt
# sources name. No loop device, no mount, no root file system of the host touched: the root
# file system is made with `mkfs.ext4 -d DIR`, the ESP with mkfs.vfat + mtools, and both are
# copied into the raw file at the offsets sfdisk wrote into its GPT. The .debs stay in
# DIR/debs (default: next to FILE), so a rebuild downloads nothing.
#
# Boot: OVMF finds EFI/BOOT/BOOTX64.EFI (the removable path, no NVRAM entry needed), which is
# a unified kernel image: systemd's EFI stub with the kernel, its initramfs and the command
# line in one PE file. No boot menu, no timeout, no file system driver in the firmware beyond
# FAT: the fastest path from firmware to kernel we measured under TCG.
set -euo pipefail

SUITE=bookworm
SIZE=$((2 * 1024 * 1024 * 1024))
ESP_MIB=64
# Fixed identifiers: the kernel finds its root by PARTUUID without asking udev, and the same
# inputs give the same partition table.
DISK_UUID=5f3b1a2e-6c1d-4a57-9d0e-1c2b3a4d5e6f
ESP_UUID=0c8e2d41-7b6a-4f3e-8a1d-2e4f6a8c0b1d
ROOT_UUID=4a7c9e1f-3b5d-4c6e-8f0a-1b2c3d4e5f60
ROOT_FS_UUID=9d8c7b6a-5f4e-4d3c-8b2a-19f0e1d2c3b4
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 # Linux root (x86-64)
STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub

# What the image holds beyond debootstrap's minbase. python3-cffi-backend: cloud-init's
# dependency chain has a virtual package debootstrap cannot resolve on its own. dbus: for
# systemd-logind, which turns the ACPI power button (a graceful stop) into a clean power-off.
PACKAGES=systemd-sysv,udev,dbus,linux-image-cloud-amd64,initramfs-tools,cloud-init,python3-cffi-backend,dosfstools
# The libraries husk's own daemons and CLI link, and nft: the image can run `make install`'s
# output under systemd (tests/integration/test_systemd.py does).
PACKAGES=$PACKAGES,libczmq4,libzmq5,libmsgpackc2,libyaml-0-2,libjansson4,libcurl4,libcivetweb1,libsqlite3-0
PACKAGES=$PACKAGES,libsodium23,libssl3,libnftables1,nftables

usage() {
        echo "usage: $0 --out FILE --agent PATH [--cache DIR] [--size BYTES]" >&2
        exit 2
}

die() {
        echo "build-image: $*" >&2
        exit 1
}

OUT=
AGENT=
CACHE=
while [ $# -gt 0 ]; do
        case "$1" in
        --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
        --agent) [ $# -ge 2 ] || usage; AGENT=$2; shift 2 ;;
        --cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
        --size) [ $# -ge 2 ] || usage; SIZE=$2; shift 2 ;;
        -h|--help) usage ;;
        *) usage ;;
        esac
done
[ -n "$OUT" ] && [ -n "$AGENT" ] || usage
[ -x "$AGENT" ] || die "agent $AGENT is not an executable"
[[ "$SIZE" =~ ^[0-9]+$ ]] && [ "$SIZE" -ge $((1024 * 1024 * 1024)) ] || die "--size wants bytes, at least 1 GiB"
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
for tool in debootstrap sfdisk mkfs.ext4 mkfs.vfat mmd mcopy objcopy dd truncate; do
        command -v $tool >/dev/null || die "$tool not found (deploy/install-deps.sh installs it)"
done
[ -f "$STUB" ] || die "$STUB not found (install systemd-boot-efi)"

BUILD_START=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
[ -n "$CACHE" ] || CACHE=$(dirname "$OUT")/cache
mkdir -p "$CACHE/debs"
CACHE=$(cd "$CACHE" && pwd)

# The temporary tree lives next to the output (same file system, and never a path built from
# an empty variable: mktemp either prints a fresh directory or fails, and set -e stops us).
TMP=$(mktemp -d "$(dirname "$OUT")/.build-image.XXXXXX")
[ -d "$TMP" ] || die "mktemp failed"
cleanup() {
        # debootstrap may have left proc or sys mounted in the tree after a failure.
        for m in proc sys dev/pts dev; do
                mountpoint -q "$TMP/root/$m" 2>/dev/null && umount -l "$TMP/root/$m" || true
        done
        rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT INT TERM

# ---- mirror --------------------------------------------------------------------------------
# The first Debian archive in this machine's apt sources (deb822 or one-line format).
mirror() {
        local f uri
        for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -r "$f" ] || continue
                uri=$(awk -v suite="$SUITE" '
                        /^URIs:/ { uri = $2 }
                        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri !~ /security/) { print uri; exit } }
                        /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == suite) { print $i; exit } } }
                ' "$f")
                if [ -n "$uri" ]; then
                        echo "$uri"
                        return
                fi
        done
        echo http://deb.debian.org/debian
}
MIRROR=${HUSK_IMAGE_MIRROR:-$(mirror)}

# ---- root file system ----------------------------------------------------------------------
R=$TMP/root
echo "build-image: debootstrap $SUITE from $MIRROR"
start=$(date +%s)
debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE/debs" \
        "$SUITE" "$R" "$MIRROR" > "$TMP/debootstrap.log" 2>&1 ||
        { tail -n 30 "$TMP/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
echo "build-image: debootstrap done in $(($(date +%s) - start)) s"

# The host's apt sources are not the guest's business; the guest gets the mirror only.
echo "deb $MIRROR $SUITE main" > "$R/etc/apt/sources.list"

# Each instance gets its own machine id at first boot.
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
echo localhost > "$R/etc/hostname"

cat > "$R/etc/fstab" <<EOF
# The root is mounted read-write by the kernel; no fsck pass at boot (pass 0).
PARTUUID=$ROOT_UUID / ext4 defaults,noatime 0 0
EOF

# cloud-init: NoCloud only (ds-identify stops looking there), networkd renders the network
# config, and only the modules a husk seed uses.
install -m 0644 "$HERE/cloud.cfg" "$R/etc/cloud/cloud.cfg.d/90-husk.cfg"
rm -f "$R/etc/cloud/cloud.cfg.d/90_dpkg.cfg"

# Networking by systemd-networkd, which cloud-init configures from network-config. Nothing in
# the image needs network-online.target, and with no link configured wait-online would hold
# cloud-init for 120 s.
ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /dev/null "$R/etc/systemd/system/systemd-networkd-wait-online.service"
# What a short-lived VM does not need at boot.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        dpkg-db-backup.timer systemd-timesyncd.service; do
        ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# The drop-in husk's seed writes (services/vmm-driver/vmm_seed.c), byte for byte: a guest that
# booted with it needs no daemon-reload after cloud-init wrote the same file (seconds under TCG).
mkdir -p "$R/etc/systemd/system/service.d"
printf '%s\n' "# husk: every service gets the deployment's environment." '[Service]' 'EnvironmentFile=-/etc/husk/env' \
        > "$R/etc/systemd/system/service.d/husk-env.conf"
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$R/etc/systemd/journald.conf.d/husk.conf"

# husk-agent, as deploy/systemd/husk-agent.service says.
install -m 0755 "$AGENT" "$R/usr/local/bin/husk-agent"
strip --strip-debug "$R/usr/local/bin/husk-agent" 2>/dev/null || true
sed 's|@BINDIR@|/usr/local/bin|g' "$HERE/../systemd/husk-agent.service" > "$R/etc/systemd/system/husk-agent.service"
# The page on port 8080.
install -m 0755 "$HERE/husk-envpage.py" "$R/usr/local/bin/husk-envpage"
install -m 0644 "$HERE/husk-envpage.service" "$R/etc/systemd/system/husk-envpage.service"
for u in husk-agent husk-envpage; do
        ln -sf "/etc/systemd/system/$u.service" "$R/etc/systemd/system/multi-user.target.wants/$u.service"
done
# The agent's transports, loaded early: virtio_console for the qemu runtime's husk.agent port,
# vsock rather than on its first socket().
printf 'virtio_console\nvmw_vsock_virtio_transport\n' > "$R/etc/modules-load.d/husk-agent.conf"

# ---- kernel and initramfs ------------------------------------------------------------------
# The smallest initramfs that finds a virtio disk: ext4 is built into the cloud kernel,
# virtio_pci and virtio_blk are not.
KVER=$(ls "$R/lib/modules" | head -n1)
[ -n "$KVER" ] && [ -f "$R/boot/vmlinuz-$KVER" ] || die "no kernel in the image"
printf 'virtio_pci\nvirtio_blk\nvirtio_scsi\n' > "$R/etc/initramfs-tools/modules"
sed -i 's/^MODULES=.*/MODULES=list/' "$R/etc/initramfs-tools/initramfs.conf"
sed -i 's/^COMPRESS=.*/COMPRESS=gzip/' "$R/etc/initramfs-tools/initramfs.conf"
chroot "$R" update-initramfs -u -k "$KVER" > "$TMP/initramfs.log" 2>&1 ||
        { cat "$TMP/initramfs.log" >&2; die "update-initramfs failed"; }

# The unified kernel image. The section addresses are the ones systemd 252's stub expects
# (kernel below 16 MiB at 0x2000000, the initramfs after it).
CMDLINE="root=PARTUUID=$ROOT_UUID rw rootfstype=ext4 console=ttyS0,115200 quiet systemd.show_status=auto"
printf '%s' "$CMDLINE" > "$TMP/cmdline"
[ "$(stat -c %s "$R/boot/vmlinuz-$KVER")" -lt $((16 * 1024 * 1024)) ] || die "kernel larger than the UKI layout allows"
objcopy \
        --add-section .osrel="$R/etc/os-release" --change-section-vma .osrel=0x20000 \
        --add-section .cmdline="$TMP/cmdline" --change-section-vma .cmdline=0x30000 \
        --add-section .linux="$R/boot/vmlinuz-$KVER" --change-section-vma .linux=0x2000000 \
        --add-section .initrd="$R/boot/initrd.img-$KVER" --change-section-vma .initrd=0x3000000 \
        "$STUB" "$TMP/BOOTX64.EFI"

# Caches the image does not need at run time.
rm -rf --one-file-system "$R/var/cache/apt/"*.bin "$R/var/lib/apt/lists/"* "$R/var/log/"*.log "$R/tmp/"*

# ---- partition table -----------------------------------------------------------------------
IMG=$TMP/disk.raw
truncate -s "$SIZE" "$IMG"
ESP_START=2048
ESP_SECTORS=$((ESP_MIB * 2048))
ROOT_START=$((ESP_START + ESP_SECTORS))
sfdisk --quiet "$IMG" <<EOF
label: gpt
label-id: $DISK_UUID
first-lba: 2048
start=$ESP_START, size=$ESP_SECTORS, type=$ESP_TYPE, uuid=$ESP_UUID, name="EFI system partition"
start=$ROOT_START, type=$ROOT_TYPE, uuid=$ROOT_UUID, name="root"
EOF
ROOT_SECTORS=$(sfdisk --dump "$IMG" | awk -v s="$ROOT_START" -F'[=,]' '$0 ~ "start= *" s "," { gsub(/ /, "", $4); print $4 }')
[[ "$ROOT_SECTORS" =~ ^[0-9]+$ ]] || die "cannot read the root partition's size back from sfdisk"

# ---- ESP -----------------------------------------------------------------------------------
ESP=$TMP/esp.img
mkfs.vfat -F 32 -s 1 -n ESP -i 0c8e2d41 -C "$ESP" $((ESP_MIB * 1024)) > /dev/null
mmd -i "$ESP" ::/EFI ::/EFI/BOOT
mcopy -i "$ESP" "$TMP/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
dd if="$ESP" of="$IMG" bs=1M seek=$((ESP_START * 512)) oflag=seek_bytes conv=notrunc,sparse status=none

# ---- root ----------------------------------------------------------------------------------
ROOTFS=$TMP/root.ext4
mkfs.ext4 -q -L root -U "$ROOT_FS_UUID" -E root_owner=0:0 -d "$R" "$ROOTFS" "$((ROOT_SECTORS / 2))k"
dd if="$ROOTFS" of="$IMG" bs=4M seek=$((ROOT_START * 512)) oflag=seek_bytes conv=notrunc,sparse status=none

mv "$IMG" "$OUT"
echo "build-image: $OUT ($KVER, $(du -h "$OUT" | cut -f1) used of $((SIZE / 1024 / 1024)) MiB) in $(($(date +%s) - BUILD_START)) s"
