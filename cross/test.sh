#!/usr/bin/env bash
# Runs the worker's tests for an ARM target on this x86 machine, under qemu-user-static.
#
#   cross/test.sh TRIPLE            # e.g. aarch64-unknown-linux-gnu, aarch64-unknown-linux-musl
#
# 1. Under qemu (cargo's runner from cross/config.toml), built for TRIPLE:
#    - cropscode-core, cropscode-runtime, cropscode-orchestrator: all their unit, integration
#      and doc tests (real sockets on loopback, a real TLS WebSocket round trip with a private
#      CA, real system figures; none needs a container engine);
#    - the unit tests of cropscode-engine-api and cropscode-engine (--lib) and of the cropscode
#      binary (--bins): their integration tests need Docker/Podman or spawn the binary, which a
#      qemu'd test cannot (no binfmt_misc here).
# 2. End to end: the release `cropscode` for TRIPLE (cross/build.sh's, built if missing), run
#    under qemu, against the local orchestrator running natively on x86: the integration tests
#    of tests/ listed in E2E_TESTS, with CROPSCODE_BIN pointing at a qemu wrapper.
#
# CROSS_PREPARE=0 skips cross/prepare.sh; CROSS_E2E=0 skips part 2; CROSS_TEST_SCOPE=quick
# limits part 1 to core and runtime (CI does that for musl, the gnu run covering the rest).
set -euo pipefail
# shellcheck source=cross/env.sh
. "$(dirname "$0")/env.sh"

# tests/tests/* that need no container engine: registration with real figures, TLS with a
# private CA, heartbeats, reconnects, bad frames, replay, half-open detection. Left out:
# wrong_token_retries_only_at_cap and accept_and_drop_does_not_hot_loop count attempts in fixed
# wall-clock windows (7.5 s) and miss the last one when emulation runs late on a loaded
# machine; the backoff schedule itself runs under qemu above (core's session_backoff tests,
# hand-made time) and natively in tests/run.
E2E_TESTS=(
    registers_with_real_values
    connects_over_tls_with_private_ca
    heartbeats_at_configured_interval
    answers_bad_frames_and_stays_connected
    replays_result_for_resent_command_id
    reconnects_after_orchestrator_restart
    refuses_plain_ws_to_remote_host
    detects_half_open_connection
)

[ "$#" -eq 1 ] || die "usage: cross/test.sh TRIPLE (e.g. aarch64-unknown-linux-gnu)"
triple=$1
arch=$(target_arch "$triple") || die "unknown target $triple"
[ "${CROSS_PREPARE:-1}" = 0 ] || "$CROSS_DIR/prepare.sh" "$arch"
why=$(target_missing "$triple")
[ -z "$why" ] || die "$triple: cannot build here: $why"

if [ "${CROSS_TEST_SCOPE:-full}" = quick ]; then
    # CI's second libc: the core and the runtime (sockets, TLS, threads, DNS, system figures:
    # what differs between libcs), the rest of the code being the same as the gnu build's.
    say "$triple: core and runtime tests under $(target_qemu "$triple")"
    cross_cargo "$triple" test --no-fail-fast -p cropscode-core -p cropscode-runtime
else
    say "$triple: core, runtime and orchestrator tests under $(target_qemu "$triple")"
    cross_cargo "$triple" test --no-fail-fast -p cropscode-core -p cropscode-runtime -p cropscode-orchestrator

    say "$triple: unit tests of the engine client, the worker engine and the CLI under $(target_qemu "$triple")"
    cross_cargo "$triple" test --no-fail-fast -p cropscode-engine-api -p cropscode-engine --lib
    cross_cargo "$triple" test --no-fail-fast -p cropscode --bins
fi

[ "${CROSS_E2E:-1}" != 0 ] || exit 0

bin="$CROSS_TARGET_ROOT/dist/cropscode-$triple"
if [ ! -x "$bin" ] || [ -n "$(find "$ROOT" -path "$ROOT/target" -prune -o -newer "$bin" \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit)" ]; then
    CROSS_PREPARE=0 "$CROSS_DIR/build.sh" "$triple"
fi

# The wrapper the tests start as "the cropscode binary": exec, so signals (SIGTERM from the
# tests) reach qemu, which passes them to the ARM process.
wrapper="$(target_dir "$triple")/cropscode-under-qemu"
mapfile -t runner < <(target_runner "$triple")
{
    echo '#!/bin/sh'
    printf 'exec'
    for word in "${runner[@]}" "$bin"; do printf " '%s'" "$word"; done
    printf ' "$@"\n'
} >"$wrapper"
chmod +x "$wrapper"
"$wrapper" --version

say "$triple: end to end: the ARM release binary (qemu) against the x86 local orchestrator"
args=()
for t in "${E2E_TESTS[@]}"; do args+=(--test "$t"); done
# The host's own toolchain and target dir: in CI tests/run has built all of this already.
# std::env::consts::ARCH of the ARM build, which the worker reports and the tests expect.
case "$triple" in
aarch64-*) bin_arch=aarch64 ;;
arm*) bin_arch=arm ;;
esac
(cd "$ROOT" && CROPSCODE_BIN="$wrapper" CROPSCODE_BIN_ARCH="$bin_arch" cargo test --locked --no-fail-fast -p cropscode-tests "${args[@]}")
