//! A tiny in-memory tar writer for build contexts and archive uploads.
//!
//! Writes POSIX ustar entries (regular files and directories), with a PAX `path` record
//! for paths longer than ustar's 100 + 155 bytes. Paths are relative, `/`-separated, and
//! may not contain `..`, empty or `.` components: an archive built here unpacks inside
//! the directory it is uploaded to. Parent directories are added automatically, with the
//! owner of the entry that needs them. The `tar` crate would do this too, but pulls in
//! file-system and xattr support the worker does not need; this is ~150 lines.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{EngineError, Result};

const BLOCK: usize = 512;
/// ustar stores sizes as 11 octal digits.
const MAX_SIZE: u64 = 0o77_777_777_777;

/// Owner and mode of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// `root:root`.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// Builds a tar archive in memory.
#[derive(Debug, Clone)]
pub struct TarBuilder {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    mtime: u64,
}

impl Default for TarBuilder {
    fn default() -> Self {
        TarBuilder::new()
    }
}

impl TarBuilder {
    /// An empty archive whose entries are stamped with the current time.
    pub fn new() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        TarBuilder::with_mtime(now)
    }

    /// An empty archive whose entries carry `mtime` (seconds since the epoch), for
    /// reproducible archives.
    pub fn with_mtime(mtime: u64) -> Self {
        TarBuilder { out: Vec::new(), dirs: BTreeSet::new(), mtime }
    }

    /// Adds a regular file owned by root.
    pub fn file(&mut self, path: &str, contents: &[u8], mode: u32) -> Result<&mut Self> {
        self.file_owned(path, contents, mode, Owner::ROOT)
    }

    /// Adds a regular file with an owner; missing parent directories get the same owner.
    pub fn file_owned(&mut self, path: &str, contents: &[u8], mode: u32, owner: Owner) -> Result<&mut Self> {
        let path = check_path(path)?;
        if contents.len() as u64 > MAX_SIZE {
            return Err(EngineError::InvalidArgument(format!("{path}: file too large for a tar entry")));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.parents(parent, owner);
        }
        self.entry(path, b'0', contents.len() as u64, mode, owner);
        self.out.extend_from_slice(contents);
        self.pad();
        Ok(self)
    }

    /// Adds a directory (and its missing parents).
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> Result<&mut Self> {
        let path = check_path(path)?;
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.parents(parent, owner);
        }
        if self.dirs.insert(path.to_owned()) {
            self.entry(&format!("{path}/"), b'5', 0, mode, owner);
        }
        Ok(self)
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The finished archive (with its two closing zero blocks).
    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        self.out
    }

    fn parents(&mut self, dir: &str, owner: Owner) {
        let mut end = 0;
        for component in dir.split('/') {
            end += component.len();
            let prefix = &dir[..end];
            if self.dirs.insert(prefix.to_owned()) {
                self.entry(&format!("{prefix}/"), b'5', 0, 0o755, owner);
            }
            end += 1;
        }
    }

    fn entry(&mut self, path: &str, kind: u8, size: u64, mode: u32, owner: Owner) {
        let (name, prefix) = match split_ustar(path) {
            Some(split) => split,
            None => {
                let record = pax_record("path", path);
                self.header("././@PaxHeader", "", b'x', record.len() as u64, 0o644, Owner::ROOT);
                self.out.extend_from_slice(record.as_bytes());
                self.pad();
                (truncate(path, 100), "")
            }
        };
        self.header(name, prefix, kind, size, mode, owner);
    }

    fn header(&mut self, name: &str, prefix: &str, kind: u8, size: u64, mode: u32, owner: Owner) {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode & 0o7777));
        octal(&mut h[108..116], u64::from(owner.uid));
        octal(&mut h[116..124], u64::from(owner.gid));
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], self.mtime);
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        self.out.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rem = self.out.len() % BLOCK;
        if rem != 0 {
            self.out.resize(self.out.len() + BLOCK - rem, 0);
        }
    }
}

fn check_path(path: &str) -> Result<&str> {
    let path = path.strip_prefix("./").unwrap_or(path).trim_end_matches('/');
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(EngineError::InvalidArgument(format!("not a relative path inside the archive: {path:?}")));
    }
    Ok(path)
}

/// Splits a path into ustar's `name` (≤ 100 bytes) and `prefix` (≤ 155 bytes) at a `/`.
fn split_ustar(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some((path, ""));
    }
    path.char_indices()
        .filter(|&(_, c)| c == '/')
        .map(|(i, _)| (&path[i + 1..], &path[..i]))
        .find(|(name, prefix)| !name.is_empty() && name.len() <= 100 && prefix.len() <= 155)
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A PAX record: `"<length> <key>=<value>\n"`, where the length counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

/// Writes `value` as zero-padded octal followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (path, type, size, mode, uid, contents) with a minimal parser.
    fn entries(archive: &[u8]) -> Vec<(String, u8, usize, u32, u32, Vec<u8>)> {
        let field = |h: &[u8], r: std::ops::Range<usize>| {
            let s = std::str::from_utf8(&h[r]).unwrap().trim_matches(|c| c == '\0' || c == ' ').to_owned();
            u64::from_str_radix(if s.is_empty() { "0" } else { &s }, 8).unwrap()
        };
        let text = |b: &[u8]| String::from_utf8(b.iter().take_while(|&&c| c != 0).copied().collect()).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        let mut long_name = None;
        while at + BLOCK <= archive.len() && archive[at..at + BLOCK].iter().any(|&b| b != 0) {
            let h = &archive[at..at + BLOCK];
            let stored: u32 =
                h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
            assert_eq!(u64::from(stored), field(h, 148..156), "checksum");
            assert_eq!(&h[257..263], b"ustar\0");
            let size = field(h, 124..136) as usize;
            let body = archive[at + BLOCK..at + BLOCK + size].to_vec();
            at += BLOCK + size.div_ceil(BLOCK) * BLOCK;
            if h[156] == b'x' {
                let record = String::from_utf8(body).unwrap();
                let (len, rest) = record.split_once(' ').unwrap();
                assert_eq!(len.parse::<usize>().unwrap(), record.len());
                long_name = Some(rest.strip_prefix("path=").unwrap().trim_end_matches('\n').to_owned());
                continue;
            }
            let prefix = text(&h[345..500]);
            let name = text(&h[..100]);
            let path = long_name.take().unwrap_or(if prefix.is_empty() { name } else { format!("{prefix}/{name}") });
            out.push((path, h[156], size, field(h, 100..108) as u32, field(h, 108..116) as u32, body));
        }
        assert_eq!(archive.len() % BLOCK, 0);
        out
    }

    #[test]
    fn writes_files_with_parents_and_owners() {
        let mut tar = TarBuilder::with_mtime(1_700_000_000);
        tar.file("Dockerfile", b"FROM scratch\n", 0o644).unwrap();
        tar.file_owned("a/b/run.sh", b"#!/bin/sh\necho hi\n", 0o755, Owner { uid: 1000, gid: 1000 }).unwrap();
        tar.file("a/c.txt", b"", 0o600).unwrap();
        let got = entries(&tar.finish());
        let summary: Vec<_> = got.iter().map(|(p, t, s, m, u, _)| (p.as_str(), *t, *s, *m, *u)).collect();
        assert_eq!(
            summary,
            vec![
                ("Dockerfile", b'0', 13, 0o644, 0),
                ("a/", b'5', 0, 0o755, 1000),
                ("a/b/", b'5', 0, 0o755, 1000),
                ("a/b/run.sh", b'0', 18, 0o755, 1000),
                ("a/c.txt", b'0', 0, 0o600, 0),
            ]
        );
        assert_eq!(got[3].5, b"#!/bin/sh\necho hi\n");
    }

    #[test]
    fn long_paths_use_prefix_or_pax() {
        let mid = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let long = format!("{}/{}", "x".repeat(200), "y".repeat(150));
        let mut tar = TarBuilder::with_mtime(0);
        tar.file(&mid, b"1", 0o644).unwrap();
        tar.file(&long, b"2", 0o644).unwrap();
        let got = entries(&tar.finish());
        let files: Vec<_> = got.iter().filter(|e| e.1 == b'0').map(|e| e.0.clone()).collect();
        assert_eq!(files, vec![mid, long]);
    }

    #[test]
    fn refuses_paths_that_escape() {
        let mut tar = TarBuilder::new();
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "nul\0"] {
            assert!(tar.file(bad, b"", 0o644).is_err(), "{bad:?}");
        }
        assert!(tar.is_empty());
        assert!(tar.file("./ok.txt", b"", 0o644).is_ok());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [1, 5, 89, 90, 95, 100, 995, 1000] {
            let record = pax_record("path", &"p".repeat(n));
            let (len, _) = record.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), record.len(), "{n}");
        }
    }
}
