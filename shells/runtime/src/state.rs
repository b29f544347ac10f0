//! The worker's registration state, `worker.json`, and the atomic file write
//! it (and the CLI's `credentials.json`) relies on.
//!
//! [`Agent`](crate::Agent) reads the previous `workerId` before it starts, so
//! the worker announces it in `worker.register`, and rewrites the file on every
//! `worker.registered`. Readers (e.g. `cropscode status`) see the old or the new
//! content, never a torn one: the bytes go to a temporary file in the same
//! directory, are synced, then renamed over the old file.
//!
//! ```text
//! worker.json ──read_worker_state──► Register.worker_id ──► orchestrator
//!      ▲                                                        │
//!      └─────────── write_worker_state ◄── Event::Registered ◄──┘
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The file name of the registration state.
pub const WORKER_STATE_FILE: &str = "worker.json";

/// `worker.json`: what the orchestrator said when the worker last registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerState {
    /// The id the orchestrator gave this worker.
    pub worker_id: String,
    /// The name it registered with.
    pub name: String,
    /// When, in Unix seconds.
    pub registered_at: u64,
}

impl WorkerState {
    /// The state of a registration happening now.
    pub fn now(worker_id: impl Into<String>, name: impl Into<String>) -> WorkerState {
        let registered_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        WorkerState { worker_id: worker_id.into(), name: name.into(), registered_at }
    }
}

/// Reads `worker.json`. A damaged file is reported, not fatal: it is state the
/// worker rewrites at its next registration.
pub fn read_worker_state(path: &Path) -> Result<Option<WorkerState>, String> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `worker.json` atomically (temporary file + rename).
pub fn write_worker_state(path: &Path, state: &WorkerState) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes, 0o644)
}

/// Replaces `path` with `bytes` so that readers see the old or the new content,
/// never a torn one. The temporary file is created with `mode` (unix), so a
/// secret is never briefly readable by others.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path.file_name().ok_or_else(|| io::Error::other("not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = open_new(&tmp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and parents) with mode 0700 on unix when it does not exist.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn open_new(path: &Path, mode: u32) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_state_round_trip() {
        let dir = std::env::temp_dir().join(format!("cropscode-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join(WORKER_STATE_FILE);
        assert_eq!(read_worker_state(&path), Ok(None));
        let state = WorkerState { worker_id: "w-1".into(), name: "pi".into(), registered_at: 1_700_000_000 };
        write_worker_state(&path, &state).unwrap();
        assert_eq!(read_worker_state(&path), Ok(Some(state)));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"workerId\": \"w-1\",\n  \"name\": \"pi\",\n  \"registeredAt\": 1700000000\n}\n");
        fs::write(&path, "{").unwrap();
        assert!(read_worker_state(&path).unwrap_err().contains("worker.json"));
        let _ = fs::remove_dir_all(&dir);
    }
}
