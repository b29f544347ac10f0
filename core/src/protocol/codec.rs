//! Strict, bounded decoding of text frames, and encoding of outgoing ones.
//!
//! Decoding happens in three steps, cheapest first, so that a hostile frame
//! costs little and never panics:
//!
//! 1. size: a frame over [`Limits::max_text_frame_bytes`] is refused;
//! 2. shape: one pass over the bytes checks nesting depth and string lengths
//!    ([`Limits::max_json_depth`], [`Limits::max_string_bytes`]) before any
//!    allocation-heavy parse;
//! 3. content: the frame is parsed and its `type` routes it to a typed message
//!    or [`Command`]. Unknown fields are ignored; unknown types are an error.
//!
//! Any failure is a [`DecodeError`] carrying the reply to send. When the frame
//! carried a usable `id` (even an oversized or too-deep one), the reply is a
//! `result` for that id, so the orchestrator's request is answered exactly once.

use alloc::format;
use alloc::string::{String, ToString};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::commands::{Command, CommandDecodeError};
use super::{CommandResult, ErrorCode, ErrorFrame, Limits, Outgoing, Registered, Rejected, WireError};

/// A decoded text frame from the orchestrator.
// `Command` is held by value: a decoded frame is consumed at once, so a large
// slot costs less than an allocation per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `worker.registered`
    Registered(Registered),
    /// `worker.rejected`
    Rejected(Rejected),
    /// A command with the orchestrator's request id.
    Command {
        /// The request id; the result carries it back.
        id: String,
        /// The decoded command.
        command: Command,
    },
}

/// A text frame that could not be decoded, with what to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// The frame's `id`, when one could be read.
    pub id: Option<String>,
    /// The command the frame names, when its `type` is a known command (its
    /// params, or its id, were what failed).
    pub command: Option<&'static str>,
    /// What is wrong.
    pub error: WireError,
}

impl DecodeError {
    fn new(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        DecodeError { id, command: None, error: WireError::new(code, message) }
    }

    fn of_command(mut self, kind: &str) -> Self {
        self.command = Command::known_name(kind);
        self
    }

    /// The frame to send back: a failed `result` when the id is known, else an `error` frame.
    pub fn reply(&self) -> Outgoing {
        match &self.id {
            Some(id) => Outgoing::Result(CommandResult::from_outcome(id.clone(), Err(self.error.clone()))),
            None => Outgoing::Error(ErrorFrame { error: self.error.clone() }),
        }
    }
}

/// Decodes one text frame under `limits`.
pub fn decode_text(text: &str, limits: &Limits) -> Result<Incoming, DecodeError> {
    let max_frame = limits.max_text_frame_bytes as usize;
    if text.len() > max_frame {
        return Err(DecodeError::new(
            probe_id(text, limits),
            ErrorCode::FrameTooLarge,
            format!("text frame of {} bytes exceeds the limit of {max_frame} bytes", text.len()),
        ));
    }
    if let Err(message) = check_shape(text.as_bytes(), limits) {
        return Err(DecodeError::new(probe_id(text, limits), ErrorCode::InvalidRequest, message));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::new(None, ErrorCode::InvalidRequest, format!("malformed JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::new(None, ErrorCode::InvalidRequest, "a text frame must be a JSON object"));
    };
    let id = take_id(&mut object, limits)?;
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(DecodeError::new(id, ErrorCode::InvalidRequest, "`type` must be a string")),
        None => return Err(DecodeError::new(id, ErrorCode::InvalidRequest, "missing `type`")),
    };
    match kind.as_str() {
        "worker.registered" => from_object(object).map(Incoming::Registered).map_err(|e| invalid(id, &kind, e)),
        "worker.rejected" => from_object(object).map(Incoming::Rejected).map_err(|e| invalid(id, &kind, e)),
        _ => {
            let params = object.remove("params").unwrap_or_else(|| Value::Object(Map::new()));
            // Unknown type first, then a missing id, then the params: the most
            // basic fault is the one reported.
            match (Command::decode(&kind, params), id) {
                (Err(CommandDecodeError::Unknown), id) => Err(DecodeError::new(
                    id,
                    ErrorCode::UnknownCommand,
                    format!("unknown message type `{}`", truncate(&kind, 64)),
                )),
                (_, None) => {
                    Err(DecodeError::new(None, ErrorCode::InvalidRequest, format!("command `{kind}` needs an `id`"))
                        .of_command(&kind))
                }
                (Err(CommandDecodeError::Invalid(message)), id) => {
                    Err(DecodeError::new(id, ErrorCode::InvalidRequest, format!("{kind}: {message}")).of_command(&kind))
                }
                (Ok(command), Some(id)) => Ok(Incoming::Command { id, command }),
            }
        }
    }
}

/// Encodes an outgoing frame as JSON text.
pub fn encode(message: &Outgoing) -> String {
    // Serializing our own types cannot fail (string keys, no foreign Serialize impls);
    // the fallback keeps that an invariant rather than a panic.
    serde_json::to_string(message).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","error":{{"code":"internal","message":"cannot encode frame: {e}"}}}}"#)
    })
}

fn invalid(id: Option<String>, kind: &str, error: serde_json::Error) -> DecodeError {
    DecodeError::new(id, ErrorCode::InvalidRequest, format!("{kind}: {error}"))
}

fn from_object<T: for<'de> Deserialize<'de>>(object: Map<String, Value>) -> Result<T, serde_json::Error> {
    serde_json::from_value(Value::Object(object))
}

fn take_id(object: &mut Map<String, Value>, limits: &Limits) -> Result<Option<String>, DecodeError> {
    match object.remove("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => validate_id(id, limits).map(Some),
        Some(_) => Err(DecodeError::new(None, ErrorCode::InvalidRequest, "`id` must be a string")),
    }
}

fn validate_id(id: String, limits: &Limits) -> Result<String, DecodeError> {
    if id.is_empty() {
        return Err(DecodeError::new(None, ErrorCode::InvalidRequest, "`id` must not be empty"));
    }
    if id.len() > usize::from(limits.max_id_bytes) {
        return Err(DecodeError::new(
            None,
            ErrorCode::InvalidRequest,
            format!("`id` of {} bytes exceeds the limit of {} bytes", id.len(), limits.max_id_bytes),
        ));
    }
    Ok(id)
}

/// Reads just the top-level `id` of a frame that failed a bound, skipping
/// everything else without building it (serde's `IgnoredAny`; serde_json's
/// own recursion limit keeps the stack safe on very deep input).
fn probe_id(text: &str, limits: &Limits) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<IdValue>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IdValue {
        Str(String),
        #[allow(dead_code)]
        Other(IgnoredAny),
    }
    let probe: IdOnly = serde_json::from_str(text).ok()?;
    match probe.id? {
        IdValue::Str(id) => validate_id(id, limits).ok(),
        IdValue::Other(_) => None,
    }
}

/// One pass over the raw bytes: nesting depth and string lengths.
fn check_shape(bytes: &[u8], limits: &Limits) -> Result<(), String> {
    let max_depth = usize::from(limits.max_json_depth);
    let max_string = limits.max_string_bytes as usize;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_len = 0usize;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                continue;
            }
            string_len += 1;
            if string_len > max_string {
                return Err(format!("a JSON string exceeds the limit of {max_string} bytes"));
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_len = 0;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(format!("JSON nesting exceeds the limit of {max_depth} levels"));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn decode(text: &str) -> Result<Incoming, DecodeError> {
        decode_text(text, &Limits::DEFAULT)
    }

    #[test]
    fn decodes_ack_and_ignores_unknown_fields() {
        let got = decode(r#"{"type":"worker.registered","workerId":"w-1","future":{"x":1}}"#).unwrap();
        assert_eq!(got, Incoming::Registered(Registered { worker_id: "w-1".into(), gateway: None }));
        let got = decode(r#"{"type":"worker.registered","workerId":"w-1","gateway":{"url":"tcp://gw:53"}}"#).unwrap();
        let gateway = Some(super::super::Gateway { url: "tcp://gw:53".into() });
        assert_eq!(got, Incoming::Registered(Registered { worker_id: "w-1".into(), gateway }));
    }

    #[test]
    fn malformed_json_is_an_error_frame() {
        let err = decode("{not json").unwrap_err();
        assert_eq!(err.error.code, ErrorCode::InvalidRequest);
        assert!(matches!(err.reply(), Outgoing::Error(_)));
    }

    #[test]
    fn non_object_and_missing_type_are_invalid() {
        assert_eq!(decode("[1,2]").unwrap_err().error.code, ErrorCode::InvalidRequest);
        let err = decode(r#"{"id":"c1"}"#).unwrap_err();
        assert_eq!((err.id.as_deref(), err.error.code), (Some("c1"), ErrorCode::InvalidRequest));
    }

    #[test]
    fn unknown_type_with_id_gets_a_result() {
        let err = decode(r#"{"type":"container.teleport","id":"c9","params":{}}"#).unwrap_err();
        assert_eq!(err.error.code, ErrorCode::UnknownCommand);
        match err.reply() {
            Outgoing::Result(r) => assert_eq!((r.id.as_str(), r.ok), ("c9", false)),
            other => panic!("expected a result, got {other:?}"),
        }
    }

    #[test]
    fn oversized_frame_is_answered_for_its_id() {
        let limits = Limits { max_text_frame_bytes: 64, ..Limits::DEFAULT };
        let text = format!(r#"{{"type":"container.list","id":"big","params":{{"pad":"{}"}}}}"#, "x".repeat(100));
        let err = decode_text(&text, &limits).unwrap_err();
        assert_eq!((err.id.as_deref(), err.error.code), (Some("big"), ErrorCode::FrameTooLarge));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let text = format!(r#"{{"type":"x","id":"deep","params":{}{}}}"#, "[".repeat(40), "]".repeat(40));
        let err = decode(&text).unwrap_err();
        assert_eq!((err.id.as_deref(), err.error.code), (Some("deep"), ErrorCode::InvalidRequest));
        assert!(err.error.message.contains("nesting"), "{}", err.error.message);
        // Far deeper than serde_json's own recursion limit: still an error, never a crash.
        let text = "[".repeat(100_000);
        assert_eq!(decode(&text).unwrap_err().error.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn long_strings_are_refused() {
        let limits = Limits { max_string_bytes: 8, ..Limits::DEFAULT };
        let err =
            decode_text(r#"{"type":"container.list","id":"s","params":{"x":"0123456789"}}"#, &limits).unwrap_err();
        assert_eq!((err.id.as_deref(), err.error.code), (Some("s"), ErrorCode::InvalidRequest));
        // Escaped quotes do not end a string early.
        assert!(decode_text(r#"{"type":"a\"b\"c\"d\"e"}"#, &limits).is_err());
    }

    #[test]
    fn bad_ids_are_refused() {
        assert_eq!(decode(r#"{"type":"container.list","id":7}"#).unwrap_err().id, None);
        assert_eq!(decode(r#"{"type":"container.list","id":""}"#).unwrap_err().id, None);
        let long = format!(r#"{{"type":"container.list","id":"{}"}}"#, "i".repeat(200));
        assert_eq!(decode(&long).unwrap_err().error.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ééé", 3), "é…".to_string());
    }
}
