//! Client of the container engines' REST API: Docker's Engine API, which Podman's API
//! service also serves, over the engine's local socket (a unix socket; a named pipe on
//! Windows).
//!
//! HTTP/1.1 is hyper's, over smol's sockets through a small adapter ([`io`] module), with
//! keep-alive connections kept in a small pool, streamed answers (pull and build
//! progress, exec output) and upgraded connections (exec attach). No runtime of its own:
//! connection tasks run on smol's global executor.
//!
//! ```no_run
//! # use cropscode_engine::{EngineClient, Endpoint, ExecLimits, ExecSpec, ListContainers};
//! # smol::block_on(async {
//! let (engine, version) = EngineClient::connect(Endpoint::Unix("/var/run/docker.sock".into())).await?;
//! println!("{} {} (API {})", version.kind, version.version, engine.api_version());
//! let mine = ListContainers { all: true, labels: vec!["cropscode.managed=true".into()], ..Default::default() };
//! for container in engine.list_containers(&mine).await? {
//!     let spec = ExecSpec { cmd: vec!["uname".into(), "-a".into()], ..Default::default() };
//!     let out = engine.exec(&container.id, &spec, ExecLimits::default()).await?;
//!     println!("{}: exit {} {}", container.id, out.exit_code, String::from_utf8_lossy(&out.stdout));
//! }
//! # Ok::<(), cropscode_engine::EngineError>(())
//! # });
//! ```
//!
//! Errors are [`EngineError`]s, each with the protocol [`ErrorCode`](cropscode_core::protocol::ErrorCode)
//! the orchestrator sees ([`EngineError::code`]) and the engine's own message.

mod client;
mod containers;
pub mod discovery;
mod error;
mod events;
mod exec;
mod images;
mod io;
mod platform;
mod stream;
mod streams;
mod system;
mod tar;
pub mod worker;

pub use client::{API_VERSION_MINOR, ClientConfig, EngineClient, ResponseBody};
pub use containers::{
    ContainerConfig, ContainerInspect, ContainerSpec, ContainerState, ContainerSummary, CreatedContainer, DeviceSpec,
    Empty, HostConfig, ListContainers, MountSpec, PortBinding, PortSummary, RemoveContainer,
};
pub use discovery::{Candidate, Discovered, Source, discover};
pub use error::{EngineError, Result};
pub use events::{EngineEvent, EventActor, EventFilter};
pub use exec::{ExecInspect, ExecLimits, ExecOutput, ExecSpec, collect_output};
pub use images::{
    BuildOptions, ErrorDetail, ImageConfig, ImageDeleted, ImageInspect, ImageSummary, ListImages, Progress,
    ProgressDetail, ProgressStream,
};
pub use io::{HyperIo, Upgraded};
pub use platform::Endpoint;
pub use stream::{JsonStream, MultiplexDecoder, MultiplexFrame, OutputChunk, OutputKind, OutputStream};
pub use system::{EngineKind, EngineVersion};
pub use tar::{Owner, TarBuilder};
pub use worker::{EngineOptions, EnginePreference, WorkerEngine};
