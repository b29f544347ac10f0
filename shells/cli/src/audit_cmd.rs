//! `cropscode audit`: prints the audit log, oldest record first.
//!
//! The log is `DATA_DIR/audit/audit.jsonl` plus its rotated files
//! (`audit.jsonl.1` … `.4`), one JSON object per line (see
//! `cropscode_runtime::audit`). The lines are printed as they are stored, so
//! they can be piped to `jq` or `grep`. `--since` keeps records at or after a
//! time (RFC 3339 in UTC, or just a date) or an age (`10m`, `2h`); `--follow`
//! keeps printing new records as the worker writes them, across rotations.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use cropscode_runtime::audit::{self, FILE_NAME};

use crate::Failure;
use crate::config::{self, Env};
use crate::flags::config_flags;

/// How often `--follow` looks for new records.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

config_flags! {
    /// print the audit log: every command received, with its outcome (DATA_DIR/audit/audit.jsonl)
    #[argh(subcommand, name = "audit")]
    pub struct AuditCommand {
        /// only records at or after this time: UTC RFC 3339 (2026-05-20T10:00:00Z), a date, or an age (30m, 2h)
        #[argh(option)]
        pub since: Option<String>,
        /// keep printing records as the worker writes them
        #[argh(switch)]
        pub follow: bool,
    }
}

impl AuditCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        let config = config::resolve(&self.config_flags(), &Env::from_process())?;
        let since = match &self.since {
            Some(text) => Some(since(text, SystemTime::now()).map_err(|e| Failure::Config(format!("--since: {e}")))?),
            None => None,
        };
        let dir = audit::audit_dir(&config.data_dir.value);
        let files = audit::audit_files(&dir);
        if files.is_empty() && !self.follow {
            eprintln!("no audit log yet at {}", dir.join(FILE_NAME).display());
            return Ok(());
        }
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let keep =
            |line: &str| since.as_deref().is_none_or(|since| record_time(line).is_some_and(|t| t.as_str() >= since));
        let mut offset = 0;
        for file in &files {
            let read = print_from(file, 0, &mut out, &keep).map_err(|e| failure(file, e))?;
            if file.ends_with(FILE_NAME) {
                offset = read;
            }
        }
        if !self.follow {
            return Ok(());
        }
        let current = dir.join(FILE_NAME);
        loop {
            std::thread::sleep(FOLLOW_INTERVAL);
            let len = std::fs::metadata(&current).map(|m| m.len()).unwrap_or(0);
            if len < offset {
                // Rotated (or truncated): the new file starts from the beginning.
                offset = 0;
            }
            if len > offset {
                offset = print_from(&current, offset, &mut out, &keep).map_err(|e| failure(&current, e))?;
            }
        }
    }
}

fn failure(path: &Path, error: io::Error) -> Failure {
    Failure::Runtime(format!("cannot read {}: {error}", path.display()))
}

/// Prints the complete lines of `path` from byte `offset` that `keep` accepts;
/// returns the offset after the last complete line.
fn print_from(path: &Path, offset: u64, out: &mut impl Write, keep: &impl Fn(&str) -> bool) -> io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut position = offset;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 || !line.ends_with('\n') {
            // A line still being written is printed on the next look.
            break;
        }
        position += read as u64;
        if keep(line.trim_end()) {
            out.write_all(line.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(position)
}

/// The `time` of a record line.
fn record_time(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("time")?.as_str().map(String::from)
}

/// `--since` as an RFC 3339 prefix comparable with the records' times
/// (`2026-05-20T10:11:12.345Z` sort as the times do).
fn since(text: &str, now: SystemTime) -> Result<String, String> {
    let text = text.trim();
    if let Ok(age) = config::parse::duration(text) {
        let then = now.checked_sub(age).ok_or_else(|| format!("'{text}' is before 1970"))?;
        return Ok(audit::rfc3339(then));
    }
    let bytes = text.as_bytes();
    let date_like = bytes.len() >= 10
        && bytes[..10].iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    let rest_ok = text[10.min(text.len())..].bytes().all(|b| b.is_ascii_digit() || b"T:.Z".contains(&b));
    if !date_like || !rest_ok {
        return Err(format!(
            "expected a UTC time like 2026-05-20T10:00:00Z, a date like 2026-05-20, or an age like 30m; got '{text}'"
        ));
    }
    // `…:00Z` must not sort after `…:00.000Z`: compare without the zone letter.
    Ok(text.trim_end_matches('Z').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn since_takes_times_dates_and_ages() {
        let now = UNIX_EPOCH + Duration::from_secs(1_779_271_872);
        assert_eq!(since("2026-05-20T10:00:00Z", now).unwrap(), "2026-05-20T10:00:00");
        assert_eq!(since("2026-05-20", now).unwrap(), "2026-05-20");
        assert_eq!(since("30m", now).unwrap(), "2026-05-20T09:41:12.000Z");
        for bad in ["yesterday", "2026-5-20", "2026-05-20T10:00:00+02:00", ""] {
            assert!(since(bad, now).is_err(), "{bad:?}");
        }
        // Equal times are kept.
        assert!("2026-05-20T10:00:00.000Z" >= since("2026-05-20T10:00:00Z", now).unwrap().as_str());
        assert!("2026-05-19T23:59:59.999Z" < since("2026-05-20", now).unwrap().as_str());
    }

    #[test]
    fn prints_complete_lines_from_an_offset() {
        let dir = std::env::temp_dir().join(format!("cropscode-audit-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        std::fs::write(
            &path,
            "{\"time\":\"2026-01-01T00:00:00.000Z\"}\n{\"time\":\"2026-02-01T00:00:00.000Z\"}\n{\"ti",
        )
        .unwrap();
        let mut out = Vec::new();
        let keep = |line: &str| record_time(line).is_some_and(|t| t.as_str() >= "2026-01-15");
        let end = print_from(&path, 0, &mut out, &keep).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"time\":\"2026-02-01T00:00:00.000Z\"}\n");
        assert_eq!(end, 72, "the partial line is left for later");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
