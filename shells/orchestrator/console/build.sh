#!/usr/bin/env bash
# Builds the console page's committed assets, dist/, from src/ and the pinned npm packages
# (package.json + package-lock.json): `npm ci`, then plain copies. No bundler, no minifier:
# the page is ES modules, and the xterm.js files are the packages' own ESM builds.
#
#   build.sh           rebuild dist/ (commit the result)
#   build.sh --check   fail if dist/ differs from what src/ and the pinned packages give
#
# dist/ is committed so that `cargo run -p cropscode -- dev` needs no npm step; the server
# embeds it with include_bytes! (cargo feature `console`). API.md is the page/server contract.
set -euo pipefail
cd "$(dirname "$0")"

check=false
case "${1:-}" in
    --check) check=true ;;
    "") ;;
    *) echo "usage: build.sh [--check]" >&2; exit 2 ;;
esac

# The lock file's integrity hashes pin every byte; `npm ci` installs exactly that (again only
# when package-lock.json changed: a stamp holds its hash).
stamp=node_modules/.cropscode-lock.sha256
sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(<"$stamp") != "$sum" ]]; then
    if ! npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null; then
        echo "build.sh: npm ci failed (is the npm registry reachable?)" >&2
        exit 1
    fi
    printf '%s\n' "$sum" >"$stamp"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The packages' ESM builds, renamed .js, without their source-map comment (no maps are served).
strip_map() { sed '/^\/\/# sourceMappingURL=/d' "$1" >"$2"; }
cp src/index.html src/app.js src/style.css "$out/"
strip_map node_modules/@xterm/xterm/lib/xterm.mjs "$out/xterm.js"
strip_map node_modules/@xterm/addon-fit/lib/addon-fit.mjs "$out/addon-fit.js"
cp node_modules/@xterm/xterm/css/xterm.css "$out/xterm.css"

if $check; then
    if ! diff -r "$out" dist >/dev/null 2>&1; then
        echo "build.sh --check: shells/orchestrator/console/dist/ differs from what src/ and the pinned packages give:" >&2
        diff -r "$out" dist | head -n 20 >&2 || true
        echo "run shells/orchestrator/console/build.sh and commit dist/" >&2
        exit 1
    fi
    echo "console dist/ is up to date ($(cat dist/* | wc -c) bytes)"
else
    rm -rf dist
    mkdir dist
    cp "$out"/* dist/
    echo "wrote dist/: $(cat dist/* | wc -c) bytes"
    ls -l dist | tail -n +2
fi
