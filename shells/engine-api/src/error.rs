//! What can go wrong talking to an engine, and how the orchestrator sees it.
//!
//! Every failure keeps the engine's own message (Docker's and Podman's `{"message": …}`),
//! so the `WireError` the orchestrator receives says what the engine said.

use std::fmt;
use std::io;
use std::time::Duration;

use cropscode_core::protocol::{ErrorCode, WireError};

/// A failed engine call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// No engine answers at the endpoint: the socket does not exist, refuses connections,
    /// or may not be opened by this user.
    Unavailable {
        /// The endpoint tried (`unix:///var/run/docker.sock`).
        endpoint: String,
        /// Why it could not be reached.
        message: String,
    },
    /// The engine answered with an error status.
    Api {
        /// HTTP status (404 no such container/image, 409 conflict, 500 engine failure, …).
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The engine reported an error in the middle of a streamed answer (pull, build).
    Stream {
        /// The engine's message.
        message: String,
    },
    /// The call did not finish in time.
    Timeout {
        /// What was being done (`"exec"`, `"GET /containers/json"`).
        operation: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The connection broke during the call (the engine stopped or crashed).
    Connection(String),
    /// The engine's answer could not be understood.
    Protocol(String),
    /// The caller's request cannot be sent as given (bad name, bad path in a tar entry).
    InvalidArgument(String),
}

impl EngineError {
    /// The protocol error code the orchestrator sees for this error.
    ///
    /// 404 → `not_found`, 409 → `conflict`, 400 (the engine refused a value) or a request
    /// the client refused to send → `invalid_request`, 401/403 → `forbidden`, an
    /// unreachable engine, a broken connection, a 5xx or an error reported in the middle of
    /// a stream → `engine_unavailable` (the engine failed; it may pass), a time limit →
    /// `timeout`, an answer the client cannot read → `internal`.
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Unavailable { .. } | EngineError::Connection(_) => ErrorCode::EngineUnavailable,
            EngineError::Api { status: 404, .. } => ErrorCode::NotFound,
            EngineError::Api { status: 409, .. } => ErrorCode::Conflict,
            EngineError::Api { status: 400, .. } | EngineError::InvalidArgument(_) => ErrorCode::InvalidRequest,
            EngineError::Api { status: 401 | 403, .. } => ErrorCode::Forbidden,
            EngineError::Api { status: 500.., .. } | EngineError::Stream { .. } => ErrorCode::EngineUnavailable,
            EngineError::Api { .. } | EngineError::Protocol(_) => ErrorCode::Internal,
            EngineError::Timeout { .. } => ErrorCode::Timeout,
        }
    }

    /// The engine's HTTP status, when the engine answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            EngineError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The engine says the container, image or exec does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The engine could not be reached at all (as opposed to answering with an error).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EngineError::Unavailable { .. } | EngineError::Connection(_))
    }

    /// This error as the `{code, message}` pair of a result frame.
    pub fn to_wire(&self) -> WireError {
        WireError::new(self.code(), self.to_string())
    }

    pub(crate) fn connect(endpoint: &str, error: &io::Error) -> EngineError {
        let message = match error.kind() {
            io::ErrorKind::NotFound => format!("no engine socket at {endpoint}"),
            io::ErrorKind::ConnectionRefused => format!("the engine at {endpoint} refuses connections"),
            io::ErrorKind::PermissionDenied => {
                format!("permission denied opening {endpoint} (is this user allowed to use the engine?)")
            }
            _ => format!("cannot connect to {endpoint}: {error}"),
        };
        EngineError::Unavailable { endpoint: endpoint.to_owned(), message }
    }

    pub(crate) fn timeout(operation: impl Into<String>, after: Duration) -> EngineError {
        EngineError::Timeout { operation: operation.into(), after }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Unavailable { message, .. } => write!(f, "engine unavailable: {message}"),
            EngineError::Api { status, message } => write!(f, "engine error ({status}): {message}"),
            EngineError::Stream { message } => write!(f, "engine error: {message}"),
            EngineError::Timeout { operation, after } => {
                write!(f, "{operation} did not finish within {} ms", after.as_millis())
            }
            EngineError::Connection(m) => write!(f, "connection to the engine broke: {m}"),
            EngineError::Protocol(m) => write!(f, "unexpected answer from the engine: {m}"),
            EngineError::InvalidArgument(m) => write!(f, "invalid request: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<EngineError> for WireError {
    fn from(error: EngineError) -> WireError {
        error.to_wire()
    }
}

/// Result of an engine call.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Turns the body of an error answer into the engine's message.
///
/// Docker answers `{"message": "..."}`; Podman's compatible API answers
/// `{"cause": "...", "message": "...", "response": 404}`. Anything else is kept as text.
pub(crate) fn api_error(status: u16, body: &[u8]) -> EngineError {
    #[derive(serde::Deserialize)]
    struct Body {
        message: Option<String>,
        cause: Option<String>,
    }
    let (message, cause) = match serde_json::from_slice::<Body>(body) {
        Ok(Body { message: Some(m), cause }) if !m.is_empty() => (m, cause),
        _ => {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            (if text.is_empty() { format!("HTTP {status}") } else { text }, None)
        }
    };
    // Podman answers some conflicts and misses with 500 and says what it meant in `cause`
    // (libpod's error texts); both engines answer a host port in use with 500.
    let port_taken = ["port is already allocated", "address already in use"].iter().any(|m| message.contains(m));
    let status = match (status, cause.as_deref()) {
        (500, _) if port_taken => 409,
        (
            500,
            Some(
                "container state improper"
                | "that name is already in use"
                | "container already exists"
                | "image is being used"
                | "image is in use by a container",
            ),
        ) => 409,
        (500, Some("no such container" | "no such image" | "no such exec session" | "no such object")) => 404,
        // Options the engine cannot apply (a missing network, a malformed sysctl): the
        // request's fault, not a passing engine failure to retry.
        (500, Some("network not found" | "invalid argument")) => 400,
        _ => status,
    };
    EngineError::Api { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_wire_codes() {
        let api = |status| EngineError::Api { status, message: "m".into() };
        assert_eq!(api(404).code(), ErrorCode::NotFound);
        assert_eq!(api(409).code(), ErrorCode::Conflict);
        assert_eq!(api(500).code(), ErrorCode::EngineUnavailable);
        assert_eq!(api(400).code(), ErrorCode::InvalidRequest);
        assert_eq!(api(403).code(), ErrorCode::Forbidden);
        assert_eq!(api(418).code(), ErrorCode::Internal);
        assert_eq!(EngineError::Protocol("?".into()).code(), ErrorCode::Internal);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(EngineError::connect("unix:///x", &refused).code(), ErrorCode::EngineUnavailable);
        let missing = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(EngineError::connect("unix:///x", &missing).code(), ErrorCode::EngineUnavailable);
        assert_eq!(EngineError::timeout("exec", Duration::from_secs(1)).code(), ErrorCode::Timeout);
        assert_eq!(EngineError::Connection("reset".into()).code(), ErrorCode::EngineUnavailable);
    }

    #[test]
    fn engine_messages_are_kept() {
        let docker = api_error(404, br#"{"message":"No such container: x"}"#);
        assert_eq!(docker.to_wire().message, "engine error (404): No such container: x");
        let podman = api_error(409, br#"{"cause":"name in use","message":"the name x is in use","response":409}"#);
        assert_eq!(podman, EngineError::Api { status: 409, message: "the name x is in use".into() });
        let improper = br#"{"cause":"container state improper","message":"cannot remove container c as it is running","response":500}"#;
        assert_eq!(api_error(500, improper).code(), ErrorCode::Conflict);
        assert_eq!(api_error(500, b"plain text\n"), EngineError::Api { status: 500, message: "plain text".into() });
        let network = br#"{"cause":"network not found","message":"unable to find network with name or ID n: network not found","response":500}"#;
        assert_eq!(api_error(500, network).code(), ErrorCode::InvalidRequest);
        assert_eq!(api_error(502, b""), EngineError::Api { status: 502, message: "HTTP 502".into() });
        let port = br#"{"message":"driver failed programming external connectivity: Bind for 0.0.0.0:13000 failed: port is already allocated"}"#;
        assert_eq!(api_error(500, port).code(), ErrorCode::Conflict);
    }
}
