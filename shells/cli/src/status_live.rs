//! `cropscode status`'s view of the running worker: the JSON snapshot the worker
//! serves on `DATA_DIR/worker.sock` (see `cropscode_runtime::health::status_socket`),
//! in a few lines. The socket must belong to the user running `status`: one owned
//! by anybody else is refused, not read (another user's process could pose as the
//! worker). On systems without unix sockets this says so.

use std::path::Path;
#[cfg(unix)]
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(unix)]
use serde_json::Value;

/// The "Running worker" section: its live state, or why there is none to show.
pub fn describe(data_dir: &Path) -> String {
    #[cfg(unix)]
    {
        match ask(data_dir) {
            Ok(snapshot) => show(&snapshot),
            Err(line) => format!("Running worker:       {line}\n"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        "Running worker:       not asked (no worker.sock on this system)\n".into()
    }
}

#[cfg(unix)]
fn ask(data_dir: &Path) -> Result<Value, String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = data_dir.join(cropscode_runtime::health::status_socket::STATUS_SOCKET_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(_) => return Err("none running (no worker.sock in DATA_DIR)".into()),
    };
    let me = rustix::process::geteuid().as_raw();
    if !meta.file_type().is_socket() {
        return Err(format!("not asked: {} is not a socket", path.display()));
    }
    if meta.uid() != me {
        return Err(format!("not asked: {} belongs to uid {}, not to you (uid {me})", path.display(), meta.uid()));
    }
    let stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(_) => return Err("none running (a stale worker.sock remains)".into()),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut text = String::new();
    stream.take(1024 * 1024).read_to_string(&mut text).map_err(|e| format!("no answer on worker.sock: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("unreadable answer on worker.sock: {e}"))
}

#[cfg(unix)]
fn show(s: &Value) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ago = |at: &Value| at.as_u64().map(|t| format!("{}s ago", now.saturating_sub(t)));
    let state = s["state"].as_str().unwrap_or("unknown");
    let mut out = format!("Running worker:       pid {}, {state}", s["pid"]);
    if s["connected"].as_bool() == Some(true) {
        out.push_str(" (connected");
        if let Some(since) = s["connectedSince"].as_u64() {
            out.push_str(&format!(" for {}s", now.saturating_sub(since)));
        }
        out.push(')');
    } else {
        out.push_str(" (not connected)");
    }
    out.push('\n');
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<20}{value}\n"));
    line("worker id", s["workerId"].as_str().unwrap_or("none yet").into());
    let heartbeat = &s["lastHeartbeat"];
    line(
        "last heartbeat",
        match ago(&heartbeat["at"]) {
            Some(when) => format!(
                "{when}: cpu {:.1}%, memory free {}, disk free {}, {} containers running",
                heartbeat["cpuUsage"].as_f64().unwrap_or(0.0),
                bytes(&heartbeat["memoryFree"]),
                bytes(&heartbeat["diskFree"]),
                heartbeat["containersRunning"]
            ),
            None => "none yet".into(),
        },
    );
    line("commands running", s["commandsRunning"].to_string());
    line("sessions", format!("{} terminals, {} displays", s["sessions"]["terminals"], s["sessions"]["displays"]));
    let engine = &s["engine"];
    let error = |e: &Value| match (e["message"].as_str(), ago(&e["at"])) {
        (Some(message), Some(when)) => Some(format!("{message} ({when})")),
        _ => None,
    };
    line(
        "engine",
        match (engine["checked"].as_bool(), engine["answering"].as_bool(), engine["serving"].as_str()) {
            (Some(true), Some(true), Some(serving)) => format!("{serving}, answering"),
            (Some(true), _, serving) => format!(
                "not answering{}{}",
                serving.map(|s| format!(" (was {s})")).unwrap_or_default(),
                error(&engine["lastError"]).map(|e| format!(": {e}")).unwrap_or_default()
            ),
            _ => "not checked".into(),
        },
    );
    line("last error", error(&s["lastError"]).unwrap_or_else(|| "none".into()));
    let turning = s["loop"]["alive"].as_bool() == Some(true);
    let age = s["loop"]["lastTurnAgoMs"].as_u64().unwrap_or(0);
    line("loop", format!("{} (last turn {age} ms ago)", if turning { "turning" } else { "STUCK" }));
    out
}

#[cfg(unix)]
fn bytes(value: &Value) -> String {
    match value.as_u64() {
        Some(n) if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        Some(n) => format!("{:.0} MiB", n as f64 / f64::from(1u32 << 20)),
        None => "unknown".into(),
    }
}
