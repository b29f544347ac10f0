//! The worker's container engine: core's [`Engine`](cropscode_core::Engine) trait on
//! Docker or Podman. It executes the protocol's commands, keeps to the containers this
//! worker owns, counts the running ones for the heartbeat, and holds the live streams
//! (terminals, displays) and the background execs.
//!
//! It uses `cropscode-engine-api` (the engines' REST client) for everything it asks an
//! engine, and `cropscode-core` for the protocol's types, the policy and the [`Engine`]
//! trait; the API crate knows nothing of this one.
//!
//! Modules, each using only those below it (no two use each other):
//!
//! ```text
//!  worker/      WorkerEngine: commands, engine selection, ownership, running count,
//!   │           supervised Podman service; implements OwnedContainers
//!   ▼
//!  streams/     terminals, displays, background execs (through OwnedContainers)
//!   ▼
//!  owned        Owned (a container of this worker), the OwnedContainers trait
//!  execution    Execution (a command's Steps), ProgressSink
//!  options      EngineOptions, EnginePreference
//!   ▼
//!  outcome      Failure, Outcome: how a command's work fails
//! ```
//!
//! [`Engine`]: cropscode_core::Engine

mod execution;
mod options;
mod outcome;
mod owned;
mod streams;
pub mod worker;

pub use execution::Execution;
pub use options::{EngineOptions, EnginePreference};
pub use worker::WorkerEngine;
