#!/bin/sh
# install-deps.sh: install every Debian package husk's build, tests, guest kit, disk image and demo need.
# Idempotent: packages already present are left alone. Needs root (or sudo). python3 and
# python3-yaml are build tools: proto/schema_gen.py makes C and Python tables from proto/schema.yaml;
# they are also all the cloud-hypervisor double (tests/ch_double) needs besides qemu-system-x86.
set -eu

PACKAGES="
build-essential pkg-config clang clang-format
libczmq-dev libzmq3-dev libmsgpack-dev libyaml-dev libcivetweb-dev libsqlite3-dev
libjansson-dev libcurl4-openssl-dev libsystemd-dev libcmocka-dev libsodium-dev libssl-dev openssl curl
qemu-system-x86 qemu-utils busybox-static kmod cpio xz-utils
iproute2 procps socat nftables libnftables-dev wrk
debootstrap dosfstools mtools fdisk e2fsprogs systemd-boot-efi ovmf
python3 python3-yaml
python3-pytest python3-pytest-xdist python3-zmq python3-msgpack python3-requests
zsh fish
prometheus
containerd runc umoci util-linux docker.io
"

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

missing=
for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
        echo "install-deps: installing:$missing"
        $SUDO apt-get update -q
        # Daemons come as packages (containerd, docker.io) only for the tests, which start their own
        # privately: a policy-rc.d keeps the packages from starting (and enabling) system-wide ones.
        policy=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
                printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
                $SUDO chmod 755 /usr/sbin/policy-rc.d
                policy=1
        fi
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
        [ -z "$policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
else
        echo "install-deps: all packages present"
fi
