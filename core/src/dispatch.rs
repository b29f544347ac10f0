//! Command dispatch: from an [`Event::Execute`](crate::session::Event::Execute)
//! to the [`Engine`], and back as `(id, outcome)` for
//! [`Session::handle_command_result`](crate::session::Session::handle_command_result).
//!
//! The engine routes by [`Command::name`]; this layer only pairs the outcome
//! with its command id and logs it. Policy checks (security floor, ownership)
//! will sit here, in front of the engine, when they arrive.

use alloc::format;
use alloc::string::String;
use core::future::{Ready, ready};
use serde_json::Value;

use crate::protocol::{Command, ErrorCode, WireError};
use crate::traits::Engine;

/// Runs `command` on `engine` and returns its outcome tagged with `id`.
pub async fn dispatch<E: Engine>(engine: &E, id: String, command: Command) -> (String, Result<Value, WireError>) {
    let name = command.name();
    let outcome = engine.execute(command).await;
    match &outcome {
        Ok(_) => tracing::debug!(id = %id, command = name, "command succeeded"),
        Err(error) => tracing::info!(id = %id, command = name, %error, "command failed"),
    }
    (id, outcome)
}

/// An engine that refuses every command with `engine_unavailable`: what the
/// worker runs with until a container engine is wired in.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEngine;

impl Engine for NoEngine {
    type Execute<'a> = Ready<Result<Value, WireError>>;

    fn execute(&self, command: Command) -> Self::Execute<'_> {
        ready(Err(WireError::new(
            ErrorCode::EngineUnavailable,
            format!("`{}` needs a container engine, and this worker has none configured", command.name()),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::commands::COMMAND_NAMES;
    use futures_lite::future::block_on;

    #[test]
    fn no_engine_answers_engine_unavailable_with_the_id() {
        let name = COMMAND_NAMES
            .iter()
            .find(|name| Command::decode(name, serde_json::json!({})).is_ok())
            .expect("some command takes empty params");
        let command = Command::decode(name, serde_json::json!({})).unwrap();
        let (id, outcome) = block_on(dispatch(&NoEngine, "c-1".into(), command));
        assert_eq!(id, "c-1");
        let error = outcome.unwrap_err();
        assert_eq!(error.code, ErrorCode::EngineUnavailable);
        assert!(error.message.contains(name), "{}", error.message);
    }
}
