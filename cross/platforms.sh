#!/usr/bin/env bash
# Windows and macOS, checked here on Linux (issue 7; see cross/README.md, "Windows and macOS"):
#   1. type-checks the workspace (libraries and binaries) for every platform the worker promises
#      but this machine cannot run: x86_64-pc-windows-gnu, x86_64-pc-windows-msvc,
#      aarch64-apple-darwin, x86_64-apple-darwin, so every #[cfg(windows)] / #[cfg(unix)] /
#      #[cfg(target_os = "macos")] branch is compiled by rustc;
#   2. builds a real Windows binary (x86_64-pc-windows-gnu, linked by mingw-w64):
#      target/platform-x86_64-pc-windows-gnu/x86_64-pc-windows-gnu/debug/cropscode.exe
#   3. with PLATFORMS_WINE=1, runs that .exe under Wine (Debian's wine64).
#
#   cross/platforms.sh                  # all of the above but Wine
#   cross/platforms.sh check            # only the four checks
#   cross/platforms.sh build            # only the windows-gnu build
#   cross/platforms.sh check TRIPLE...  # some checks
#
# Debian's rustc-web (1.96) with -Zbuild-std (std from rust-web-src: Debian has no prebuilt std
# for these targets), one target dir per triple (target/platform-<triple>). ring's C code is
# compiled by mingw-w64 gcc (windows-gnu), clang-cl + cross/platform-stubs/msvc (msvc) and clang
# + cross/platform-stubs/apple (Apple): the stubs are for type-checking only. msvc and Apple
# cannot link here (no Windows SDK, no macOS SDK), so they are checked, not built.
# CROSS_PREPARE=0 skips the package step; CROSS_JOBS=N limits cargo's parallelism.
set -euo pipefail
# shellcheck source=cross/env.sh
. "$(dirname "$0")/env.sh"

CHECK_TARGETS=(x86_64-pc-windows-gnu x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-apple-darwin)
BUILD_TARGET=x86_64-pc-windows-gnu
STUBS=$CROSS_DIR/platform-stubs
LLVM=/usr/lib/llvm-14/bin

platform_dir() { echo "$ROOT/target/platform-$1"; }

# Debian's clang-14 ships no `clang-cl`; clang picks its MSVC-compatible driver from the name it
# is called by, and cc-rs picks its MSVC flag syntax from the name too: a symlink does both.
clang_cl() {
    local bin="$ROOT/target/platform-tools/bin"
    if [ ! -x "$bin/clang-cl" ]; then
        mkdir -p "$bin"
        ln -sf "$LLVM/clang" "$bin/clang-cl"
    fi
    echo "$bin/clang-cl"
}

# platform_cargo TRIPLE SUBCOMMAND [ARGS...]: Debian's cargo for TRIPLE with -Zbuild-std, the
# triple's own target dir, and the C toolchain ring's build script needs for it.
platform_cargo() {
    local triple=$1 sub=$2 t
    shift 2
    t=${triple//-/_}
    # No debug info and no incremental state: a check needs neither, and five target dirs of
    # them would cost gigabytes on a shared disk.
    local -a envs=(RUSTC_BOOTSTRAP=1 "CARGO_TARGET_DIR=$(platform_dir "$triple")"
        CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_DEV_BUILD_OVERRIDE_DEBUG=0)
    local -a args=(--target "$triple" --locked -Zbuild-std=std,panic_abort)
    [ -n "$CROSS_JOBS" ] && args+=(-j "$CROSS_JOBS")
    case "$triple" in
    x86_64-pc-windows-gnu)
        envs+=("CC_$t=x86_64-w64-mingw32-gcc" "AR_$t=x86_64-w64-mingw32-ar"
            "$(target_env "$triple" LINKER)=x86_64-w64-mingw32-gcc")
        ;;
    x86_64-pc-windows-msvc)
        # clang-cl (cc-rs sees an MSVC-like compiler by its name); no SDK: the stub <stdlib.h>
        # declares the _byteswap_* intrinsics ring uses, RING_CORE_NOSTDLIBINC drops <string.h>.
        envs+=("CC_$t=$(clang_cl)" "AR_$t=$LLVM/llvm-lib"
            "CFLAGS_$t=-I$STUBS/msvc -DRING_CORE_NOSTDLIBINC=1")
        ;;
    *-apple-darwin)
        # clang without the macOS SDK: clang's own freestanding headers, the stub
        # TargetConditionals.h, RING_CORE_NOSTDLIBINC for the rest.
        local cflags="-nostdlibinc -I$STUBS/apple -DRING_CORE_NOSTDLIBINC=1"
        [ "$triple" = x86_64-apple-darwin ] && cflags+=" -ffreestanding"
        envs+=("CC_$t=$LLVM/clang" "AR_$t=$LLVM/llvm-ar" "CFLAGS_$t=$cflags")
        ;;
    *) die "unknown target $triple" ;;
    esac
    (cd "$ROOT" && env "${envs[@]}" nice "$CARGO_BIN" "$sub" "${args[@]}" "$@")
}

started=$SECONDS
timings=()
step() {
    local name=$1 t=$SECONDS
    shift
    say "$name"
    "$@"
    timings+=("$(printf '%-48s %5d s' "$name" $((SECONDS - t)))")
}

check() {
    local triple
    for triple in "$@"; do
        # cropscode-tests is the Linux integration harness (Docker/Podman over Unix sockets).
        step "check $triple" platform_cargo "$triple" check --workspace --exclude cropscode-tests
    done
}

build() {
    step "build $BUILD_TARGET (cropscode.exe)" platform_cargo "$BUILD_TARGET" build -p cropscode --bin cropscode
    local exe
    exe="$(platform_dir "$BUILD_TARGET")/$BUILD_TARGET/debug/cropscode.exe"
    [ -f "$exe" ] || die "no $exe"
    file "$exe" 2>/dev/null || ls -l "$exe"
}

# The .exe under Debian's Wine (wine64), in a private prefix under target/: --version must print
# the version; `status --offline` with a fleet-mode agent.yaml (AGENT_CONFIG, a Windows path)
# must show the file's values with their source.
wine_run() {
    local exe wine prefix dir out
    exe="$(platform_dir "$BUILD_TARGET")/$BUILD_TARGET/debug/cropscode.exe"
    [ -f "$exe" ] || die "no $exe (cross/platforms.sh build)"
    wine=$(command -v wine64 || command -v wine || true)
    [ -z "$wine" ] && [ -x /usr/lib/wine/wine64 ] && wine=/usr/lib/wine/wine64
    [ -n "$wine" ] || die "no wine64 (cross/prepare-platforms.sh wine)"
    dir="$ROOT/target/platform-wine"
    prefix="$dir/prefix"
    mkdir -p "$dir"
    export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    say "wine: cropscode.exe --version"
    out=$("$wine" "$exe" --version | tr -d '\r')
    echo "$out"
    case "$out" in cropscode\ *) ;; *) die "wine: unexpected --version output" ;; esac
    say "wine: cropscode.exe status --offline (AGENT_CONFIG=agent.yaml)"
    cat >"$dir/agent.yaml" <<'YAML'
agent_mode: fleet
orchestrator_ws_url: wss://orchestrator.example.invalid/worker
worker_name: wine-box
heartbeat_interval: 7s
YAML
    out=$(AGENT_CONFIG="Z:${dir//\//\\}\\agent.yaml" "$wine" "$exe" status --offline 2>&1 | tr -d '\r') ||
        die "wine: status failed: $out"
    echo "$out"
    grep -q "wine-box" <<<"$out" || die "wine: status did not show the file's WORKER_NAME"
}

mode=${1:-all}
[ "$#" -gt 0 ] && shift
if [ "${CROSS_PREPARE:-1}" != 0 ]; then
    step "prepare (apt)" "$CROSS_DIR/prepare-platforms.sh" $([ "${PLATFORMS_WINE:-0}" = 1 ] && echo wine)
fi
case "$mode" in
all)
    check "${CHECK_TARGETS[@]}"
    build
    if [ "${PLATFORMS_WINE:-0}" = 1 ]; then step "wine" wine_run; fi
    ;;
check)
    [ "$#" -gt 0 ] || set -- "${CHECK_TARGETS[@]}"
    check "$@"
    ;;
build) build ;;
wine) step "wine" wine_run ;;
*)
    echo "usage: $0 [all|check [TRIPLE...]|build|wine]" >&2
    exit 2
    ;;
esac

say "cross/platforms.sh: passed in $((SECONDS - started)) s"
printf '%s\n' "${timings[@]}"
