//! Commands the orchestrator sends, decoded from `{type, id, params}`, and the
//! typed results the worker answers with.
//!
//! Data flows in one direction per side:
//!
//! - worker: [`codec::decode_text`](super::codec::decode_text) calls
//!   [`Command::decode`], which deserializes the params struct of the named
//!   command (unknown fields ignored), then checks every field against
//!   [`bounds`] ([`CommandParams::validate`]). Any failure is
//!   [`CommandDecodeError::Invalid`] naming the field; the session answers it
//!   with `invalid_request`. An [`Engine`](crate::Engine) receives only
//!   validated commands and answers with the command's
//!   [`CommandParams::Output`], serialized with `serde_json::to_value`.
//! - orchestrator: builds params structs (`Command::from(ContainerStart { … })`)
//!   and reads results with [`CommandOutput::decode`].
//!
//! One file per family of commands: [`create`], [`container`], [`exec`], [`image`],
//! [`stream`] (terminals and displays). `docs/protocol.md` documents every
//! field; `core/tests/protocol_doc.rs` checks its examples against these types.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod bounds;
pub mod container;
mod content;
pub mod create;
pub mod exec;
pub mod image;
pub mod stream;
mod validate;

#[cfg(test)]
mod tests;

pub use container::*;
pub use content::{Encoding, EnvVars, InlineFile, base64_decode, base64_encode};
pub use create::*;
pub use exec::*;
pub use image::*;
pub use stream::*;

/// Why a command could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandDecodeError {
    /// No command has this name.
    Unknown,
    /// The name is known but the params are not valid; the message says which field and why.
    Invalid(String),
}

/// The params of one command: its wire name, its result type and its checks.
pub trait CommandParams: Serialize + DeserializeOwned + Into<Command> {
    /// The command's wire name, e.g. `container.start`.
    const NAME: &'static str;
    /// What the command answers with on success (the `result` of its `result` frame).
    type Output: Serialize + DeserializeOwned;

    /// Checks every field against its bounds; `Err` names the field and the rule.
    fn validate(&self) -> Result<(), String>;

    /// The container the command acts on, when it names one.
    fn target_container(&self) -> Option<&str> {
        None
    }

    /// The tenant the command is scoped to, when it names one.
    fn tenant(&self) -> Option<&str> {
        None
    }
}

macro_rules! commands {
    ($($variant:ident,)*) => {
        /// Every command name of the protocol, in the product's order.
        pub const COMMAND_NAMES: &[&str] = &[$(<$variant as CommandParams>::NAME,)*];

        /// A decoded, validated command. Each variant holds the params struct of the same name.
        ///
        /// Not boxed: a command is decoded once and moved a few times on its
        /// way to the engine, where it is dwarfed by the engine call itself.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $(
                #[doc = concat!("`", stringify!($variant), "`: see [`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        /// The success payload of a command, typed by the command it answers.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum CommandOutput {
            $(
                #[doc = concat!("The result of [`", stringify!($variant), "`].")]
                $variant(<$variant as CommandParams>::Output),
            )*
        }

        $(
            impl From<$variant> for Command {
                fn from(params: $variant) -> Command {
                    Command::$variant(params)
                }
            }
        )*

        impl Command {
            /// Decodes and validates the command called `name` from its `params` object.
            pub fn decode(name: &str, params: Value) -> Result<Command, CommandDecodeError> {
                $(
                    if name == <$variant as CommandParams>::NAME {
                        return decode_params::<$variant>(params).map(Command::$variant);
                    }
                )*
                Err(CommandDecodeError::Unknown)
            }

            /// Every command's wire name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(<$variant as CommandParams>::NAME,)*];

            /// The wire name `name` as the worker's own `&'static str`, when it names a command.
            pub fn known_name(name: &str) -> Option<&'static str> {
                Self::NAMES.iter().find(|known| **known == name).copied()
            }

            /// The command's wire name, e.g. `container.start`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => <$variant as CommandParams>::NAME,)*
                }
            }

            /// The container the command acts on (`containerId`), when it names one.
            ///
            /// Commands addressed by a session or exec id return `None`: the
            /// worker knows which container those belong to.
            pub fn target_container(&self) -> Option<&str> {
                match self {
                    $(Command::$variant(params) => params.target_container(),)*
                }
            }

            /// The tenant the command names, when it names one.
            pub fn tenant(&self) -> Option<&str> {
                match self {
                    $(Command::$variant(params) => params.tenant(),)*
                }
            }

            /// The params as JSON, as an orchestrator sends them.
            ///
            /// A git `credential` is never serialized: an orchestrator that
            /// sends one adds it to this value itself.
            pub fn params_json(&self) -> Value {
                let value = match self {
                    $(Command::$variant(params) => serde_json::to_value(params),)*
                };
                value.unwrap_or(Value::Null)
            }
        }

        impl CommandOutput {
            /// Reads the `result` payload of a successful answer to the command called `name`.
            ///
            /// Unknown fields are ignored, so an orchestrator keeps working with a newer worker.
            pub fn decode(name: &str, result: Value) -> Result<CommandOutput, CommandDecodeError> {
                $(
                    if name == <$variant as CommandParams>::NAME {
                        return serde_json::from_value(result)
                            .map(CommandOutput::$variant)
                            .map_err(|e| CommandDecodeError::Invalid(e.to_string()));
                    }
                )*
                Err(CommandDecodeError::Unknown)
            }

            /// The name of the command this answers.
            pub fn name(&self) -> &'static str {
                match self {
                    $(CommandOutput::$variant(_) => <$variant as CommandParams>::NAME,)*
                }
            }

            /// The payload as JSON, for the `result` field of a `result` frame.
            pub fn into_value(self) -> Value {
                serde_json::to_value(self).unwrap_or(Value::Null)
            }
        }
    };
}

commands! {
    ContainerCreate,
    ContainerSetup,
    ContainerStart,
    ContainerStop,
    ContainerRemove,
    ContainerList,
    ContainerListAll,
    ContainerExec,
    ContainerExecBackground,
    ContainerExecBackgroundKill,
    ContainerExecBackgroundCapture,
    ImagesList,
    ImageCheck,
    ImageDelete,
    ImageBuild,
    TerminalOpen,
    TerminalInput,
    TerminalResize,
    TerminalClose,
    DisplayOpen,
    DisplayClose,
}

/// Deserializes and validates one params object.
fn decode_params<P: CommandParams>(params: Value) -> Result<P, CommandDecodeError> {
    if !params.is_object() {
        return Err(CommandDecodeError::Invalid("`params` must be an object".to_owned()));
    }
    let decoded = P::deserialize(&params).map_err(|e| CommandDecodeError::Invalid(blame::<P>(&params, e)))?;
    decoded.validate().map_err(CommandDecodeError::Invalid)?;
    Ok(decoded)
}

/// Turns a serde error into a message naming the top-level field at fault.
///
/// serde_json reports a wrong type without saying where ("invalid type:
/// integer `7`, expected a string"). The fault is found by removing the
/// struct's known fields one at a time: the one whose removal changes the
/// error is named. This runs only on the error path, at most once per field
/// (≤ 30), on one copy of a frame already bounded by [`Limits`](crate::protocol::Limits).
fn blame<P: DeserializeOwned>(params: &Value, error: serde_json::Error) -> String {
    let message = error.to_string();
    let mut probe = params.clone();
    for field in struct_fields::<P>() {
        let Value::Object(object) = &mut probe else { break };
        let Some(value) = object.remove(*field) else { continue };
        let changed = match P::deserialize(&probe) {
            Ok(_) => true,
            Err(e) => e.to_string() != message,
        };
        if changed {
            return format!("`{field}`: {message}");
        }
        if let Value::Object(object) = &mut probe {
            object.insert(String::from(*field), value);
        }
    }
    message
}

/// The wire names of a derived struct's fields, read from what its
/// `Deserialize` impl passes to `deserialize_struct`.
fn struct_fields<P: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = P::deserialize(FieldsProbe { fields: &mut fields });
    fields
}

struct FieldsProbe<'a> {
    fields: &'a mut &'static [&'static str],
}

impl<'de> serde::Deserializer<'de> for FieldsProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = fields;
        Err(serde::de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// Deserializes an optional [`Secret`](crate::Secret) from a JSON string.
pub(crate) fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<crate::Secret>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(crate::Secret::new))
}
