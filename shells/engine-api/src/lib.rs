//! Client of the container engines' REST API: Docker's Engine API, which Podman's API
//! service also serves, over the engine's local socket (a unix socket; a named pipe on
//! Windows).
//!
//! A library anyone can use to talk to Docker or Podman: it knows the engines' endpoints
//! and wire formats, and nothing of cropscode's protocol commands or of the worker. Its
//! one dependency inside the workspace is `cropscode-core`, for the protocol
//! [`ErrorCode`](cropscode_core::protocol::ErrorCode) an [`EngineError`] maps to.
//!
//! The endpoints are `EngineClient` methods, one module per family (`system`,
//! `containers`, `network`, `exec`, `images`, `events`); the module graph has no loop:
//!
//! ```text
//!  events, exec, images, network ──► containers ──► tar        (every module ──► error)
//!  events, exec, images ──► framing ──► client ──► platform/{unix,windows} ──► endpoint
//!  system ──► client, endpoint     client, exec, framing ──► io     discovery ──► endpoint
//! ```
//!
//! `framing` decodes the answers' stream formats (JSON lines, multiplexed output),
//! `client` holds the requests, the keep-alive pool and [`with_timeout`], `io` adapts
//! futures-io to hyper, `endpoint` is where an engine listens and `discovery` which
//! endpoints to try.
//!
//! HTTP/1.1 is hyper's, over smol's sockets through a small adapter (`io.rs`), with
//! keep-alive connections kept in a small pool, streamed answers (pull and build
//! progress, exec output) and upgraded connections (exec attach). No runtime of its own:
//! connection tasks run on smol's global executor.
//!
//! ```no_run
//! # use cropscode_engine_api::{EngineClient, Endpoint, ExecLimits, ExecSpec, ListContainers};
//! # smol::block_on(async {
//! let (engine, version) = EngineClient::connect(Endpoint::Unix("/var/run/docker.sock".into())).await?;
//! println!("{} {} (API {})", version.kind, version.version, engine.api_version());
//! let mine = ListContainers { all: true, labels: vec!["cropscode.managed=true".into()], ..Default::default() };
//! for container in engine.list_containers(&mine).await? {
//!     let spec = ExecSpec { cmd: vec!["uname".into(), "-a".into()], ..Default::default() };
//!     let out = engine.exec(&container.id, &spec, ExecLimits::default()).await?;
//!     println!("{}: exit {} {}", container.id, out.exit_code, String::from_utf8_lossy(&out.stdout));
//! }
//! # Ok::<(), cropscode_engine_api::EngineError>(())
//! # });
//! ```
//!
//! Errors are [`EngineError`]s, each with the protocol [`ErrorCode`](cropscode_core::protocol::ErrorCode)
//! the orchestrator sees ([`EngineError::code`]) and the engine's own message.

mod client;
mod containers;
pub mod discovery;
mod endpoint;
mod error;
mod events;
mod exec;
mod framing;
mod images;
mod io;
mod network;
mod platform;
mod system;
mod tar;

pub use client::{API_VERSION_MINOR, ClientConfig, EngineClient, ResponseBody, with_timeout};
pub use containers::{
    ContainerConfig, ContainerInspect, ContainerSpec, ContainerState, ContainerSummary, CreatedContainer, DeviceSpec,
    Empty, HostConfig, ListContainers, MountSpec, PortBinding, PortSummary, RemoveContainer,
};
pub use discovery::{Candidate, Discovered, Source, discover};
pub use endpoint::Endpoint;
pub use error::{EngineError, Result};
pub use events::{EngineEvent, EventActor, EventFilter};
pub use exec::{ExecInspect, ExecLimits, ExecOutput, ExecSpec, collect_output};
pub use framing::{JsonStream, MultiplexDecoder, MultiplexFrame, OutputChunk, OutputKind, OutputStream};
pub use images::{
    BuildOptions, ErrorDetail, ImageConfig, ImageDeleted, ImageInspect, ImageSummary, ListImages, Progress,
    ProgressDetail, ProgressStream,
};
pub use io::{HyperIo, Upgraded};
pub use network::PortRoutes;
pub use system::{EngineKind, EngineVersion};
pub use tar::{Owner, TarBuilder};
