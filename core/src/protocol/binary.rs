//! Binary frames: stream bytes (terminal and display) multiplexed by channel.
//!
//! ```text
//! 0        1                5                        13
//! +--------+----------------+------------------------+-------------
//! | kind   | channel u32 BE | offset u64 BE          | payload …
//! +--------+----------------+------------------------+-------------
//! ```
//!
//! `offset` is the stream position of the payload's first byte, counted from
//! the start of that stream in that direction. It lets a re-attached reader
//! say exactly which bytes it has, and lets the worker drop input it has
//! already applied.
//!
//! Kinds: `0x01` data (both directions), `0x02` end (worker → orchestrator:
//! the stream ended; `offset` is its total output, the payload a small JSON
//! object with `reason` and, when known, `exitCode`).

use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use super::{ErrorCode, WireError};

/// The channel of a live stream: the number in every binary frame's header,
/// and the `channel` of the `terminal.open` and `display.open` results (a plain
/// JSON number on the wire). The worker allocates channels from 1 and does not
/// reuse one while it runs; the default, 0, is never allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Channel(u32);

impl Channel {
    /// The channel numbered `n`.
    pub const fn new(n: u32) -> Channel {
        Channel(n)
    }

    /// Its number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The next number, wrapping after `u32::MAX` (to 0, which is never allocated).
    pub(crate) const fn wrapping_next(self) -> Channel {
        Channel(self.0.wrapping_add(1))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 13;

/// What a binary frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamKind {
    /// Stream bytes: worker→orchestrator output, orchestrator→worker input.
    Data,
    /// Worker→orchestrator: the stream ended after `offset` output bytes; the
    /// payload is JSON (`{"reason":"exited","exitCode":0}`).
    End,
}

impl StreamKind {
    const fn to_byte(self) -> u8 {
        match self {
            StreamKind::Data => 0x01,
            StreamKind::End => 0x02,
        }
    }

    const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(StreamKind::Data),
            0x02 => Some(StreamKind::End),
            _ => None,
        }
    }
}

/// A decoded binary frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFrame<'a> {
    /// What the frame carries.
    pub kind: StreamKind,
    /// The stream channel, as returned by `terminal.open` / `display.open`.
    pub channel: Channel,
    /// Stream position of `payload[0]`.
    pub offset: u64,
    /// The bytes.
    pub payload: &'a [u8],
}

impl<'a> StreamFrame<'a> {
    /// Parses a binary frame; `max_len` is the largest frame accepted, header included.
    pub fn decode(bytes: &'a [u8], max_len: usize) -> Result<Self, WireError> {
        if bytes.len() > max_len {
            return Err(WireError::new(
                ErrorCode::FrameTooLarge,
                alloc::format!("binary frame of {} bytes exceeds the limit of {max_len}", bytes.len()),
            ));
        }
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                alloc::format!("binary frame of {} bytes is shorter than its {HEADER_LEN}-byte header", bytes.len()),
            ));
        };
        let kind = StreamKind::from_byte(header[0]).ok_or_else(|| {
            WireError::new(ErrorCode::InvalidRequest, alloc::format!("unknown binary frame kind 0x{:02x}", header[0]))
        })?;
        let mut channel = [0u8; 4];
        channel.copy_from_slice(&header[1..5]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&header[5..13]);
        Ok(StreamFrame {
            kind,
            channel: Channel(u32::from_be_bytes(channel)),
            offset: u64::from_be_bytes(offset),
            payload,
        })
    }

    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.push(self.kind.to_byte());
        out.extend_from_slice(&self.channel.0.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let f = StreamFrame { kind: StreamKind::Data, channel: Channel(7), offset: 1 << 40, payload: b"ls\r" };
        let bytes = f.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 3);
        assert_eq!(StreamFrame::decode(&bytes, 1024).unwrap(), f);
    }

    #[test]
    fn rejects_short_unknown_and_oversized() {
        assert_eq!(StreamFrame::decode(&[1, 0, 0], 1024).unwrap_err().code, ErrorCode::InvalidRequest);
        let mut bytes = StreamFrame { kind: StreamKind::Data, channel: Channel(1), offset: 0, payload: b"x" }.encode();
        bytes[0] = 0x7f;
        assert_eq!(StreamFrame::decode(&bytes, 1024).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(StreamFrame::decode(&[0u8; 100], 50).unwrap_err().code, ErrorCode::FrameTooLarge);
    }
}
