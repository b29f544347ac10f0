//! The input side of a live stream: bytes from the orchestrator waiting to be
//! written to the engine, deduplicated by offset.
//!
//! Input offsets count every byte accepted on the stream, from 0, whether it
//! came in a binary data frame or in `terminal.input`. A frame that repeats
//! bytes already accepted (a re-send after a reconnect) has them dropped; a
//! frame that starts after the next expected offset would leave a gap and is
//! refused, as is one that does not fit the bounded queue. Either refusal
//! names the offset to re-send from, so nothing is applied twice or skipped.

use alloc::collections::VecDeque;

/// Why input was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRefusal {
    /// The frame starts after `expected`: bytes in between never arrived.
    Gap {
        /// The next offset the stream expects.
        expected: u64,
    },
    /// The queue is full; re-send from `expected` once the engine caught up.
    Full {
        /// The next offset the stream expects.
        expected: u64,
    },
    /// The stream takes no more input (it is closing or ended).
    Closed,
}

/// Bytes accepted from the orchestrator and not yet written to the engine.
#[derive(Debug, Clone)]
pub struct InputQueue {
    pending: VecDeque<u8>,
    capacity: usize,
    /// Offset after the last accepted byte.
    end: u64,
    closed: bool,
}

impl InputQueue {
    /// An empty queue holding at most `capacity` unwritten bytes.
    pub fn new(capacity: usize) -> Self {
        InputQueue { pending: VecDeque::new(), capacity: capacity.max(1), end: 0, closed: false }
    }

    /// The next input offset expected.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes accepted but not yet written.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes the bytes of a frame starting at `offset`; returns how many were new.
    pub fn accept_at(&mut self, offset: u64, payload: &[u8]) -> Result<usize, InputRefusal> {
        if self.closed {
            return Err(InputRefusal::Closed);
        }
        if offset > self.end {
            return Err(InputRefusal::Gap { expected: self.end });
        }
        let seen = usize::try_from(self.end - offset).unwrap_or(usize::MAX);
        if seen >= payload.len() {
            return Ok(0);
        }
        self.append(&payload[seen..])
    }

    /// Appends `data` at the current end (`terminal.input`); returns its length.
    pub fn append(&mut self, data: &[u8]) -> Result<usize, InputRefusal> {
        if self.closed {
            return Err(InputRefusal::Closed);
        }
        if self.pending.len() + data.len() > self.capacity {
            return Err(InputRefusal::Full { expected: self.end });
        }
        self.pending.extend(data);
        self.end += data.len() as u64;
        Ok(data.len())
    }

    /// The next bytes to write (a contiguous run; more may follow).
    pub fn next_run(&self) -> &[u8] {
        let (front, back) = self.pending.as_slices();
        if front.is_empty() { back } else { front }
    }

    /// `n` bytes of [`next_run`](Self::next_run) were written.
    pub fn consume(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
    }

    /// Drops what is pending and refuses input from now on.
    pub fn close(&mut self) {
        self.closed = true;
        self.pending = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_bytes_are_dropped_and_gaps_refused() {
        let mut q = InputQueue::new(16);
        assert_eq!(q.accept_at(0, b"ls"), Ok(2));
        assert_eq!(q.accept_at(0, b"ls"), Ok(0), "a re-send changes nothing");
        assert_eq!(q.accept_at(1, b"s -l"), Ok(3), "overlap: only the new bytes");
        assert_eq!(q.accept_at(9, b"x"), Err(InputRefusal::Gap { expected: 5 }));
        assert_eq!(q.append(b"\r"), Ok(1));
        assert_eq!(q.next_run(), b"ls -l\r");
        q.consume(3);
        assert_eq!(q.next_run(), b"-l\r");
        assert_eq!(q.end(), 6);
    }

    #[test]
    fn a_full_queue_refuses_and_names_the_offset() {
        let mut q = InputQueue::new(4);
        assert_eq!(q.accept_at(0, b"abc"), Ok(3));
        assert_eq!(q.accept_at(3, b"de"), Err(InputRefusal::Full { expected: 3 }));
        q.consume(3);
        assert_eq!(q.accept_at(3, b"de"), Ok(2));
        q.close();
        assert_eq!(q.append(b"x"), Err(InputRefusal::Closed));
        assert!(q.next_run().is_empty());
    }
}
