//! The sans-I/O core of the cropscode worker agent.
//!
//! Everything the worker decides lives here; nothing here touches a socket, a
//! file or a clock. Inputs arrive through one entry point carrying the current
//! [`Instant`] (`Session::handle_input` with an [`Input`]), outputs are drained
//! with `Session::poll_output` (an [`Output`]), and a thin [`run`] future drives
//! a session over the [`Connector`], [`Engine`], [`Clock`] and [`SystemProbe`]
//! traits that the shells implement.
//!
//! ```text
//!  orchestrator frames ─ Input::Frame ─► Session ── Output::Transmit ──► Transport
//!                                         │    ▲
//!                           Output::Event │    │ Input::CommandResult
//!                                         ▼    │
//!                                       dispatch ──► Engine
//!                                          stream ◄──► Engine streams (terminals, displays)
//! ```
//!
//! The crate is `#![no_std]` + `alloc`; the `std` feature only adds
//! `std::error::Error` impls.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod backoff;
pub mod dispatch;
pub mod journal;
pub mod policy;
pub mod protocol;
pub mod run;
pub mod secret;
pub mod session;
pub mod stream;
pub mod time;
pub mod traits;

pub use protocol::Channel;
pub use run::run;
pub use secret::Secret;
pub use session::{Event, Input, Output, Session, SessionConfig, State};
pub use time::Instant;
pub use traits::{
    Clock, Connector, Engine, Frame, Step, StreamRead, StreamWrite, SystemProbe, Transport, TransportError,
};
