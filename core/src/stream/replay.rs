//! The output side of a live stream: a bounded replay buffer indexed by
//! absolute byte offset.
//!
//! Offsets count every byte the stream ever produced, from 0. The buffer holds
//! the last `capacity` of them, `[start, end)`; pushing more drops the oldest
//! bytes, so `start` only grows. A reader that asks for an offset before
//! `start` learns how many bytes it lost; one at or after it gets exactly the
//! bytes that follow.

use alloc::collections::VecDeque;

/// The last `capacity` bytes of a stream, by absolute offset.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    bytes: VecDeque<u8>,
    capacity: usize,
    end: u64,
}

impl ReplayBuffer {
    /// An empty buffer that keeps at most `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Self {
        ReplayBuffer { bytes: VecDeque::new(), capacity: capacity.max(1), end: 0 }
    }

    /// Offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.end - self.bytes.len() as u64
    }

    /// Offset of the next byte to be pushed: the total produced so far.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The most bytes held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `data`, dropping the oldest bytes beyond the capacity.
    /// Returns how many bytes were dropped.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.end += data.len() as u64;
        let mut dropped = 0u64;
        let data = if data.len() > self.capacity {
            dropped += (data.len() - self.capacity) as u64;
            &data[data.len() - self.capacity..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            self.bytes.drain(..overflow);
            dropped += overflow as u64;
        }
        self.bytes.extend(data);
        dropped
    }

    /// Up to `max` bytes starting at `offset`, clamped into `[start, end]`:
    /// the first contiguous run of them (the buffer is a ring, so a read may
    /// return fewer than `max` bytes while more follow).
    pub fn read(&self, offset: u64, max: usize) -> &[u8] {
        let offset = offset.clamp(self.start(), self.end);
        let skip = (offset - self.start()) as usize;
        let (front, back) = self.bytes.as_slices();
        let run = if skip < front.len() { &front[skip..] } else { &back[skip - front.len()..] };
        &run[..run.len().min(max)]
    }

    /// Bytes between `offset` and the oldest byte held (0 when `offset` is still held).
    pub fn lost_before(&self, offset: u64) -> u64 {
        self.start().saturating_sub(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn read_all(buffer: &ReplayBuffer, offset: u64) -> Vec<u8> {
        let mut offset = offset.max(buffer.start());
        let mut out = Vec::new();
        loop {
            let run = buffer.read(offset, 3);
            if run.is_empty() {
                return out;
            }
            offset += run.len() as u64;
            out.extend_from_slice(run);
        }
    }

    #[test]
    fn keeps_the_last_capacity_bytes_by_offset() {
        let mut b = ReplayBuffer::new(8);
        assert_eq!(b.push(b"hello"), 0);
        assert_eq!((b.start(), b.end()), (0, 5));
        assert_eq!(read_all(&b, 2), b"llo");
        assert_eq!(b.push(b" world"), 3);
        assert_eq!((b.start(), b.end()), (3, 11));
        assert_eq!(read_all(&b, 3), b"lo world");
        assert_eq!(read_all(&b, 9), b"ld");
        assert_eq!(b.lost_before(1), 2);
        assert_eq!(b.lost_before(4), 0);
        assert_eq!(read_all(&b, 0), b"lo world", "an offset before start reads from start");
        assert!(b.read(11, 10).is_empty());
    }

    #[test]
    fn a_push_larger_than_the_capacity_keeps_its_tail() {
        let mut b = ReplayBuffer::new(4);
        b.push(b"ab");
        assert_eq!(b.push(b"0123456789"), 8);
        assert_eq!((b.start(), b.end()), (8, 12));
        assert_eq!(read_all(&b, 0), b"6789");
    }

    #[test]
    fn reads_across_the_ring_seam() {
        let mut b = ReplayBuffer::new(6);
        for chunk in [&b"abcd"[..], b"ef", b"gh", b"ij"] {
            b.push(chunk);
        }
        assert_eq!(read_all(&b, 4), b"efghij");
        assert!(b.read(4, 100).len() <= 6);
    }
}
