//! The audit log: one JSON line per command frame the worker received, under
//! `DATA_DIR/audit/audit.jsonl`.
//!
//! Fed by the [`Agent`](crate::Agent) with every [`Event::Audit`]
//! (`cropscode_core::Event::Audit`) the session emits: executed, refused,
//! replayed or undecodable. A line holds only what the owner needs to see who
//! asked for what and how it ended:
//!
//! ```json
//! {"time":"2026-05-20T10:11:12.345Z","id":"c-17","command":"container.create","tenant":"acme","target":null,"outcome":"forbidden","control":"privileged","reason":"privileged containers are not allowed (`privileged`)"}
//! ```
//!
//! - `time`: RFC 3339, UTC, milliseconds; `id`, `command`, `tenant`, `target`:
//!   the command's, `null` when it had none (an undecodable frame has no command);
//! - `outcome`: `ok`, the error code (`forbidden`, `not_found`, …), `replayed`
//!   or `already_running`;
//! - `control` and `reason`: only for a refusal by the security floor, taken
//!   from the error's structured refusal (`WireError::refusal`), never from its message.
//!
//! Params, error messages (they may quote engine output), secrets and file
//! contents are never written. The file is append-only and size-bounded:
//! above [`MAX_FILE_BYTES`] it is rotated to `audit.jsonl.1` (`.1` to `.2`, …)
//! and at most [`MAX_FILES`] files are kept, the oldest dropped. Files are
//! 0600 in a 0700 directory. Writing is cheap (one buffered write and flush per
//! record) and never fails the worker: an I/O error is logged once, and the
//! log tries again on the next record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cropscode_core::session::{AuditOutcome, AuditRecord};

/// The audit directory under `DATA_DIR`.
pub const DIR_NAME: &str = "audit";
/// The current audit file; rotated ones are `audit.jsonl.1` (newest) to `audit.jsonl.4`.
pub const FILE_NAME: &str = "audit.jsonl";
/// Size at which the current file is rotated: 10 MiB.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Files kept, the current one included: at most 50 MiB of audit in all.
pub const MAX_FILES: usize = 5;

/// `DATA_DIR/audit`.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR_NAME)
}

/// The audit files in `dir` that exist, oldest first (`audit.jsonl.4` … `audit.jsonl`).
pub fn audit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..MAX_FILES.max(1)).rev().map(|i| rotated(dir, i)).collect();
    files.push(dir.join(FILE_NAME));
    files.into_iter().filter(|path| path.is_file()).collect()
}

fn rotated(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("{FILE_NAME}.{n}"))
}

/// The append-only, rotated audit log.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    max_file_bytes: u64,
    max_files: usize,
    writer: Option<BufWriter<File>>,
    size: u64,
    /// An error was logged and no write succeeded since (so the next one is not logged).
    failing: bool,
}

impl AuditLog {
    /// The log under `DATA_DIR/audit`, with the default limits. Opens lazily:
    /// never fails here.
    pub fn open(data_dir: &Path) -> AuditLog {
        AuditLog::with_limits(audit_dir(data_dir), MAX_FILE_BYTES, MAX_FILES)
    }

    /// A log in `dir` rotated at `max_file_bytes`, keeping `max_files` files (at least one).
    pub fn with_limits(dir: PathBuf, max_file_bytes: u64, max_files: usize) -> AuditLog {
        AuditLog { dir, max_file_bytes, max_files: max_files.max(1), writer: None, size: 0, failing: false }
    }

    /// The current file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Appends `record`, stamped now.
    pub fn record(&mut self, record: &AuditRecord) {
        self.record_at(SystemTime::now(), record);
    }

    /// Appends `record`, stamped `time`. Errors are logged (once) and swallowed.
    pub fn record_at(&mut self, time: SystemTime, record: &AuditRecord) {
        let mut line = audit_line(time, record);
        line.push('\n');
        match self.append(line.as_bytes()) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(path = %self.path().display(), "the audit log is writable again");
                    self.failing = false;
                }
            }
            Err(error) => {
                self.writer = None;
                if !self.failing {
                    tracing::error!(path = %self.path().display(), %error, "cannot write the audit log; commands still run");
                    self.failing = true;
                }
            }
        }
    }

    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.writer.is_none() {
            self.reopen()?;
        }
        if self.size > 0 && self.size + line.len() as u64 > self.max_file_bytes {
            self.rotate()?;
        }
        let writer = self.writer.as_mut().ok_or_else(|| io::Error::other("audit file not open"))?;
        writer.write_all(line)?;
        writer.flush()?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        create_private_dir(&self.dir)?;
        let path = self.path();
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        self.size = file.metadata()?.len();
        self.writer = Some(BufWriter::new(file));
        Ok(())
    }

    /// `audit.jsonl.{n-1}` → `.{n}`, …, `audit.jsonl` → `.1`, then a fresh `audit.jsonl`.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush()?;
        }
        let current = self.path();
        if self.max_files == 1 {
            fs::remove_file(&current).or_else(ignore_missing)?;
        } else {
            for n in (1..self.max_files - 1).rev() {
                fs::rename(rotated(&self.dir, n), rotated(&self.dir, n + 1)).or_else(ignore_missing)?;
            }
            fs::rename(&current, rotated(&self.dir, 1)).or_else(ignore_missing)?;
        }
        self.reopen()
    }
}

fn ignore_missing(error: io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(error) }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The JSON line (without its newline) for `record` at `time`.
pub fn audit_line(time: SystemTime, record: &AuditRecord) -> String {
    let (outcome, control, reason) = match &record.outcome {
        AuditOutcome::Ok => ("ok", None, None),
        AuditOutcome::Replayed => ("replayed", None, None),
        AuditOutcome::AlreadyRunning => ("already_running", None, None),
        AuditOutcome::Error(error) => {
            // Only the floor's own reason: it names fields and values of the
            // request's security options, never a secret or engine output.
            let refusal = error.refusal.as_ref();
            (error.code.as_str(), refusal.map(|r| r.control.as_str()), refusal.map(|r| r.reason.as_str()))
        }
        _ => ("other", None, None),
    };
    // Written field by field to keep the documented order; values are JSON-escaped.
    let text = |value: Option<&str>| serde_json::to_string(&value).unwrap_or_else(|_| String::from("null"));
    let mut line = format!(
        "{{\"time\":\"{}\",\"id\":{},\"command\":{},\"tenant\":{},\"target\":{},\"outcome\":{}",
        rfc3339(time),
        text(record.id.as_deref()),
        text(record.command),
        text(record.tenant.as_deref()),
        text(record.target.as_deref()),
        text(Some(outcome)),
    );
    if let Some(control) = control {
        line.push_str(&format!(",\"control\":{},\"reason\":{}", text(Some(control)), text(reason)));
    }
    line.push('}');
    line
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-05-20T10:11:12.345Z`.
/// Such strings sort as the times do, which `cropscode audit --since` relies on.
pub fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cropscode_core::policy::{Policy, SecurityFloor};
    use cropscode_core::protocol::{Command, ErrorCode, WireError};
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn record(outcome: AuditOutcome) -> AuditRecord {
        AuditRecord {
            id: Some("c-1".into()),
            command: Some("container.create"),
            tenant: Some("acme".into()),
            target: None,
            outcome,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cropscode-audit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 7)), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339(at(1_779_271_872, 345)), "2026-05-20T10:11:12.345Z");
        assert_eq!(rfc3339(at(4_102_444_799, 999)), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn lines_carry_the_outcome_and_for_refusals_the_control() {
        let ok = audit_line(at(0, 0), &record(AuditOutcome::Ok));
        assert_eq!(
            ok,
            r#"{"time":"1970-01-01T00:00:00.000Z","id":"c-1","command":"container.create","tenant":"acme","target":null,"outcome":"ok"}"#
        );
        let params = serde_json::json!({"image": "busybox", "tenant": "acme", "privileged": true});
        let refusal = Policy::new(SecurityFloor::Baseline)
            .enforce(Command::decode("container.create", params).unwrap())
            .unwrap_err()
            .to_wire();
        let refused: serde_json::Value =
            serde_json::from_str(&audit_line(at(0, 0), &record(AuditOutcome::Error(refusal)))).unwrap();
        assert_eq!(refused["outcome"], "forbidden");
        assert_eq!(refused["control"], "privileged");
        assert_eq!(refused["reason"], "privileged containers are not allowed (`privileged`)");

        // Other errors: the code only, never the message (it may quote engine output).
        let failed = WireError::new(ErrorCode::NotFound, "no such container: secret-looking text");
        let line = audit_line(at(0, 0), &record(AuditOutcome::Error(failed)));
        assert!(line.contains(r#""outcome":"not_found""#) && !line.contains("secret-looking"), "{line}");
        assert!(audit_line(at(0, 0), &record(AuditOutcome::Replayed)).contains(r#""outcome":"replayed""#));
        assert!(audit_line(at(0, 0), &record(AuditOutcome::AlreadyRunning)).contains(r#""outcome":"already_running""#));
    }

    #[test]
    fn appends_and_rotates_keeping_a_bounded_number_of_files() {
        let dir = temp_dir("rotate");
        let one = audit_line(at(0, 0), &record(AuditOutcome::Ok)).len() as u64 + 1;
        let mut log = AuditLog::with_limits(dir.clone(), one * 3, 3);
        for _ in 0..20 {
            log.record_at(at(0, 0), &record(AuditOutcome::Ok));
        }
        let files = audit_files(&dir);
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files[2], dir.join(FILE_NAME));
        let lines: usize = files.iter().map(|f| fs::read_to_string(f).unwrap().lines().count()).sum();
        assert_eq!(lines, 3 + 3 + 2, "20 records: 3 per full file, the current one has 2");
        for file in &files {
            assert!(fs::metadata(file).unwrap().len() <= one * 3);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(dir.join(FILE_NAME)).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }

        // A new log on the same directory appends (and knows the current size).
        let mut again = AuditLog::with_limits(dir.clone(), one * 3, 3);
        again.record_at(at(0, 0), &record(AuditOutcome::Ok));
        assert_eq!(fs::read_to_string(dir.join(FILE_NAME)).unwrap().lines().count(), 3);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_log_never_panics_and_recovers() {
        let dir = temp_dir("unwritable");
        fs::create_dir_all(dir.parent().unwrap()).unwrap();
        fs::write(&dir, b"a file where the directory should be").unwrap();
        let mut log = AuditLog::with_limits(dir.clone(), MAX_FILE_BYTES, MAX_FILES);
        log.record(&record(AuditOutcome::Ok));
        log.record(&record(AuditOutcome::Ok));
        assert!(log.failing);
        fs::remove_file(&dir).unwrap();
        log.record(&record(AuditOutcome::Ok));
        assert!(!log.failing);
        assert_eq!(fs::read_to_string(dir.join(FILE_NAME)).unwrap().lines().count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
