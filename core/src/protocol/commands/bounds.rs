//! The bounds every command parameter is checked against at decode time.
//!
//! These are the per-field limits of `docs/protocol.md` § Limits; the
//! frame-level limits (frame size, nesting, string length) live in
//! [`crate::protocol::Limits`] and apply first. A value outside a bound makes
//! the command fail with `invalid_request` before anything reaches an engine.

/// Longest container id or name, volume name, session id, exec id or tenant, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest image reference (`registry/name:tag@digest`), in bytes.
pub const MAX_IMAGE_REF_BYTES: usize = 512;
/// Longest path (in a container, on the host, or in a build context), in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most arguments in a command vector (`command`, `entrypoint`).
pub const MAX_ARGS: usize = 1024;
/// Longest single argument, in bytes.
pub const MAX_ARG_BYTES: usize = 128 * 1024;
/// Most entries in an environment map (`env`) or in `buildArgs`.
pub const MAX_ENV_ENTRIES: usize = 256;
/// Longest environment variable (or build argument) name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Longest environment variable (or build argument) value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 128 * 1024;
/// Most entries in `labels`.
pub const MAX_LABELS: usize = 64;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY_BYTES: usize = 256;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 4096;
/// Label keys with this prefix are the worker's own (managed, worker, tenant) and cannot be set by a command.
pub const RESERVED_LABEL_PREFIX: &str = "cropscode.";
/// Most files in `container.setup` `files` or in `image.build` `context`.
pub const MAX_FILES: usize = 256;
/// Most entries in `ports`.
pub const MAX_PORTS: usize = 64;
/// Most entries in `mounts`.
pub const MAX_MOUNTS: usize = 64;
/// Most entries in `devices`.
pub const MAX_DEVICES: usize = 32;
/// Most entries in each of `capAdd` and `capDrop`.
pub const MAX_CAPABILITIES: usize = 64;
/// Most entries in `securityOpt`.
pub const MAX_SECURITY_OPTS: usize = 32;
/// Longest `securityOpt` entry, in bytes.
pub const MAX_SECURITY_OPT_BYTES: usize = 4096;
/// Most entries in `sysctls`.
pub const MAX_SYSCTLS: usize = 64;
/// Longest short option value (`user`, `networkMode`, namespace modes, sysctl keys and values, git ref, signal), in bytes.
pub const MAX_OPTION_BYTES: usize = 256;
/// Longest git repository URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest git credential, in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;
/// Longest `images.list` filter, in bytes.
pub const MAX_FILTER_BYTES: usize = 512;

/// Fewest CPUs a container may be limited to (`resources.cpus`).
pub const MIN_CPUS: f64 = 0.01;
/// Most CPUs a container may be given (`resources.cpus`).
pub const MAX_CPUS: f64 = 1024.0;
/// Smallest memory limit the engines accept (`resources.memoryBytes`): 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// Largest memory limit (`resources.memoryBytes`): 16 TiB.
pub const MAX_MEMORY_BYTES: u64 = 16 << 40;
/// Largest `resources.pidsLimit` (Linux's own maximum pid count).
pub const MAX_PIDS_LIMIT: u32 = 4_194_304;

/// Longest `timeoutMs` of `container.exec`: 24 hours.
pub const MAX_EXEC_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// `timeoutMs` of `container.exec` when none is given: 10 minutes.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Longest `graceMs` of `container.stop` and `container.exec.background.kill`: 10 minutes.
pub const MAX_GRACE_MS: u64 = 10 * 60 * 1000;
/// `graceMs` of `container.stop` when none is given: 10 seconds.
pub const DEFAULT_STOP_GRACE_MS: u64 = 10_000;
/// Largest `maxOutputBytes` of `container.exec` (per stream) and `maxBytes` of a capture: 4 MiB.
pub const MAX_OUTPUT_BYTES: u32 = 4 * 1024 * 1024;
/// `maxOutputBytes` of `container.exec` when none is given (per stream): 1 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: u32 = 1024 * 1024;
/// `maxBytes` of `container.exec.background.capture` when none is given: 64 KiB.
pub const DEFAULT_CAPTURE_BYTES: u32 = 64 * 1024;
/// Longest `stdin` of `container.exec` and `data` of `terminal.input`, in bytes: 64 KiB.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Longest `dockerfile` of `image.build`, in bytes: 256 KiB.
pub const MAX_DOCKERFILE_BYTES: usize = 256 * 1024;
/// Deepest `repo.depth` of a shallow clone.
pub const MAX_CLONE_DEPTH: u32 = 1_000_000;

/// Smallest terminal width or height.
pub const MIN_TERMINAL_SIZE: u16 = 1;
/// Largest terminal width or height.
pub const MAX_TERMINAL_SIZE: u16 = 1000;
/// Terminal width when none is given.
pub const DEFAULT_COLS: u16 = 80;
/// Terminal height when none is given.
pub const DEFAULT_ROWS: u16 = 24;
/// Shell started by `terminal.open` when no `command` is given.
pub const DEFAULT_SHELL: &str = "/bin/sh";
/// VNC port `display.open` connects to when none is given.
pub const DEFAULT_DISPLAY_PORT: u16 = 5900;

/// Largest file `mode` (permission and setuid/setgid/sticky bits).
pub const MAX_FILE_MODE: u32 = 0o7777;
/// File `mode` when none is given (`0o644`).
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Directory `container.setup` clones into when no `targetDir` is given.
pub const DEFAULT_TARGET_DIR: &str = "/workspace";
