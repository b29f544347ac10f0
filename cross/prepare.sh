#!/usr/bin/env bash
# Installs what cross/ needs on a Debian 12 (bookworm) amd64 machine, from Debian's packages
# only. Idempotent: when everything is there it returns at once without touching apt.
#
#   cross/prepare.sh            # everything cross/build.sh and cross/test.sh can use
#   cross/prepare.sh arm64      # only what the aarch64 targets (gnu + musl) need (CI)
#   cross/prepare.sh armhf      # only what the 32-bit ARM targets need
#   cross/prepare.sh none       # only the toolchain (bare-metal core check)
#
# Needs root (or sudo). Never downloads a toolchain from outside Debian's archive.
set -euo pipefail

[ "$#" -gt 0 ] || set -- all

# Rust 1.96 from Debian: rustc in /usr/bin, its std source (for -Zbuild-std: musl, ARMv6,
# bare metal), and the x86 std.
base=(rustc-web cargo-web rust-web-src libstd-rust-web-dev qemu-user-static file)
# aarch64: Debian's prebuilt arm64 std, the cross gcc (linker and ring's C code), glibc, and
# musl's arm64 development files for the static musl build.
arm64=(libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl-dev:arm64)
# armv7/ARMv6 hard float: the cross gcc and glibc (amd64 packages); then, each on its own and
# best effort, musl's armhf files (armv7 musl) and Debian's prebuilt armhf std (without it
# cross/build.sh builds the std from rust-web-src).
armhf=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
armhf_optional=(musl-dev:armhf libstd-rust-web-dev:armhf)

archs=()
for want in "$@"; do
    case "$want" in
    all) archs+=(arm64 armhf) ;;
    aarch64 | arm64) archs+=(arm64) ;;
    armv7 | armhf) archs+=(armhf) ;;
    none) ;;
    *)
        echo "usage: $0 [all|arm64|armhf|none]..." >&2
        exit 2
        ;;
    esac
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing() {
    local p
    for p in "$@"; do installed "$p" || printf '%s\n' "$p"; done
}

updated=0
apt_update() {
    # An inconsistent mirror (for one foreign architecture, e.g. armhf's "Mirror sync in
    # progress?") makes apt-get update exit non-zero although the other indexes are fine:
    # tolerate it here, the install step below tells whether what we need is there.
    if ! "${sudo[@]}" apt-get update -qq; then
        echo "cross/prepare.sh: apt-get update reported errors (see above); carrying on" >&2
    fi
    updated=1
}

add_arch() {
    if ! dpkg --print-foreign-architectures | grep -qx "$1"; then
        echo "cross/prepare.sh: dpkg --add-architecture $1"
        "${sudo[@]}" dpkg --add-architecture "$1"
        apt_update # one architecture at a time: a broken armhf index must not hide arm64's
    fi
}

install() { # install [--optional] PACKAGES...
    local optional=0
    if [ "$1" = --optional ]; then
        optional=1
        shift
    fi
    mapfile -t need < <(missing "$@")
    [ "${#need[@]}" -eq 0 ] && return 0
    [ "$updated" -eq 1 ] || apt_update
    echo "cross/prepare.sh: installing ${need[*]}"
    if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"; then
        if [ "$optional" -eq 1 ]; then
            echo "cross/prepare.sh: could not install ${need[*]}; those targets will be skipped" >&2
            return 0
        fi
        return 1
    fi
}

install "${base[@]}"
for a in ${archs[@]+"${archs[@]}"}; do
    add_arch "$a"
    case "$a" in
    arm64) install "${arm64[@]}" ;;
    # armhf is best effort: its index has been inconsistent on the mirror before.
    armhf)
        install "${armhf[@]}"
        for p in "${armhf_optional[@]}"; do install --optional "$p"; done
        ;;
    esac
done

/usr/bin/rustc --version
