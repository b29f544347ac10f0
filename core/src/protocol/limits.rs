//! Explicit bounds on everything that arrives from the wire.
//!
//! Each bound is documented in `docs/protocol.md` § Limits together with what
//! the worker does when it is exceeded.

use serde::{Deserialize, Serialize};

/// Bounds applied to incoming frames before and during decoding.
///
/// Announced to the orchestrator in `worker.register` (`limits`), so it can
/// split or refuse work up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest text frame the worker decodes, in bytes. Larger ones get a
    /// `frame_too_large` reply and are otherwise ignored.
    pub max_text_frame_bytes: u32,
    /// Largest binary frame (header included) the worker accepts or sends.
    pub max_binary_frame_bytes: u32,
    /// Deepest nesting of JSON arrays and objects in a text frame.
    pub max_json_depth: u16,
    /// Longest JSON string (in bytes, after the frame's own escaping) in a text frame.
    pub max_string_bytes: u32,
    /// Longest command `id`, in bytes.
    pub max_id_bytes: u16,
}

impl Limits {
    /// The defaults the worker runs with.
    pub const DEFAULT: Limits = Limits {
        max_text_frame_bytes: 1024 * 1024,
        max_binary_frame_bytes: 64 * 1024 + super::binary::HEADER_LEN as u32,
        max_json_depth: 32,
        max_string_bytes: 512 * 1024,
        max_id_bytes: 128,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Hard cap on any WebSocket message the transport will buffer at all.
///
/// Frames between [`Limits::max_text_frame_bytes`] and this cap are read and
/// answered with `frame_too_large`; a frame above it makes the transport close
/// the connection with code 1009 (the worker then reconnects).
pub const TRANSPORT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
