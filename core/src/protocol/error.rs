//! Error codes the orchestrator can see, and the `{code, message}` pair that carries them.

use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Every error code that can appear on the wire (`error.code`).
///
/// Serialized in `snake_case`. New codes may be added in later protocol
/// versions: orchestrators should treat an unknown code like `internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, misses a required field, has a field of the wrong type or out of its bounds.
    InvalidRequest,
    /// The frame's `type` is not a message or command this worker knows.
    UnknownCommand,
    /// A text frame exceeded `maxTextFrameBytes` (or a binary frame `maxBinaryFrameBytes`).
    FrameTooLarge,
    /// The target (container, image, session) does not exist or is not managed by this worker.
    NotFound,
    /// The target is in a state that does not allow the command (name in use, already running, …).
    Conflict,
    /// The worker's local policy (security floor, ownership) refuses the command.
    Forbidden,
    /// No container engine is reachable, or the engine failed in a way that may pass.
    EngineUnavailable,
    /// The command did not finish within its time limit.
    Timeout,
    /// The worker is at one of its documented limits (e.g. concurrent commands); retry later.
    Busy,
    /// A bug or an unexpected failure inside the worker.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the same command may succeed if the orchestrator sends it again later.
    pub const fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::EngineUnavailable | ErrorCode::Timeout | ErrorCode::Busy)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a failed result or an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation. Never contains a secret.
    pub message: String,
}

impl WireError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError { code, message: message.into() }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_documented() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::UnknownCommand,
            ErrorCode::FrameTooLarge,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::Forbidden,
            ErrorCode::EngineUnavailable,
            ErrorCode::Timeout,
            ErrorCode::Busy,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, alloc::format!("\"{}\"", code.as_str()));
        }
    }
}
