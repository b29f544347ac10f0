#!/usr/bin/env bash
# Installs what cross/platforms.sh needs (Windows and macOS type-checks, the windows-gnu build)
# on a Debian 12 (bookworm) amd64 machine, from Debian's packages only. Idempotent: when
# everything is there it returns at once without touching apt.
#
#   cross/prepare-platforms.sh          # toolchain, mingw-w64, clang/lld/llvm 14
#   cross/prepare-platforms.sh wine     # also wine64 (to run the windows-gnu .exe and its tests)
#
# Needs root (or sudo). See cross/README.md, "Windows and macOS".
set -euo pipefail

# Rust 1.96 from Debian and its std source (-Zbuild-std builds every std here: Debian ships no
# prebuilt std for msvc or Apple, and building windows-gnu's std too keeps one way for all).
base=(rustc-web cargo-web rust-web-src)
# windows-gnu: the mingw-w64 gcc compiles ring's C code and links the .exe.
# msvc + Apple: ring's C code is compiled by clang (clang-cl for msvc), archived by llvm-ar /
# llvm-lib; lld-14 provides lld-link, which clang-cl's driver looks for.
tools=(gcc-mingw-w64-x86-64 clang-14 lld-14 llvm-14)
# Wine: Debian's 64-bit loader alone (/usr/lib/wine/wine64; the `wine` package would add the
# /usr/bin wrappers and the 32-bit side, which a 64-bit .exe does not need). Wine 8.0 lacks
# bcryptprimitives.dll: cross/platforms.sh builds a stand-in from cross/wine/ with the
# mingw-w64 gcc above.
wine=(wine64)

want=("${base[@]}" "${tools[@]}")
for a in "$@"; do
    case "$a" in
    wine) want+=("${wine[@]}") ;;
    none) ;;
    *)
        echo "usage: $0 [wine]" >&2
        exit 2
        ;;
    esac
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for p in "${want[@]}"; do installed "$p" || need+=("$p"); done
if [ "${#need[@]}" -gt 0 ]; then
    # A foreign architecture's inconsistent index makes apt-get update exit non-zero although the
    # amd64 indexes are fine (see cross/prepare.sh): tolerate it; the install tells.
    "${sudo[@]}" apt-get update -qq || echo "cross/prepare-platforms.sh: apt-get update reported errors; carrying on" >&2
    echo "cross/prepare-platforms.sh: installing ${need[*]}"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
/usr/bin/rustc --version
