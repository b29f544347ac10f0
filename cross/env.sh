# shellcheck shell=bash
# Shared by the cross/ scripts (sourced, not run). Knows, per target triple, which toolchain
# pieces it needs and how cargo is called for it. See cross/README.md.
#
# Toolchain: Debian's rustc-web (1.96) in /usr/bin, called directly: the rustup proxies that
# come first on PATH stay the host's toolchain (1.95) and are never asked for a target.

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$CROSS_DIR/.." && pwd)
CARGO_BIN=/usr/bin/cargo
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
# Where every cross build goes: one target dir per triple under the workspace's target/, so
# the host's target/debug is never locked by (or rebuilt because of) a cross build.
CROSS_TARGET_ROOT=${CROSS_TARGET_ROOT:-$ROOT/target/cross}
# cargo's parallelism; CI and shared machines may want 1.
CROSS_JOBS=${CROSS_JOBS:-}

# Targets cross/build.sh builds by default, best first. Each must have an entry in
# cross/config.toml (linker, runner) and in target_arch below.
# shellcheck disable=SC2034 # used by the scripts that source this file
SUPPORTED_TARGETS=(
    aarch64-unknown-linux-gnu
    aarch64-unknown-linux-musl
    armv7-unknown-linux-gnueabihf
    armv7-unknown-linux-musleabihf
)

say() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'cross: %s\n' "$*" >&2
    exit 1
}

# Debian architecture whose packages (cross gcc, glibc, musl) a triple uses.
target_arch() {
    case "$1" in
    aarch64-*-linux-*) echo arm64 ;;
    armv7-*-linux-gnueabihf | armv7-*-linux-musleabihf | arm-*-linux-gnueabihf) echo armhf ;;
    *) return 1 ;;
    esac
}

# qemu-user binary for a triple.
target_qemu() {
    case "$1" in
    aarch64-*) echo qemu-aarch64-static ;;
    arm*) echo qemu-arm-static ;;
    *) return 1 ;;
    esac
}

target_dir() { echo "$CROSS_TARGET_ROOT/$1"; }

# Debian ships a prebuilt std for this triple (libstd-rust-web-dev:<arch>)? Otherwise the
# std is compiled from rust-web-src with -Zbuild-std.
has_prebuilt_std() { [ -d "/usr/lib/rustlib/$1/lib" ]; }

# Env var name cargo reads for a triple's setting, e.g. CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS.
target_env() { printf 'CARGO_TARGET_%s_%s' "$(echo "$1" | tr 'a-z.-' 'A-Z__')" "$2"; }

# Static musl builds link against Debian's musl-dev:<arch> and need an unwinder: Rust's own musl
# std ships LLVM's libunwind.a "self-contained", which a -Zbuild-std build lacks, and Debian's
# libgcc_eh.a needs glibc's _dl_find_object. So take libunwind.a out of Debian's
# libunwind-14-dev:<arch> (downloaded, not installed: the per-arch packages conflict with each
# other) plus cross/musl/fortify.c for the one glibc-only symbol it calls. Prints the dir.
musl_support_dir() {
    local triple=$1 arch dir gcc tmp
    arch=$(target_arch "$triple")
    dir="$CROSS_TARGET_ROOT/musl-support/$triple"
    if [ ! -f "$dir/libunwind.a" ] || [ "$CROSS_DIR/musl/fortify.c" -nt "$dir/libunwind.a" ]; then
        gcc=$(musl_gcc "$triple")
        mkdir -p "$dir"
        tmp=$(mktemp -d)
        chmod 777 "$tmp" # apt-get download run as root fetches as user _apt, which must write here
        (cd "$tmp" && apt-get download -qq "libunwind-14-dev:$arch" >/dev/null) ||
            die "cannot download libunwind-14-dev:$arch (run cross/prepare.sh first: it adds the architecture)"
        dpkg-deb --fsys-tarfile "$tmp"/libunwind-14-dev_*.deb |
            tar -x -O ./usr/lib/llvm-14/lib/libunwind.a >"$dir/libunwind-llvm.a"
        rm -rf "$tmp"
        "$gcc" -O2 -c "$CROSS_DIR/musl/fortify.c" -o "$dir/fortify.o"
        rm -f "$dir/libfortify.a"
        "${gcc%-gcc}-ar" rcs "$dir/libfortify.a" "$dir/fortify.o" 2>/dev/null ||
            ar rcs "$dir/libfortify.a" "$dir/fortify.o"
        # A linker script named like the archive rustc asks for (-lunwind).
        printf 'INPUT(%s/libunwind-llvm.a %s/libfortify.a)\n' "$dir" "$dir" >"$dir/libunwind.a"
    fi
    echo "$dir"
}

# Debian's musl-gcc wrapper for a musl triple (from musl-dev:<arch>).
musl_gcc() {
    case "$1" in
    aarch64-*-musl) echo aarch64-linux-musl-gcc ;;
    *-musleabihf) echo arm-linux-musleabihf-gcc ;;
    *) return 1 ;;
    esac
}

# Debian's multiarch directory of musl for a triple (/usr/lib/<it>).
musl_libdir() {
    case "$1" in
    aarch64-*-musl) echo aarch64-linux-musl ;;
    *-musleabihf) echo arm-linux-musleabihf ;;
    *) return 1 ;;
    esac
}

# Tells why a triple cannot be built here (empty when it can).
target_missing() {
    local triple=$1 arch linker
    arch=$(target_arch "$triple") || {
        echo "unknown target"
        return
    }
    if [ ! -x "$CARGO_BIN" ] || [ ! -x "$RUSTC" ]; then
        echo "no Debian rustc-web/cargo-web (run cross/prepare.sh)"
        return
    fi
    linker=$(sed -n "/^\[target\.$triple\]/,/^\[/s/^linker = \"\(.*\)\"/\1/p" "$CROSS_DIR/config.toml")
    [ -n "$linker" ] || {
        echo "no [target.$triple] in cross/config.toml"
        return
    }
    command -v "$linker" >/dev/null || {
        echo "no $linker (run cross/prepare.sh)"
        return
    }
    if ! has_prebuilt_std "$triple" && [ ! -d /usr/lib/rustlib/src/rust/library/std ]; then
        echo "no prebuilt std and no rust-web-src for -Zbuild-std (run cross/prepare.sh)"
        return
    fi
    case "$triple" in
    *-musl*)
        [ -d "/usr/lib/$(musl_libdir "$triple")" ] || echo "no musl-dev:$arch (run cross/prepare.sh)"
        ;;
    esac
}

# cross_cargo TRIPLE SUBCOMMAND [ARGS...]: Debian's cargo for TRIPLE, with cross/config.toml,
# the triple's own target dir, -Zbuild-std when Debian has no prebuilt std for it, and the musl
# link settings. Release builds of -Zbuild-std targets build std with panic_abort (the profile's).
cross_cargo() {
    local triple=$1 sub=$2
    shift 2
    # Tests under qemu need file:line in backtraces, not full debug info: a third of the disk
    # (a full-debuginfo test build of the workspace is 5-8 GB per triple) and faster links.
    local -a envs=("CARGO_TARGET_DIR=$(target_dir "$triple")" CARGO_PROFILE_DEV_DEBUG=line-tables-only) args=(--config "$CROSS_DIR/config.toml" --target "$triple" --locked)
    [ -n "$CROSS_JOBS" ] && args+=(-j "$CROSS_JOBS")
    if ! has_prebuilt_std "$triple"; then
        # -Z flags on a stable rustc: the documented escape hatch, needed for -Zbuild-std only.
        envs+=(RUSTC_BOOTSTRAP=1)
        case "$triple $* " in
        *-none-*) args+=("-Zbuild-std=core,alloc") ;; # bare metal: there is no std
        *" --release "*) args+=("-Zbuild-std=std,panic_abort") ;;
        *) args+=(-Zbuild-std) ;;
        esac
    fi
    case "$triple" in
    *-musl*)
        local dir flags
        dir=$(musl_support_dir "$triple")
        # Link against Debian's musl (the gcc wrapper's specs), not Rust's self-contained crt
        # objects, which a -Zbuild-std sysroot does not have.
        flags="-Clink-self-contained=no -Lnative=$dir"
        envs+=("$(target_env "$triple" RUSTFLAGS)=$flags" "RUSTDOCFLAGS=$flags")
        ;;
    esac
    (cd "$ROOT" && env "${envs[@]}" nice "$CARGO_BIN" "$sub" "${args[@]}" "$@")
}

# The triple's runner from cross/config.toml, one word a line (qemu and, for gnu, the loader).
target_runner() {
    sed -n "/^\[target\.$1\]/,/^\[/s/^runner = \[\(.*\)\]$/\1/p" "$CROSS_DIR/config.toml" |
        sed 's/^"//; s/"$//; s/", "/\n/g'
}
