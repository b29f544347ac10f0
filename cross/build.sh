#!/usr/bin/env bash
# Builds the release `cropscode` binary for the ARM targets and prints a size table.
#
#   cross/build.sh                  # every supported target (cross/env.sh SUPPORTED_TARGETS)
#   cross/build.sh TRIPLE...        # just these
#
# Installs missing Debian packages first (cross/prepare.sh; set CROSS_PREPARE=0 to skip).
# Binaries: target/cross/dist/cropscode-<triple> (stripped by the release profile).
# Fails when a build fails or the stripped aarch64 binary exceeds its budget (4 MiB).
set -euo pipefail
# shellcheck source=cross/env.sh
. "$(dirname "$0")/env.sh"

AARCH64_BUDGET=$((4 * 1024 * 1024))

explicit=1
if [ "$#" -eq 0 ]; then
    explicit=0
    set -- "${SUPPORTED_TARGETS[@]}"
fi

if [ "${CROSS_PREPARE:-1}" != 0 ]; then
    archs=()
    for t in "$@"; do archs+=("$(target_arch "$t")") || die "unknown target $t"; done
    mapfile -t archs < <(printf '%s\n' "${archs[@]}" | sort -u)
    "$CROSS_DIR/prepare.sh" "${archs[@]}"
fi

dist="$CROSS_TARGET_ROOT/dist"
mkdir -p "$dist"
rows=()
failed=0

# What a binary needs at run time: "static", or the dynamic loader and newest glibc symbol.
linkage() {
    local bin=$1 triple=$2 objdump glibc
    if ! file -L "$bin" | grep -q 'dynamically linked'; then
        echo "static"
        return
    fi
    case "$triple" in
    aarch64-*) objdump=aarch64-linux-gnu-objdump ;;
    arm*) objdump=arm-linux-gnueabihf-objdump ;;
    esac
    glibc=$("$objdump" -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)
    echo "dynamic, glibc ${glibc#GLIBC_}+"
}

for triple in "$@"; do
    why=$(target_missing "$triple")
    if [ -n "$why" ]; then
        if [ "$explicit" -eq 1 ] || [ "${triple%%-*}" = aarch64 ]; then
            die "$triple: cannot build here: $why"
        fi
        rows+=("$(printf '%-32s %12s %8s %8s  %s' "$triple" - - - "skipped: $why")")
        continue
    fi
    say "release build: $triple ($(has_prebuilt_std "$triple" && echo "Debian's prebuilt std" || echo "-Zbuild-std"))"
    start=$SECONDS
    if ! cross_cargo "$triple" build --release -p cropscode --bin cropscode; then
        rows+=("$(printf '%-32s %12s %8s %8s  %s' "$triple" - - $((SECONDS - start)) "BUILD FAILED")")
        failed=1
        continue
    fi
    secs=$((SECONDS - start))
    bin="$(target_dir "$triple")/$triple/release/cropscode"
    out="$dist/cropscode-$triple"
    cp "$bin" "$out"
    bytes=$(stat -c %s "$out")
    note=$(linkage "$out" "$triple")
    file -L "$out" | grep -q 'not stripped' && note="$note, NOT STRIPPED" && failed=1
    if [ "${triple%%-*}" = aarch64 ] && [ "$bytes" -gt "$AARCH64_BUDGET" ]; then
        note="$note, OVER THE 4 MiB BUDGET"
        failed=1
    fi
    rows+=("$(printf '%-32s %12s %8s %8s  %s' "$triple" "$bytes" "$(awk -v b="$bytes" 'BEGIN{printf "%.2f", b/1048576}')" "$secs" "$note")")
done

say "stripped release binaries ($dist)"
printf '%-32s %12s %8s %8s  %s\n' target bytes MiB "build s" "runs with"
printf '%s\n' "${rows[@]}"
exit "$failed"
