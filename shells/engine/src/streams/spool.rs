//! The spool of a background exec: its output on disk, stdout and stderr
//! marked, read back from any byte offset.
//!
//! A spool is a directory of segment files `out-<start>` (`start` is the
//! offset of the segment's first byte, zero-padded so names sort by offset).
//! A segment is a sequence of records:
//!
//! ```text
//! +--------+--------------+-------------
//! | stream | length u32BE | bytes …        stream: 1 stdout, 2 stderr
//! +--------+--------------+-------------
//! ```
//!
//! Offsets count output bytes only (both streams together, in the order they
//! were produced). When the current segment reaches half the spool's bound a
//! new one starts, and only the newest two are kept, so a spool never holds
//! more than its bound plus one record; a read from an offset that was dropped
//! starts at the oldest byte kept and says how many were lost. A record being
//! written while it is read is simply not returned yet. Appends and reads use
//! plain files, so a spool outlives the worker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::OutputKind;

const HEADER: usize = 5;
const PREFIX: &str = "out-";

/// Appends output to a spool.
#[derive(Debug)]
pub(crate) struct SpoolWriter {
    dir: PathBuf,
    segment_bytes: u64,
    file: File,
    /// Offset of the current segment's first byte, and the bytes in it.
    segment_start: u64,
    segment_len: u64,
}

/// What a read returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SpoolRead {
    /// Offset of the first byte returned.
    pub offset: u64,
    /// Bytes between the requested offset and `offset` no longer kept.
    pub lost: u64,
    /// The bytes, split where the stream changes.
    pub chunks: Vec<(OutputKind, Vec<u8>)>,
    /// Offset after the last byte returned.
    pub next: u64,
    /// Offset after the last byte in the spool.
    pub end: u64,
}

fn segment_name(start: u64) -> String {
    format!("{PREFIX}{start:020}")
}

/// The segments of a spool, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(start) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|n| n.parse().ok()) else {
            continue;
        };
        out.push((start, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// The output bytes held by a segment file (complete records only).
fn data_len(path: &Path) -> io::Result<u64> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let (mut position, mut total) = (0u64, 0u64);
    let mut header = [0u8; HEADER];
    loop {
        if read_full(&mut reader, &mut header)? < HEADER {
            return Ok(total);
        }
        let len = u64::from(u32::from_be_bytes([header[1], header[2], header[3], header[4]]));
        position += HEADER as u64 + len;
        if position > size {
            return Ok(total); // a record still being written
        }
        reader.seek_relative(len as i64)?;
        total += len;
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl SpoolWriter {
    /// A new, empty spool in `dir` (created), bounded to about `max_bytes` of output.
    pub(crate) fn create(dir: &Path, max_bytes: u64) -> io::Result<SpoolWriter> {
        fs::create_dir_all(dir)?;
        let file = OpenOptions::new().create(true).append(true).open(dir.join(segment_name(0)))?;
        Ok(SpoolWriter {
            dir: dir.to_path_buf(),
            segment_bytes: (max_bytes / 2).max(1),
            file,
            segment_start: 0,
            segment_len: 0,
        })
    }

    /// Offset after the last byte written.
    pub(crate) fn end(&self) -> u64 {
        self.segment_start + self.segment_len
    }

    /// Appends a run of output.
    pub(crate) fn append(&mut self, kind: OutputKind, data: &[u8]) -> io::Result<()> {
        // Records are cut to fit a segment, so no segment outgrows its share by much.
        for piece in data.chunks(self.segment_bytes.clamp(1, u64::from(u32::MAX)) as usize) {
            if self.segment_len > 0 && self.segment_len + piece.len() as u64 > self.segment_bytes {
                self.rotate()?;
            }
            let mut record = Vec::with_capacity(HEADER + piece.len());
            record.push(match kind {
                OutputKind::Stdout => 1,
                OutputKind::Stderr => 2,
            });
            record.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            record.extend_from_slice(piece);
            self.file.write_all(&record)?;
            self.segment_len += piece.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let start = self.end();
        self.file = OpenOptions::new().create(true).append(true).open(self.dir.join(segment_name(start)))?;
        self.segment_start = start;
        self.segment_len = 0;
        let all = segments(&self.dir)?;
        for (_, path) in all.iter().take(all.len().saturating_sub(2)) {
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// Reads up to `max` bytes from `offset` (see the module docs).
pub(crate) fn read(dir: &Path, offset: u64, max: usize) -> io::Result<SpoolRead> {
    let segments = segments(dir)?;
    let Some((oldest, _)) = segments.first() else {
        return Ok(SpoolRead { offset, next: offset, ..SpoolRead::default() });
    };
    let (last_start, last_path) = &segments[segments.len() - 1];
    let end = last_start + data_len(last_path)?;
    let lost = oldest.saturating_sub(offset);
    let from = offset.max(*oldest);
    let mut result = SpoolRead { offset: from, lost, chunks: Vec::new(), next: from, end };
    if from >= end {
        return Ok(result);
    }
    let mut budget = max;
    let first = segments.iter().rposition(|(start, _)| *start <= from).unwrap_or(0);
    for (start, path) in &segments[first..] {
        let file = match File::open(path) {
            Ok(file) => file,
            // Dropped by the writer meanwhile: those bytes are lost to this read too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut position = *start;
        let mut header = [0u8; HEADER];
        while budget > 0 {
            if read_full(&mut reader, &mut header)? < HEADER {
                break;
            }
            let len = u64::from(u32::from_be_bytes([header[1], header[2], header[3], header[4]]));
            let kind = if header[0] == 2 { OutputKind::Stderr } else { OutputKind::Stdout };
            let record_end = position + len;
            if record_end <= result.next {
                reader.seek(SeekFrom::Current(len as i64))?;
                position = record_end;
                continue;
            }
            let skip = result.next - position;
            reader.seek(SeekFrom::Current(skip as i64))?;
            let take = (len - skip).min(budget as u64) as usize;
            let mut bytes = vec![0u8; take];
            if read_full(&mut reader, &mut bytes)? < take {
                break; // a record still being written
            }
            match result.chunks.last_mut() {
                Some((last, data)) if *last == kind => data.extend_from_slice(&bytes),
                _ => result.chunks.push((kind, bytes)),
            }
            result.next += take as u64;
            budget -= take;
            reader.seek(SeekFrom::Current((len - skip - take as u64) as i64))?;
            position = record_end;
        }
        if budget == 0 {
            break;
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cropscode-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn text(read: &SpoolRead) -> String {
        read.chunks
            .iter()
            .map(|(kind, data)| {
                format!("{}:{}", if *kind == OutputKind::Stdout { "o" } else { "e" }, String::from_utf8_lossy(data))
            })
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn reads_marked_output_from_any_offset() {
        let dir = temp("marked");
        let mut spool = SpoolWriter::create(&dir, 1 << 20).unwrap();
        spool.append(OutputKind::Stdout, b"hello ").unwrap();
        spool.append(OutputKind::Stdout, b"world\n").unwrap();
        spool.append(OutputKind::Stderr, b"oops\n").unwrap();
        assert_eq!(spool.end(), 17);
        let all = read(&dir, 0, 100).unwrap();
        assert_eq!(text(&all), "o:hello world\n|e:oops\n");
        assert_eq!((all.offset, all.next, all.end, all.lost), (0, 17, 17, 0));
        let middle = read(&dir, 8, 6).unwrap();
        assert_eq!(text(&middle), "o:rld\n|e:oo");
        assert_eq!(middle.next, 14);
        let done = read(&dir, 17, 10).unwrap();
        assert!(done.chunks.is_empty());
        assert_eq!(done.next, 17);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn stays_bounded_and_reports_what_was_dropped() {
        let dir = temp("bounded");
        let mut spool = SpoolWriter::create(&dir, 40).unwrap();
        for n in 0..20u8 {
            spool.append(OutputKind::Stdout, &[b'a' + n; 5]).unwrap();
        }
        assert!(segments(&dir).unwrap().len() <= 2);
        let on_disk: u64 = segments(&dir).unwrap().iter().map(|(_, p)| data_len(p).unwrap()).sum();
        assert!(on_disk <= 40, "{on_disk} bytes kept");
        let late = read(&dir, 0, 1000).unwrap();
        assert!(late.lost > 0);
        assert_eq!(late.offset, late.lost);
        assert_eq!(late.next, 100);
        assert!(String::from_utf8_lossy(&late.chunks[0].1).ends_with("ttttt"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_partly_written_record_is_not_returned() {
        let dir = temp("partial");
        let mut spool = SpoolWriter::create(&dir, 1 << 20).unwrap();
        spool.append(OutputKind::Stdout, b"done").unwrap();
        let mut file = OpenOptions::new().append(true).open(dir.join(segment_name(0))).unwrap();
        file.write_all(&[1, 0, 0, 0, 9, b'x']).unwrap();
        let got = read(&dir, 0, 100).unwrap();
        assert_eq!(text(&got), "o:done");
        assert_eq!((got.next, got.end), (4, 4));
        let _ = fs::remove_dir_all(&dir);
    }
}
