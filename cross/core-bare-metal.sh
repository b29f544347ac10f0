#!/usr/bin/env bash
# Proves the sans-I/O core is truly no_std + alloc: builds cropscode-core without default
# features for a bare-metal target (no operating system, no std at all), with core and alloc
# compiled from Debian's rust-web-src (-Zbuild-std=core,alloc). A dependency that quietly pulls
# in std fails this build, whereas the host's `--no-default-features` build would still pass.
#
#   cross/core-bare-metal.sh [TRIPLE]     # default thumbv7em-none-eabihf (Cortex-M4F/M7F)
set -euo pipefail
# shellcheck source=cross/env.sh
. "$(dirname "$0")/env.sh"

triple=${1:-thumbv7em-none-eabihf}
[ "${CROSS_PREPARE:-1}" = 0 ] || "$CROSS_DIR/prepare.sh" none
[ -d /usr/lib/rustlib/src/rust/library/core ] || die "no rust-web-src (run cross/prepare.sh)"
say "cropscode-core, no default features, for bare-metal $triple"
cross_cargo "$triple" build -p cropscode-core --no-default-features
