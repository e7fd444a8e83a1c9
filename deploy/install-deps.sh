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
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
else
        echo "install-deps: all packages present"
fi
