//! Ending processes the engines cannot end: signals by name and number, and
//! signalling every process of a terminal or background exec in its container.
//!
//! Neither engine's API can signal an exec'd process. Each one the worker
//! starts carries a marker in its environment (`CROPSCODE_SESSION=<id>` for a
//! terminal, `CROPSCODE_EXEC=<id>` for a background exec), which its children
//! inherit, so "the process and its children" is "every process whose
//! environment holds the marker" — found through `/proc/<pid>/environ` by a
//! small `sh` script exec'd in the container as the processes' own user, then
//! as uid 0. That works the same on
//! Docker and Podman, rootful or rootless, and wherever the engine runs
//! (also in a VM). A container without `sh` falls back to signalling the
//! exec's own process from the host, when the engine runs on this Linux
//! machine and the process is provably in the container's PID namespace.

use std::time::Duration;

use cropscode_core::protocol::ErrorCode;
use cropscode_engine_api::{Endpoint, EngineClient, EngineError, ExecLimits, ExecSpec, Result};

/// The environment marker of a terminal session.
pub(crate) const SESSION_MARKER: &str = "CROPSCODE_SESSION";
/// The environment marker of a background exec.
pub(crate) const EXEC_MARKER: &str = "CROPSCODE_EXEC";
/// The environment marker of a background exec's relay reader (`<execId>`).
pub(crate) const READER_MARKER: &str = "CROPSCODE_RELAY_READER";

/// Signals every process whose environment holds `$1` exactly, with signal
/// number `$2`, and prints how many were signalled.
const SIGNAL_MARKED: &str = r#"n=0
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF -e "$1"; then
    kill -"$2" "$p" 2>/dev/null && n=$((n+1))
  fi
done
echo "$n""#;

const NAMES: [(&str, u8); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const RTMIN: u8 = 34;
const RTMAX: u8 = 64;

/// The Linux number of a signal given as a name (`TERM`, `SIGKILL`, `RTMIN+1`) or a number.
pub(crate) fn signal_number(signal: &str) -> Option<u8> {
    if let Ok(n) = signal.parse::<u8>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
        return Some(*n);
    }
    let relative = |base: u8, rest: &str, sign: i16| -> Option<u8> {
        let offset: i16 = if rest.is_empty() { 0 } else { rest.parse().ok()? };
        let n = i16::from(base) + sign * offset;
        (i16::from(RTMIN)..=i16::from(RTMAX)).contains(&n).then_some(n as u8)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return relative(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return relative(RTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    None
}

/// The name of signal `n` as the protocol reports it (`TERM`, `RTMIN+2`, or the number).
pub(crate) fn signal_name(n: u8) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, known)| *known == n) {
        return (*name).to_owned();
    }
    match n {
        RTMIN => "RTMIN".into(),
        RTMAX => "RTMAX".into(),
        n if (RTMIN..RTMAX).contains(&n) => format!("RTMIN+{}", n - RTMIN),
        n => n.to_string(),
    }
}

/// The signal that ended a process, from an engine's exit code (128 + signal).
pub(crate) fn signal_of_exit(code: i64) -> Option<u8> {
    u8::try_from(code - 128).ok().filter(|n| (1..=RTMAX).contains(n))
}

/// Sends `signal` to every process in `container` whose environment holds
/// `marker=value`; returns how many were signalled. The script runs as `user`
/// (the user the processes were started as; `None`: the container's), then as
/// uid 0 for processes that changed user: with every capability dropped (the
/// `restricted` floor), root can neither read nor signal another uid's
/// processes. Falls back to the exec's own process from the host (see the
/// module docs) when the script cannot run at all (no `sh`).
pub(crate) async fn signal_marked(
    client: &EngineClient,
    container: &str,
    target: &Marked<'_>,
    signal: u8,
) -> Result<u32> {
    let users: Vec<Option<&str>> = match target.user {
        Some("0" | "root") => vec![Some("0")],
        user => vec![user, Some("0")],
    };
    let (mut ran, mut total) = (false, 0);
    for user in users {
        match signal_as(client, container, target, signal, user).await {
            Ok(Some(count)) => {
                ran = true;
                total += count;
            }
            Ok(None) => {}
            Err(error) if matches!(error.code(), ErrorCode::NotFound | ErrorCode::Conflict) => return Err(error),
            Err(error) => tracing::debug!(container, %error, "signalling by marker failed"),
        }
    }
    if ran {
        return Ok(total);
    }
    tracing::debug!(container, "signalling by marker is not possible; trying from the host");
    signal_from_host(client, container, target.exec_id, signal).await
}

/// What to signal: the processes carrying `marker=value`, started as `user` by exec `exec_id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marked<'a> {
    pub marker: &'a str,
    pub value: &'a str,
    pub user: Option<&'a str>,
    pub exec_id: Option<&'a str>,
}

/// Runs the marker script once as `user`: `Some(count)`, or `None` when it could not run.
async fn signal_as(
    client: &EngineClient,
    container: &str,
    target: &Marked<'_>,
    signal: u8,
    user: Option<&str>,
) -> Result<Option<u32>> {
    let spec = ExecSpec {
        cmd: vec![
            "sh".into(),
            "-c".into(),
            SIGNAL_MARKED.into(),
            "sh".into(),
            format!("{}={}", target.marker, target.value),
            signal.to_string(),
        ],
        user: user.map(String::from),
        ..ExecSpec::default()
    };
    let limits = ExecLimits { output_limit: 64, timeout: Duration::from_secs(10) };
    let out = client.exec(container, &spec, limits).await?;
    if out.exit_code != 0 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        tracing::debug!(container, user, exit = out.exit_code, stderr = %stderr.trim(), "the marker script failed");
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)))
}

/// Signals the exec's own process by its host PID, when that is provably the
/// container's process (Linux, engine on this machine).
async fn signal_from_host(client: &EngineClient, container: &str, exec_id: Option<&str>, signal: u8) -> Result<u32> {
    let Some(exec_id) = exec_id else { return Ok(0) };
    let exec = client.inspect_exec(exec_id).await?;
    if !exec.running || exec.pid <= 0 {
        return Ok(0);
    }
    if !cfg!(target_os = "linux") || !matches!(client.endpoint(), Endpoint::Unix(_)) {
        return Err(EngineError::Protocol("cannot signal the process: no `sh` in the container".into()));
    }
    let inspect = client.inspect_container(container).await?;
    let namespace = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    if inspect.state.pid <= 0 || namespace(exec.pid).is_none() || namespace(exec.pid) != namespace(inspect.state.pid) {
        return Err(EngineError::Protocol("cannot tell that the exec's process is in the container".into()));
    }
    let status = smol::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), exec.pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| EngineError::Protocol(format!("kill: {e}")))?;
    Ok(u32::from(status.success()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (spec, n) in [("TERM", 15), ("SIGKILL", 9), ("hup", 1), ("9", 9), ("RTMIN", 34), ("RTMIN+2", 36)] {
            assert_eq!(signal_number(spec), Some(n), "{spec}");
        }
        assert_eq!(signal_number("RTMAX-1"), Some(63));
        assert_eq!(signal_number("NOPE"), None);
        assert_eq!(signal_number("65"), None);
        assert_eq!(signal_name(15), "TERM");
        assert_eq!(signal_name(36), "RTMIN+2");
        assert_eq!(signal_of_exit(143), Some(15));
        assert_eq!(signal_of_exit(137), Some(9));
        assert_eq!(signal_of_exit(3), None);
    }
}
