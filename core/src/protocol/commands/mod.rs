//! Commands the orchestrator sends, decoded from `{type, id, params}`.
//!
//! STUB: the typed parameters of every command are being written (see docs/protocol.md).
//! The public surface that the rest of the core relies on is fixed:
//! [`Command::decode`], [`Command::name`], [`CommandDecodeError`].

use alloc::string::String;
use serde_json::Value;

/// Why a command could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandDecodeError {
    /// No command has this name.
    Unknown,
    /// The name is known but the params are not valid; the message says which field and why.
    Invalid(String),
}

/// Every command name of the protocol.
pub const COMMAND_NAMES: &[&str] = &[
    "container.create",
    "container.setup",
    "container.start",
    "container.stop",
    "container.remove",
    "container.list",
    "container.list-all",
    "container.exec",
    "container.exec.background",
    "container.exec.background.kill",
    "container.exec.background.capture",
    "images.list",
    "image.check",
    "image.delete",
    "image.build",
    "terminal.open",
    "terminal.input",
    "terminal.resize",
    "terminal.close",
    "display.open",
    "display.close",
];

/// A decoded command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    name: &'static str,
    /// Raw params (stub).
    pub params: Value,
}

impl Command {
    /// Decodes the command called `name` from its `params` object.
    pub fn decode(name: &str, params: Value) -> Result<Command, CommandDecodeError> {
        let name = COMMAND_NAMES.iter().copied().find(|n| *n == name).ok_or(CommandDecodeError::Unknown)?;
        if !params.is_object() {
            return Err(CommandDecodeError::Invalid("`params` must be an object".into()));
        }
        Ok(Command { name, params })
    }

    /// The command's wire name, e.g. `container.start`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}
