#!/usr/bin/env bash
# What CI runs for the ARM builds (called by .ci/run after tests/run):
#   1. Debian packages for arm64 (cross/prepare.sh; nothing to do when already there);
#   2. release builds of aarch64 gnu and static musl, with the size report and the 4 MiB budget;
#   3. the qemu test subset (cross/test.sh): everything for gnu, core + runtime for musl, and
#      for both the ARM release binary against the x86 local orchestrator;
#   4. the core built for a bare-metal target (truly no_std).
# Cold on 2 cores this takes about 20 minutes (see cross/README.md); the builds go to
# target/cross/<triple>, so a second run is incremental.
set -euo pipefail
# shellcheck source=cross/env.sh
. "$(dirname "$0")/env.sh"

started=$SECONDS
timings=()
step() {
    local name=$1 t=$SECONDS
    shift
    "$@"
    timings+=("$(printf '%-44s %5d s' "$name" $((SECONDS - t)))")
}

step "prepare (apt: arm64)" "$CROSS_DIR/prepare.sh" arm64
export CROSS_PREPARE=0
step "release builds + size report" "$CROSS_DIR/build.sh" aarch64-unknown-linux-gnu aarch64-unknown-linux-musl
step "tests under qemu: aarch64-unknown-linux-gnu" "$CROSS_DIR/test.sh" aarch64-unknown-linux-gnu
step "tests under qemu: aarch64-unknown-linux-musl" env CROSS_TEST_SCOPE=quick "$CROSS_DIR/test.sh" aarch64-unknown-linux-musl
step "core on bare metal (thumbv7em-none-eabihf)" "$CROSS_DIR/core-bare-metal.sh"

say "cross/ci.sh: passed in $((SECONDS - started)) s"
printf '%s\n' "${timings[@]}"
