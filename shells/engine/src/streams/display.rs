//! Display relays: a TCP connection from the worker to the container's VNC
//! server, whose bytes travel in the stream's binary frames.
//!
//! On Linux the container's address on its network is tried first (the
//! engine runs here, its bridge is routable); a port published on the host is
//! the fallback, and the only way where containers live in a VM (macOS,
//! Windows) or in a rootless network namespace.

use std::net::SocketAddr;
use std::time::Duration;

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::DisplayOpen;
use cropscode_core::stream::StreamId;

use super::live::{Live, LiveStreams, Phase, Pipe};
use crate::outcome::{Failure, Outcome};
use crate::owned::OwnedContainers;

/// How long one connection attempt may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(3);

impl LiveStreams {
    /// `display.open`: connects to the VNC port and keeps the connection under `stream.channel`.
    pub(crate) async fn open_display(
        &self,
        engine: &impl OwnedContainers,
        stream: StreamId,
        request: DisplayOpen,
    ) -> Outcome<()> {
        let (client, owned) = engine.running_container(&request.container_id, request.tenant.as_deref()).await?;
        let routes = client.port_routes(&owned.id, request.port).await?;
        let candidates: Vec<SocketAddr> = if cfg!(target_os = "linux") {
            routes.direct.iter().chain(&routes.published).copied().collect()
        } else {
            routes.published.clone()
        };
        let mut failures = Vec::new();
        for address in candidates {
            match connect(address).await {
                Ok(socket) => {
                    // Keystrokes and pointer moves are small; do not hold them back.
                    let _ = socket.set_nodelay(true);
                    tracing::info!(session = %stream.session_id, channel = stream.channel.get(), %address, "display relay opened");
                    self.insert(
                        stream.channel.get(),
                        Live {
                            session_id: stream.session_id,
                            pipe: Some(Pipe::Tcp(socket)),
                            exec: None,
                            phase: Phase::Flowing,
                        },
                    );
                    return Ok(());
                }
                Err(error) => failures.push(format!("{address}: {error}")),
            }
        }
        let tried = if failures.is_empty() {
            "the container has no address on a network and the port is not published".to_owned()
        } else {
            failures.join("; ")
        };
        Err(Failure::wire(
            ErrorCode::Conflict,
            format!("cannot reach port {} of container `{}` ({tried})", request.port, request.container_id),
        ))
    }
}

async fn connect(address: SocketAddr) -> std::io::Result<async_net::TcpStream> {
    futures_lite::future::or(async_net::TcpStream::connect(address), async {
        smol::Timer::after(CONNECT_LIMIT).await;
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}
