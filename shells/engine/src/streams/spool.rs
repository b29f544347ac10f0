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
//!                                          3, 4: `length` bytes of stdout,
//!                                          stderr lost (no bytes follow)
//! ```
//!
//! Offsets count output bytes only (both streams together, in the order they
//! were produced; a lost run counts too). A segment's name also carries the
//! stdout offset at its start (`out-<start>-<stdout>`), so the writer can be
//! reopened after a restart knowing how far it got in each stream (what
//! [`SpoolWriter::open`] returns, for resuming a copy). When the current segment reaches half the spool's bound a
//! new one starts, and only the newest two are kept, so a spool never holds
//! more than its bound plus one record; a read from an offset that was dropped
//! starts at the oldest byte kept and says how many were lost. A record being
//! written while it is read is simply not returned yet. Appends and reads use
//! plain files, so a spool outlives the worker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cropscode_engine_api::OutputKind;

const HEADER: usize = 5;
const PREFIX: &str = "out-";
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const LOST_STDOUT: u8 = 3;
const LOST_STDERR: u8 = 4;

/// Appends output to a spool.
#[derive(Debug)]
pub(crate) struct SpoolWriter {
    dir: PathBuf,
    segment_bytes: u64,
    file: File,
    /// Offset of the current segment's first byte, and the bytes in it.
    segment_start: u64,
    segment_len: u64,
    /// Stdout and stderr offsets after the last byte written.
    streams: StreamOffsets,
}

/// How far a spool got in each stream (lost runs included); their sum is its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamOffsets {
    pub stdout: u64,
    pub stderr: u64,
}

impl StreamOffsets {
    fn add(&mut self, kind: OutputKind, n: u64) {
        match kind {
            OutputKind::Stdout => self.stdout += n,
            OutputKind::Stderr => self.stderr += n,
        }
    }

    /// The offset in `kind`'s stream.
    pub(crate) fn of(&self, kind: OutputKind) -> u64 {
        match kind {
            OutputKind::Stdout => self.stdout,
            OutputKind::Stderr => self.stderr,
        }
    }
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

fn segment_name(start: u64, stdout: u64) -> String {
    format!("{PREFIX}{start:020}-{stdout:020}")
}

/// A segment: its first byte's offset, the stdout offset there (spools of an
/// older worker did not record it: 0), and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    start: u64,
    stdout: u64,
    path: PathBuf,
}

/// The segments of a spool, oldest first.
fn segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else { continue };
        let (start, stdout) = rest.split_once('-').unwrap_or((rest, "0"));
        let (Ok(start), Ok(stdout)) = (start.parse(), stdout.parse()) else { continue };
        out.push(Segment { start, stdout, path: entry.path() });
    }
    out.sort_by_key(|s| s.start);
    Ok(out)
}

/// One record's header: what it is and how many offset bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Data(OutputKind, u64),
    Lost(OutputKind, u64),
}

impl Record {
    fn parse(header: [u8; HEADER]) -> Record {
        let len = u64::from(u32::from_be_bytes([header[1], header[2], header[3], header[4]]));
        match header[0] {
            LOST_STDOUT => Record::Lost(OutputKind::Stdout, len),
            LOST_STDERR => Record::Lost(OutputKind::Stderr, len),
            STDERR => Record::Data(OutputKind::Stderr, len),
            _ => Record::Data(OutputKind::Stdout, len),
        }
    }

    fn header(self) -> [u8; HEADER] {
        let (code, len) = match self {
            Record::Data(OutputKind::Stdout, len) => (STDOUT, len),
            Record::Data(OutputKind::Stderr, len) => (STDERR, len),
            Record::Lost(OutputKind::Stdout, len) => (LOST_STDOUT, len),
            Record::Lost(OutputKind::Stderr, len) => (LOST_STDERR, len),
        };
        let len = (len as u32).to_be_bytes();
        [code, len[0], len[1], len[2], len[3]]
    }

    fn kind(self) -> OutputKind {
        match self {
            Record::Data(kind, _) | Record::Lost(kind, _) => kind,
        }
    }

    /// Offset bytes covered.
    fn len(self) -> u64 {
        match self {
            Record::Data(_, len) | Record::Lost(_, len) => len,
        }
    }

    /// Bytes that follow the header in the file.
    fn payload(self) -> u64 {
        match self {
            Record::Data(_, len) => len,
            Record::Lost(..) => 0,
        }
    }
}

/// What a segment file holds in complete records: the offset bytes they
/// cover, per stream, and the file length they take.
fn scan(path: &Path) -> io::Result<(StreamOffsets, u64)> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let (mut position, mut covered) = (0u64, StreamOffsets::default());
    let mut header = [0u8; HEADER];
    loop {
        if read_full(&mut reader, &mut header)? < HEADER {
            return Ok((covered, position));
        }
        let record = Record::parse(header);
        if position + HEADER as u64 + record.payload() > size {
            return Ok((covered, position)); // a record still being written
        }
        position += HEADER as u64 + record.payload();
        reader.seek_relative(record.payload() as i64)?;
        covered.add(record.kind(), record.len());
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
        let file = OpenOptions::new().create(true).append(true).open(dir.join(segment_name(0, 0)))?;
        Ok(SpoolWriter {
            dir: dir.to_path_buf(),
            segment_bytes: (max_bytes / 2).max(1),
            file,
            segment_start: 0,
            segment_len: 0,
            streams: StreamOffsets::default(),
        })
    }

    /// The spool in `dir` as an earlier writer left it, to append more: a
    /// record it left half written is cut off. An empty or missing spool is created.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<SpoolWriter> {
        let Some(last) = segments(dir).unwrap_or_default().pop() else {
            return SpoolWriter::create(dir, max_bytes);
        };
        let (covered, complete) = scan(&last.path)?;
        let file = OpenOptions::new().append(true).open(&last.path)?;
        file.set_len(complete)?;
        let at_start = StreamOffsets { stdout: last.stdout, stderr: last.start.saturating_sub(last.stdout) };
        Ok(SpoolWriter {
            dir: dir.to_path_buf(),
            segment_bytes: (max_bytes / 2).max(1),
            file,
            segment_start: last.start,
            segment_len: covered.stdout + covered.stderr,
            streams: StreamOffsets {
                stdout: at_start.stdout + covered.stdout,
                stderr: at_start.stderr + covered.stderr,
            },
        })
    }

    /// Offset after the last byte written.
    pub(crate) fn end(&self) -> u64 {
        self.segment_start + self.segment_len
    }

    /// How far the spool got in each stream.
    pub(crate) fn streams(&self) -> StreamOffsets {
        self.streams
    }

    /// Appends a run of output.
    pub(crate) fn append(&mut self, kind: OutputKind, data: &[u8]) -> io::Result<()> {
        // Records are cut to fit a segment, so no segment outgrows its share by much.
        for piece in data.chunks(self.segment_bytes.clamp(1, u64::from(u32::MAX)) as usize) {
            self.write_record(Record::Data(kind, piece.len() as u64), piece)?;
        }
        Ok(())
    }

    /// Records that `n` bytes of `kind` were lost (never reached the spool):
    /// offsets move on, and a read across them reports them lost.
    pub(crate) fn skip(&mut self, kind: OutputKind, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let piece = n.min(u64::from(u32::MAX));
            self.write_record(Record::Lost(kind, piece), &[])?;
            n -= piece;
        }
        Ok(())
    }

    fn write_record(&mut self, record: Record, payload: &[u8]) -> io::Result<()> {
        if self.segment_len > 0 && self.segment_len + record.len() > self.segment_bytes {
            self.rotate()?;
        }
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.extend_from_slice(&record.header());
        bytes.extend_from_slice(payload);
        self.file.write_all(&bytes)?;
        self.segment_len += record.len();
        self.streams.add(record.kind(), record.len());
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let start = self.end();
        let name = segment_name(start, self.streams.stdout);
        self.file = OpenOptions::new().create(true).append(true).open(self.dir.join(name))?;
        self.segment_start = start;
        self.segment_len = 0;
        let all = segments(&self.dir)?;
        for segment in all.iter().take(all.len().saturating_sub(2)) {
            fs::remove_file(&segment.path)?;
        }
        Ok(())
    }
}

/// Reads up to `max` bytes from `offset` (see the module docs).
pub(crate) fn read(dir: &Path, offset: u64, max: usize) -> io::Result<SpoolRead> {
    let segments = segments(dir)?;
    let Some(oldest) = segments.first().map(|s| s.start) else {
        return Ok(SpoolRead { offset, next: offset, ..SpoolRead::default() });
    };
    let last = &segments[segments.len() - 1];
    let (covered, _) = scan(&last.path)?;
    let end = last.start + covered.stdout + covered.stderr;
    let lost = oldest.saturating_sub(offset);
    let from = offset.max(oldest);
    let mut result = SpoolRead { offset: from, lost, chunks: Vec::new(), next: from, end };
    if from >= end {
        return Ok(result);
    }
    let mut budget = max;
    let first = segments.iter().rposition(|s| s.start <= from).unwrap_or(0);
    'segments: for segment in &segments[first..] {
        let file = match File::open(&segment.path) {
            Ok(file) => file,
            // Dropped by the writer meanwhile: those bytes are lost to this read too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let mut position = segment.start;
        let mut header = [0u8; HEADER];
        while budget > 0 {
            if read_full(&mut reader, &mut header)? < HEADER {
                break;
            }
            let record = Record::parse(header);
            let record_end = position + record.len();
            if record_end <= result.next {
                reader.seek(SeekFrom::Current(record.payload() as i64))?;
                position = record_end;
                continue;
            }
            let Record::Data(kind, len) = record else {
                // Lost output: skipped as lost when the read starts there; a read
                // that already has bytes ends before it (lostBytes is only a prefix).
                if !result.chunks.is_empty() {
                    break 'segments;
                }
                result.lost += record_end - result.next;
                result.offset = record_end;
                result.next = record_end;
                position = record_end;
                continue;
            };
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
        let on_disk: u64 = segments(&dir).unwrap().iter().map(|s| scan(&s.path).unwrap().1).sum();
        assert!(on_disk <= 40 + 2 * HEADER as u64 * 4, "{on_disk} bytes kept");
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
        let mut file = OpenOptions::new().append(true).open(dir.join(segment_name(0, 0))).unwrap();
        file.write_all(&[1, 0, 0, 0, 9, b'x']).unwrap();
        let got = read(&dir, 0, 100).unwrap();
        assert_eq!(text(&got), "o:done");
        assert_eq!((got.next, got.end), (4, 4));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn lost_runs_are_reported_where_they_are() {
        let dir = temp("lost");
        let mut spool = SpoolWriter::create(&dir, 1 << 20).unwrap();
        spool.append(OutputKind::Stdout, b"abc").unwrap();
        spool.skip(OutputKind::Stdout, 10).unwrap();
        spool.append(OutputKind::Stderr, b"de").unwrap();
        assert_eq!(spool.end(), 15);
        assert_eq!(spool.streams(), StreamOffsets { stdout: 13, stderr: 2 });
        let first = read(&dir, 0, 100).unwrap();
        assert_eq!((text(&first).as_str(), first.next, first.lost), ("o:abc", 3, 0));
        let across = read(&dir, first.next, 100).unwrap();
        assert_eq!((text(&across).as_str(), across.offset, across.lost, across.next), ("e:de", 13, 10, 15));
        let inside = read(&dir, 5, 100).unwrap();
        assert_eq!((inside.offset, inside.lost, inside.next), (13, 8, 15));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reopened_spool_goes_on_where_it_was_and_drops_a_half_record() {
        let dir = temp("reopen");
        let mut spool = SpoolWriter::create(&dir, 24).unwrap();
        for n in 0..5u8 {
            spool.append(OutputKind::Stdout, &[b'a' + n; 5]).unwrap();
            spool.append(OutputKind::Stderr, &[b'A' + n; 2]).unwrap();
        }
        let (end, streams) = (spool.end(), spool.streams());
        assert_eq!((end, streams), (35, StreamOffsets { stdout: 25, stderr: 10 }));
        drop(spool);
        let last = segments(&dir).unwrap().pop().unwrap();
        OpenOptions::new().append(true).open(&last.path).unwrap().write_all(&[1, 0, 0, 0, 9, b'x']).unwrap();
        let mut again = SpoolWriter::open(&dir, 24).unwrap();
        assert_eq!((again.end(), again.streams()), (end, streams));
        again.append(OutputKind::Stdout, b"zz").unwrap();
        let tail = read(&dir, 35, 100).unwrap();
        assert_eq!((text(&tail).as_str(), tail.next), ("o:zz", 37));
        let fresh = temp("reopen-empty");
        let empty = SpoolWriter::open(&fresh, 24).unwrap();
        assert_eq!((empty.end(), empty.streams()), (0, StreamOffsets::default()));
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&fresh);
    }
}
