//! The wire contract with the orchestrator (`docs/protocol.md` is its prose form).
//!
//! Text frames carry one JSON object each with a `type`; binary frames carry
//! stream bytes behind a small channel header. Data flows:
//!
//! - in: [`codec::decode_text`] turns a text frame into an [`Incoming`] or a
//!   [`codec::DecodeError`] that names the reply to send;
//! - out: [`Outgoing`] values are encoded with [`codec::encode`].
//!
//! Every type here mirrors a section of `docs/protocol.md`; change both together.

pub mod binary;
pub mod codec;
pub mod commands;
pub mod error;
pub mod limits;
pub mod messages;

pub use binary::{Channel, StreamFrame, StreamKind};
pub use codec::{DecodeError, Incoming, decode_text, encode};
pub use commands::Command;
pub use error::{ErrorCode, WireError};
pub use limits::Limits;
pub use messages::*;

/// Version of this wire contract, announced in `worker.register`.
///
/// Bumped only for changes an orchestrator must know about; adding optional
/// fields does not bump it (unknown fields are ignored on both sides).
pub const PROTOCOL_VERSION: u32 = 1;
