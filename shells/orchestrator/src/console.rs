//! The console's browser WebSocket (`GET /console/ws`, `console/API.md` § 5)
//! and the task that carries the terminal relay's frames to the workers.
//!
//! `http.rs` reads the upgrade request and checks it (Host, Origin, the
//! `key.` subprotocol); [`serve`] answers `101` and then runs one loop per
//! socket: browser messages go into the [`Relay`](crate::relay::Relay), and
//! whenever the relay wakes the socket, what `poll_socket` yields is written
//! out. [`drive_relay`] drains the relay's outbox to the workers' connections
//! and ticks its timeouts.
//!
//! ```text
//!  browser ──text──► serve ──browser_text──► Relay ──pop_outbox──► drive_relay ──► worker connection
//!          ◄─text─── serve ◄──poll_socket─── Relay ◄── connection.rs (output, results, registrations)
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_lite::{AsyncWriteExt, StreamExt};
use smol::Timer;

use crate::shared::{Shared, lock, with_timeout};

/// The subprotocol the page asks for (next to `key.SECRET`) and the server answers with.
pub(crate) const SUBPROTOCOL: &str = "cropscode-console";
/// Largest message a browser may send.
pub const MAX_CONSOLE_MESSAGE_BYTES: usize = 1024 * 1024;
/// The server pings a quiet socket this often…
const PING_EVERY: Duration = Duration::from_secs(15);
/// …and closes one that said nothing (not even a pong) for this long.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Output bytes written to one socket before its next read.
const OUTPUT_PER_TURN: usize = 256 * 1024;
/// How often the relay's timeouts are looked at.
const TICK: Duration = Duration::from_secs(5);

/// Answers the checked upgrade request with `101` and serves the socket until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, mut stream: TcpStream, key: &str, subprotocol: bool, read: Vec<u8>) {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if subprotocol {
        head.push_str(&format!("Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"));
    }
    head.push_str("\r\n");
    if with_timeout(Duration::from_secs(10), stream.write_all(head.as_bytes())).await.is_none_or(|r| r.is_err()) {
        return;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CONSOLE_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_CONSOLE_MESSAGE_BYTES));
    let ws = WebSocketStream::from_partially_read(stream, read, Role::Server, Some(config)).await;
    run(shared, ws).await;
}

async fn run(shared: Arc<Shared>, mut ws: WebSocketStream<TcpStream>) {
    let (wake_tx, wake) = async_channel::bounded::<()>(1);
    let socket = lock(&shared.relay).add_socket(wake_tx.clone());
    let _guard = SocketGuard { shared: shared.clone(), socket };
    tracing::debug!(socket, "console socket opened");
    let mut heard_at = Instant::now();
    let mut ping_at = heard_at + PING_EVERY;

    enum Step {
        Incoming(Option<Result<Message, WsError>>),
        Wake,
        Ping,
    }
    loop {
        let out = lock(&shared.relay).poll_socket(socket, OUTPUT_PER_TURN);
        if !out.is_empty() {
            for message in out {
                if ws.send(Message::text(message)).await.is_err() {
                    return;
                }
            }
            // More may be waiting: come back after one read, so a flood cannot starve the socket's input.
            let _ = wake_tx.try_send(());
        }
        let step = smol::future::or(
            async { Step::Incoming(ws.next().await) },
            smol::future::or(
                async {
                    let _ = wake.recv().await;
                    Step::Wake
                },
                async {
                    Timer::at(ping_at).await;
                    Step::Ping
                },
            ),
        )
        .await;
        match step {
            Step::Wake => {}
            Step::Ping => {
                if heard_at.elapsed() >= SILENCE_LIMIT {
                    tracing::debug!(socket, "console socket silent for 45 s; closing it");
                    let close = CloseFrame { code: CloseCode::Away, reason: "silent for 45 s".into() };
                    let _ = with_timeout(Duration::from_secs(1), ws.close(Some(close))).await;
                    return;
                }
                ping_at = Instant::now() + PING_EVERY;
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            Step::Incoming(Some(Ok(message))) => {
                heard_at = Instant::now();
                match message {
                    Message::Text(text) => lock(&shared.relay).browser_text(socket, text.as_str(), heard_at),
                    Message::Binary(_) => {
                        let error = serde_json::json!({
                            "op": "error",
                            "code": "invalid_request",
                            "message": "the console takes text messages (one JSON object each) only",
                        });
                        if ws.send(Message::text(error.to_string())).await.is_err() {
                            return;
                        }
                    }
                    // Pings are answered by tungstenite; after a close the next read ends the stream.
                    _ => {}
                }
            }
            Step::Incoming(Some(Err(WsError::Capacity(e)))) => {
                tracing::debug!(socket, error = %e, "console message above 1 MiB");
                let close = CloseFrame { code: CloseCode::Size, reason: "message too big (1 MiB at most)".into() };
                let _ = with_timeout(Duration::from_secs(1), ws.close(Some(close))).await;
                return;
            }
            Step::Incoming(Some(Err(e))) => {
                tracing::debug!(socket, error = %e, "console socket broke");
                return;
            }
            Step::Incoming(None) => return,
        }
    }
}

/// Detaches the socket's terminals however its task ends (closed, broken, or cancelled by `stop`).
struct SocketGuard {
    shared: Arc<Shared>,
    socket: u64,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        lock(&self.shared.relay).remove_socket(self.socket, Instant::now());
        tracing::debug!(socket = self.socket, "console socket closed");
    }
}

/// Writes the relay's frames to the workers, one at a time in order, and ticks its timeouts.
/// A frame for a worker that is not connected is dropped: the relay re-sends what matters
/// (input, size) when it re-attaches.
pub(crate) async fn drive_relay(shared: Arc<Shared>) {
    loop {
        let ready = lock(&shared.relay).outbox_ready.listen();
        loop {
            let next = lock(&shared.relay).pop_outbox();
            let Some(frame) = next else { break };
            if let Err(e) = shared.send_with_timeout(&frame.worker_id, frame.message).await {
                tracing::debug!(worker_id = frame.worker_id, error = %e, "a console frame for a worker was dropped");
            }
        }
        smol::future::or(ready, async {
            Timer::after(TICK).await;
        })
        .await;
        lock(&shared.relay).tick(Instant::now());
    }
}
