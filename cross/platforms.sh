#!/usr/bin/env bash
# Windows and macOS, checked here on Linux (see cross/README.md, "Windows and macOS"):
#   1. type-checks the whole workspace (libraries and binaries, the integration harness too) for
#      every platform the worker promises but this machine cannot run: x86_64-pc-windows-gnu,
#      x86_64-pc-windows-msvc, aarch64-apple-darwin, x86_64-apple-darwin, so every
#      #[cfg(windows)] / #[cfg(unix)] / #[cfg(target_os = "macos")] branch is compiled by rustc;
#   2. builds a real Windows binary (x86_64-pc-windows-gnu, linked by mingw-w64):
#      target/platform-x86_64-pc-windows-gnu/x86_64-pc-windows-gnu/debug/cropscode.exe
#   3. with PLATFORMS_WINE=1, runs that .exe under Debian's Wine (wine64) through the cases of
#      wine_run below, then the crates' unit tests built for Windows, also under Wine.
#
#   cross/platforms.sh                  # 1 and 2 (windows-gnu: its build is its check)
#   PLATFORMS_WINE=1 cross/platforms.sh # and 3 (what CI runs)
#   cross/platforms.sh check [TRIPLE...]# only the checks (all four, or those named)
#   cross/platforms.sh build            # only the windows-gnu build
#   cross/platforms.sh wine             # only the .exe under Wine (after build)
#   cross/platforms.sh wine-tests       # only the unit tests under Wine
#
# Debian's rustc-web (1.96) with -Zbuild-std (std from rust-web-src: Debian has no prebuilt std
# for these targets), one target dir per triple (target/platform-<triple>). ring's C code is
# compiled by mingw-w64 gcc (windows-gnu), clang-cl + cross/platform-stubs/msvc (msvc) and clang
# + cross/platform-stubs/apple (Apple): the stubs are for type-checking only. msvc and Apple
# cannot link here (no Windows SDK, no macOS SDK), so they are checked, not built.
# CROSS_PREPARE=0 skips the package step; CROSS_JOBS=N limits cargo's parallelism;
# PLATFORMS_ROOT=DIR puts the target dirs under DIR instead of target/.
set -euo pipefail
# shellcheck source=cross/env.sh
. "$(dirname "$0")/env.sh"

CHECK_TARGETS=(x86_64-pc-windows-gnu x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-apple-darwin)
BUILD_TARGET=x86_64-pc-windows-gnu
STUBS=$CROSS_DIR/platform-stubs
LLVM=/usr/lib/llvm-14/bin

# Where the platform target dirs go (PLATFORMS_ROOT=DIR measures a cold run elsewhere).
PLATFORMS_ROOT=${PLATFORMS_ROOT:-$ROOT/target}
platform_dir() { echo "$PLATFORMS_ROOT/platform-$1"; }

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
    # Which std crates -Zbuild-std builds: std,panic_abort for the checks; std,test for
    # windows-gnu, the set cargo uses for a test build, so that the .exe build and the unit
    # tests share one std and one build of every dependency (with different sets, each
    # rebuilds everything: ~2.5 min of CPU).
    local build_std=std,panic_abort
    [ "$triple" = "$BUILD_TARGET" ] && build_std=std,test
    build_std=${PLATFORM_BUILD_STD-$build_std}
    local -a args=(--target "$triple" --locked "-Zbuild-std${build_std:+=$build_std}")
    [ -n "$CROSS_JOBS" ] && args+=(-j "$CROSS_JOBS")
    case "$triple" in
    x86_64-pc-windows-gnu)
        envs+=("CC_$t=x86_64-w64-mingw32-gcc" "AR_$t=x86_64-w64-mingw32-ar"
            "$(target_env "$triple" LINKER)=x86_64-w64-mingw32-gcc")
        # `cargo test` runs the test programs under Wine (wine_setup has set WINE).
        [ -n "${WINE:-}" ] && envs+=("$(target_env "$triple" RUNNER)=$WINE")
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
        # Every crate, the integration harness (cropscode-tests) included: its unix-socket
        # parts are gated, and what is left must compile everywhere.
        step "check $triple" platform_cargo "$triple" check --workspace
    done
}

# Builds every crate's libraries and binaries for windows-gnu: cropscode.exe, and a superset
# of that target's check (so `all` does not check it separately).
build() {
    step "build $BUILD_TARGET (workspace, cropscode.exe)" platform_cargo "$BUILD_TARGET" build --workspace
    local exe
    exe="$(platform_dir "$BUILD_TARGET")/$BUILD_TARGET/debug/cropscode.exe"
    [ -f "$exe" ] || die "no $exe"
    file "$exe" 2>/dev/null || ls -l "$exe"
}

# --- Wine -----------------------------------------------------------------------------------
# The .exe under Debian's Wine 8.0 (wine64), in a private prefix under target/platform-wine.
# Each case runs the real binary and fails the script when its exit code or output is not the
# one a Windows user must see. What runs and what does not: cross/README.md.
WINE_DIR=$PLATFORMS_ROOT/platform-wine
EXE=$(platform_dir "$BUILD_TARGET")/$BUILD_TARGET/debug/cropscode.exe

wine_setup() {
    WINE=$(command -v wine64 || command -v wine || true)
    [ -z "$WINE" ] && [ -x /usr/lib/wine/wine64 ] && WINE=/usr/lib/wine/wine64
    [ -n "$WINE" ] || die "no wine64 (cross/prepare-platforms.sh wine)"
    WINESERVER=$(command -v wineserver || true)
    [ -z "$WINESERVER" ] && [ -x /usr/lib/wine/wineserver64 ] && WINESERVER=/usr/lib/wine/wineserver64
    # No Gecko/Mono prompts, no debug channels, no crash dialog (a crash is an exit code).
    export WINEPREFIX=$WINE_DIR/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=;winedbg.exe=d"
    mkdir -p "$WINE_DIR"
    local sys=$WINEPREFIX/drive_c/windows/system32
    if [ ! -f "$sys/kernel32.dll" ]; then
        say "wine: new prefix $WINEPREFIX"
        "$WINE" wineboot --init >/dev/null 2>&1 || true
        [ -n "$WINESERVER" ] && "$WINESERVER" -w
        [ -f "$sys/kernel32.dll" ] || die "wine: wineboot did not create $WINEPREFIX"
    fi
    # One wineserver for all the cases (wine_done stops it), started with its output away
    # from any pipe: it and Wine's helper processes (services, winedevice) inherit the
    # descriptors of whoever starts them, and a pipe reader would wait for them.
    # A wineserver an aborted earlier run left behind would make `-p` fail: end it first.
    if [ -n "$WINESERVER" ]; then
        "$WINESERVER" -k >/dev/null 2>&1 || true
        "$WINESERVER" -p </dev/null >/dev/null 2>&1
    fi
    # Rust's std needs ProcessPrng from bcryptprimitives.dll, which Wine 8.0 lacks: a stand-in
    # built from cross/wine/ (see there), in this prefix only.
    local dll=$WINE_DIR/bcryptprimitives.dll src=$CROSS_DIR/wine/bcryptprimitives
    if [ ! -f "$dll" ] || [ "$src.c" -nt "$dll" ] || [ "$src.def" -nt "$dll" ]; then
        x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" "$src.c" "$src.def" -ladvapi32
    fi
    cmp -s "$dll" "$sys/bcryptprimitives.dll" || cp "$dll" "$sys/bcryptprimitives.dll"
}

# Stops the wineserver wine_setup started, and with it Wine's helper processes.
wine_done() {
    if [ -n "$WINESERVER" ]; then "$WINESERVER" -k 2>/dev/null || true; fi
}

# wine_case WHAT WANT_RC [VAR=VALUE...] -- ARGS...: runs the .exe under Wine; the exit code must
# be WANT_RC ("any" for any). The output (stdout + stderr, CR removed) is left in WINE_OUT.
wine_case() {
    local what=$1 want=$2 rc=0 t=$SECONDS
    shift 2
    local -a envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    say "wine: $what"
    # Into a file, not a pipe: Wine's helper processes keep inherited descriptors open.
    env "${envs[@]}" timeout "${WINE_TIMEOUT:-60}" "$WINE" "$EXE" "$@" >"$WINE_DIR/out" 2>&1 </dev/null || rc=$?
    WINE_OUT=$(tr -d '\r' <"$WINE_DIR/out")
    printf '%s\n' "$WINE_OUT" | grep -v '^\(0x\| r\|	\)' | head -40 | sed 's/^/    /'
    [ "$want" = any ] || [ "$rc" = "$want" ] || die "wine: $what: exit code $rc, expected $want"
    WINE_CASE=$what
    WINE_TIMES+=("$(printf '  %-58s %3d s' "$what" $((SECONDS - t)))")
}

# wine_has ERE...: the last case's output matches every pattern.
wine_has() {
    local p
    for p in "$@"; do
        grep -qE -- "$p" <<<"$WINE_OUT" || die "wine: $WINE_CASE: no line matches /$p/"
    done
}

# A path under target/ as Windows sees it (Wine maps / to drive Z:).
winpath() { printf 'Z:%s' "${1//\//\\}"; }

wine_run() {
    [ -f "$EXE" ] || die "no $EXE (cross/platforms.sh build)"
    wine_setup
    WINE_TIMES=()
    local dir=$WINE_DIR/cases
    rm -rf "$dir"
    mkdir -p "$dir"

    wine_case "--version" 0 -- --version
    wine_has '^cropscode [0-9]+\.[0-9]+\.[0-9]+'

    # Fleet mode from an agent.yaml named by AGENT_CONFIG (a Windows path): values and their
    # sources, the fleet DATA_DIR under %ProgramData%, discovery finding no engine pipe.
    cat >"$dir/agent.yaml" <<'YAML'
orchestrator_ws_url: wss://orchestrator.example.invalid/worker
worker_name: wine-box
heartbeat_interval: 7s
YAML
    local yaml
    yaml=$(winpath "$dir/agent.yaml")
    wine_case "status --offline, fleet agent.yaml" 0 AGENT_CONFIG="$yaml" -- status --offline
    wine_has 'AGENT_MODE +fleet' \
        'WORKER_NAME +wine-box +\(file Z:\\.*\\agent\.yaml, key worker_name\)' \
        'HEARTBEAT_INTERVAL +7s +\(file ' \
        'DATA_DIR +C:\\ProgramData\\cropscode +\(default\)' \
        'no engine socket found'

    # Precedence: the flag beats the environment, which beats the file.
    wine_case "status --offline, flag > environment > file" 0 AGENT_CONFIG="$yaml" WORKER_NAME=from-env \
        HEARTBEAT_INTERVAL=3s -- status --offline --name from-flag
    wine_has 'WORKER_NAME +from-flag +\(flag --name\)' 'HEARTBEAT_INTERVAL +3s +\(environment\)'

    # Bad values stop it with exit code 2, naming the key and its source.
    wine_case "a bad environment value" 2 AGENT_CONFIG="$yaml" LIVENESS_TIMEOUT=abc -- status --offline
    wine_has "LIVENESS_TIMEOUT \(environment\): expected a duration like 45s, got 'abc'"
    printf 'worker_nmae: typo\n' >"$dir/typo.yaml"
    wine_case "an unknown key in agent.yaml" 2 AGENT_CONFIG="$(winpath "$dir/typo.yaml")" -- status --offline
    wine_has "typo\.yaml.*unknown key 'worker_nmae'"

    # BYOM: login writes ~\.cropscode\credentials.json in the Windows profile (HOME, a unix
    # path under Wine, is not a Windows home); status reads the token from it and never prints it.
    local token=tok_WINE_s3cret_0123456789abcdef
    printf '%s\n' "$token" >"$dir/token"
    wine_case "logout (clean start)" 0 -- logout
    wine_case "login --token-file" 0 -- login --url wss://orchestrator.example.invalid/worker \
        --token-file "$(winpath "$dir/token")"
    wine_has 'C:\\users\\[^\\]+\\\.cropscode\\credentials\.json'
    wine_case "status --offline, BYOM" 0 -- status --offline
    wine_has 'AGENT_MODE +byom' \
        'WORKER_TOKEN +set +\(file C:\\users\\[^\\]+\\\.cropscode\\credentials\.json, key token\)' \
        'DATA_DIR +C:\\users\\[^\\]+\\(AppData\\Local|Local Settings\\Application Data)\\cropscode +\(default\)'
    if grep -q "$token" <<<"$WINE_OUT"; then die "wine: status printed the token"; fi
    wine_case "logout" 0 -- logout

    # The whole worker: `dev` runs a local orchestrator and a worker connected to it over a
    # loopback WebSocket. Wine 8.0 aborts the process at the first CPU-usage refresh after
    # registration (sysinfo → pdh.dll PdhEnumObjectsW, unimplemented in Wine), so the check
    # is the registration round trip, logged by both ends before that refresh.
    WINE_TIMEOUT=30 wine_case "dev: a worker registers with a local orchestrator" any -- dev --http-port 0 --log-level info
    wine_has 'cropscode_orchestrator::connection: worker registered' \
        'cropscode_core::session: registered with the orchestrator worker_id=w-1'

    # The Windows service, through Wine's service control manager (services.exe): install
    # registers it (CreateServiceW, recovery actions) and starts it; the SCM starts
    # `cropscode.exe service run …`, which enters the dispatcher and runs the worker (retrying
    # an orchestrator that is not there: no registration, so no sysinfo refresh, see above);
    # stop sends SERVICE_CONTROL_STOP, answered with the SIGTERM drain, written to the
    # service's log file; uninstall deletes it.
    wine_case "service run outside the SCM" 2 -- service run
    wine_has 'started by the service control manager'
    local svc=$dir/service
    mkdir -p "$svc"
    printf 'orchestrator_ws_url: ws://127.0.0.1:9/worker\nworker_token: %s\n' "$token" >"$svc/agent.yaml"
    local svc_env=(AGENT_CONFIG="$(winpath "$svc/agent.yaml")" DATA_DIR="$(winpath "$svc/data")")
    wine_case "service install --dry-run" 0 "${svc_env[@]}" -- service install --dry-run
    wine_has 'sc\.exe create cropscode binPath= ".*cropscode\.exe.* service run --mode fleet --config ' \
        'sc\.exe failure cropscode reset= 86400 actions= restart/2000/restart/2000/restart/10000'
    if grep -q "$token" <<<"$WINE_OUT"; then die "wine: the service command line holds the token"; fi
    wine_case "service install (create + start)" 0 "${svc_env[@]}" -- service install
    sleep 2
    wine_case "service status: running" 0 -- service status
    wine_has '^cropscode: running'
    wine_case "service stop: the SIGTERM drain" 0 -- service stop
    WINE_OUT=$(tr -d '\r' <"$svc/data/logs/worker.log" 2>/dev/null || true)
    WINE_CASE="the service's log file"
    wine_has 'stop requested by the service control manager' 'worker stopped'
    wine_case "service uninstall" 0 -- service uninstall
    wine_case "service status: not installed" 1 -- service status
    wine_has 'not installed'

    wine_done
    say "wine: every case passed"
    printf '%s\n' "${WINE_TIMES[@]}"
}

# The unit tests (--lib --bins) of every crate but the Linux integration harness, built for
# windows-gnu and run under Wine by cargo's runner. None is skipped.
wine_tests() {
    wine_setup
    platform_cargo "$BUILD_TARGET" test --no-fail-fast -p cropscode-core -p cropscode-runtime \
        -p cropscode-engine-api -p cropscode-engine -p cropscode-orchestrator -p cropscode --lib --bins
    wine_done
}

mode=${1:-all}
[ "$#" -gt 0 ] && shift
if [ "${CROSS_PREPARE:-1}" != 0 ]; then
    want=()
    if [ "${PLATFORMS_WINE:-0}" = 1 ] || [ "${mode#wine}" != "$mode" ]; then want=(wine); fi
    step "prepare (apt)" "$CROSS_DIR/prepare-platforms.sh" "${want[@]}"
fi
case "$mode" in
all)
    for t in "${CHECK_TARGETS[@]}"; do
        [ "$t" = "$BUILD_TARGET" ] || check "$t"
    done
    build
    if [ "${PLATFORMS_WINE:-0}" = 1 ]; then
        step "wine: the .exe" wine_run
        step "wine: unit tests" wine_tests
    fi
    ;;
check)
    [ "$#" -gt 0 ] || set -- "${CHECK_TARGETS[@]}"
    check "$@"
    ;;
build) build ;;
wine) step "wine: the .exe" wine_run ;;
wine-tests) step "wine: unit tests" wine_tests ;;
*)
    echo "usage: $0 [all|check [TRIPLE...]|build|wine|wine-tests]" >&2
    exit 2
    ;;
esac

say "cross/platforms.sh: passed in $((SECONDS - started)) s"
printf '%s\n' "${timings[@]}"
