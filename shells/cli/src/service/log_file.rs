//! The log of a service that has no console (the Windows service): `DATA_DIR/logs/worker.log`,
//! rotated at [`MAX_FILE_BYTES`] to `worker.log.1` (`.1` → `.2`, …), at most [`MAX_FILES`]
//! files kept, the oldest dropped, like the audit log (`cropscode_runtime::audit`).
//! Handed to `tracing_subscriber` as a `Mutex<RotatingFile>`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory under `DATA_DIR`.
pub const DIR_NAME: &str = "logs";
/// The current file.
pub const FILE_NAME: &str = "worker.log";
/// Size at which the file is rotated: 10 MiB.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Files kept, the current one included.
pub const MAX_FILES: usize = 5;

/// An append-only log file that rotates itself.
#[derive(Debug)]
pub struct RotatingFile {
    dir: PathBuf,
    max_file_bytes: u64,
    max_files: usize,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    /// `DATA_DIR/logs/worker.log` with the default limits; opened on the first write.
    pub fn in_data_dir(data_dir: &Path) -> RotatingFile {
        RotatingFile::with_limits(data_dir.join(DIR_NAME), MAX_FILE_BYTES, MAX_FILES)
    }

    /// A log in `dir`, rotated at `max_file_bytes`, keeping `max_files` files (at least one).
    pub fn with_limits(dir: PathBuf, max_file_bytes: u64, max_files: usize) -> RotatingFile {
        RotatingFile { dir, max_file_bytes, max_files: max_files.max(1), file: None, size: 0 }
    }

    /// The current file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.{n}"))
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new().append(true).create(true).open(self.path())?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file.as_mut().ok_or_else(|| io::Error::other("log file not open"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.max_files == 1 {
            fs::remove_file(self.path()).or_else(ignore_missing)?;
        } else {
            for n in (1..self.max_files - 1).rev() {
                fs::rename(self.rotated(n), self.rotated(n + 1)).or_else(ignore_missing)?;
            }
            fs::rename(self.path(), self.rotated(1)).or_else(ignore_missing)?;
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.open()?;
        if self.size > 0 && self.size + buf.len() as u64 > self.max_file_bytes {
            self.rotate()?;
        }
        self.open()?.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

fn ignore_missing(error: io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(error) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_at_most_max_files() {
        let dir = std::env::temp_dir().join(format!("cropscode-logfile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut log = RotatingFile::with_limits(dir.clone(), 100, 3);
        for i in 0..20 {
            writeln!(log, "line {i:02} {}", "x".repeat(30)).unwrap();
        }
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["worker.log", "worker.log.1", "worker.log.2"]);
        for name in &names {
            assert!(fs::metadata(dir.join(name)).unwrap().len() <= 100, "{name}");
        }
        // The newest line is in the current file, the ones before it in .1.
        assert!(fs::read_to_string(dir.join("worker.log")).unwrap().contains("line 19"));
        assert!(fs::read_to_string(dir.join("worker.log.1")).unwrap().contains("line 17"));
        let _ = fs::remove_dir_all(&dir);
    }
}
