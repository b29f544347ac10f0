//! One task per worker socket: TLS (optional), the upgrade with its bearer
//! check, then a loop that reads worker frames and writes queued ones.
//!
//! The loop races three things — the next incoming message, the next queued
//! outbound frame, a behavior change — all cancel-safe, so whichever loses
//! loses nothing. Reading is what answers pings (tungstenite queues the pong
//! and flushes it on the next read or write), which is exactly why
//! `Behavior::HalfOpen` stops reading: the worker then hears nothing at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::{TcpListener, TcpStream};
use async_tungstenite::accept_hdr_async_with_config;
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::{HeaderValue, StatusCode, Uri, header};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use cropscode_core::protocol::limits::TRANSPORT_MAX_MESSAGE_BYTES;
use cropscode_core::protocol::{ErrorCode, Outgoing, PROTOCOL_VERSION};
use futures_lite::{AsyncRead, AsyncWrite, StreamExt};
use futures_rustls::TlsAcceptor;
use smol::Timer;

use crate::config::Behavior;
use crate::event::Event;
use crate::registry::Outbound;
use crate::shared::{Shared, bearer_token, lock, with_timeout};

/// How long a client may take for the TLS handshake and for the upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one connection before senders wait.
const OUTBOUND_CAPACITY: usize = 64;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accepting a worker connection failed");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let connection = lock(&shared.registry).next_connection();
        let task = smol::spawn(serve_socket(shared.clone(), connection, peer, stream, tls.clone()));
        shared.keep_task(task);
    }
}

async fn serve_socket(
    shared: Arc<Shared>,
    connection: u64,
    peer: SocketAddr,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
) {
    tracing::debug!(connection, %peer, "worker socket accepted");
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve(shared, connection, stream).await,
        Some(acceptor) => match with_timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Some(Ok(stream)) => serve(shared, connection, stream).await,
            Some(Err(e)) => tracing::debug!(connection, error = %e, "TLS handshake failed"),
            None => tracing::debug!(connection, "TLS handshake timed out"),
        },
    }
}

// `ErrorResponse` is large, but it is the shape tungstenite's upgrade callback requires.
#[allow(clippy::result_large_err)]
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, connection: u64, stream: S) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(TRANSPORT_MAX_MESSAGE_BYTES))
        .max_frame_size(Some(TRANSPORT_MAX_MESSAGE_BYTES));
    let checker = shared.clone();
    let callback = move |request: &Request, response: Response| check_upgrade(&checker, request, response);
    let mut ws =
        match with_timeout(HANDSHAKE_TIMEOUT, accept_hdr_async_with_config(stream, callback, Some(config))).await {
            Some(Ok(ws)) => ws,
            Some(Err(e)) => {
                tracing::debug!(connection, error = %e, "WebSocket upgrade failed or was refused");
                return;
            }
            None => {
                tracing::debug!(connection, "WebSocket upgrade timed out");
                return;
            }
        };
    let _guard = ConnectionGuard { shared: shared.clone(), connection };
    if shared.behavior() == Behavior::AcceptAndDrop {
        let close = CloseFrame { code: CloseCode::Away, reason: "accept-and-drop".into() };
        let _ = with_timeout(Duration::from_secs(1), ws.close(Some(close))).await;
        return;
    }
    let (outbound_tx, outbound) = async_channel::bounded::<Outbound>(OUTBOUND_CAPACITY);
    lock(&shared.registry).add_connection(connection, outbound_tx);

    enum Step {
        Incoming(Option<Result<Message, WsError>>),
        Outbound(Result<Outbound, async_channel::RecvError>),
        BehaviorChanged,
    }
    loop {
        // Listen before looking, so a change in between still wakes us.
        let behavior_changed = shared.behavior_changed.listen();
        if shared.behavior() == Behavior::HalfOpen {
            let step = smol::future::or(
                async {
                    behavior_changed.await;
                    Step::BehaviorChanged
                },
                async { Step::Outbound(outbound.recv().await) },
            )
            .await;
            match step {
                // Lost in a dead network: the sender sees it written, the worker never does.
                Step::Outbound(Ok(frame)) => {
                    let _ = frame.written.try_send(true);
                }
                Step::Outbound(Err(_)) => return,
                _ => {}
            }
            continue;
        }
        let step = smol::future::or(
            async { Step::Incoming(ws.next().await) },
            smol::future::or(async { Step::Outbound(outbound.recv().await) }, async {
                behavior_changed.await;
                Step::BehaviorChanged
            }),
        )
        .await;
        match step {
            Step::BehaviorChanged => {}
            Step::Outbound(Ok(frame)) => {
                let text = frame.message.to_text().ok().filter(|_| frame.message.is_text()).map(str::to_owned);
                let written = ws.send(frame.message).await.is_ok();
                let _ = frame.written.try_send(written);
                if !written {
                    return;
                }
                if let Some(text) = text {
                    record_sent(&shared, connection, text);
                }
            }
            Step::Outbound(Err(_)) => return,
            Step::Incoming(Some(Ok(Message::Text(text)))) => {
                let Some(reply) = handle_text(&shared, connection, text.as_str()) else { continue };
                if ws.send(Message::text(reply.text.clone())).await.is_err() {
                    return;
                }
                record_sent(&shared, connection, reply.text);
                // After the acknowledgement, so the worker hears it before any re-attach.
                if let Some(worker_id) = reply.registered {
                    lock(&shared.relay).worker_registered(&worker_id, connection, Instant::now());
                }
            }
            Step::Incoming(Some(Ok(Message::Binary(bytes)))) => {
                shared.relay_output(connection, &bytes);
                shared.record(Event::Binary { connection, bytes: bytes.to_vec() });
            }
            // Pings are answered by tungstenite; a close is answered too, and the
            // next read then ends the stream.
            Step::Incoming(Some(Ok(_))) => {}
            Step::Incoming(Some(Err(WsError::Capacity(e)))) => {
                tracing::debug!(connection, error = %e, "worker sent a message above the 16 MiB cap");
                let close = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                let _ = with_timeout(Duration::from_secs(1), ws.close(Some(close))).await;
                return;
            }
            Step::Incoming(Some(Err(e))) => {
                tracing::debug!(connection, error = %e, "worker connection broke");
                return;
            }
            Step::Incoming(None) => return,
        }
    }
}

/// The answer to a worker's frame, and the worker id when it was a registration.
struct Reply {
    text: String,
    registered: Option<String>,
}

fn record_sent(shared: &Shared, connection: u64, text: String) {
    let worker_id = lock(&shared.registry).worker_of(connection);
    shared.record(Event::Sent { connection, worker_id, text });
}

/// Records a text frame and acts on it; returns the reply to send, if any.
fn handle_text(shared: &Shared, connection: u64, text: &str) -> Option<Reply> {
    let worker_id = lock(&shared.registry).worker_of(connection);
    shared.record(Event::Frame { connection, worker_id, text: text.to_string() });
    let reply = |text: String| Some(Reply { text, registered: None });
    match serde_json::from_str::<Outgoing>(text) {
        Ok(Outgoing::Register(register)) if register.protocol_version != PROTOCOL_VERSION => {
            let message = format!(
                "protocol version {} is not supported; this orchestrator speaks {PROTOCOL_VERSION}",
                register.protocol_version
            );
            let error = serde_json::json!({ "code": ErrorCode::InvalidRequest.as_str(), "message": message });
            reply(serde_json::json!({ "type": "worker.rejected", "error": error }).to_string())
        }
        Ok(Outgoing::Register(register)) => {
            let worker_id = lock(&shared.registry).register(connection, register.clone());
            tracing::info!(connection, worker_id, name = register.name, "worker registered");
            shared.record(Event::Registered { connection, worker_id: worker_id.clone(), register });
            let mut registered = serde_json::json!({ "type": "worker.registered", "workerId": worker_id });
            if let Some(url) = &shared.gateway_url {
                registered["gateway"] = serde_json::json!({ "url": url });
            }
            Some(Reply { text: registered.to_string(), registered: Some(worker_id) })
        }
        Ok(Outgoing::Heartbeat(heartbeat)) => {
            let worker_id = lock(&shared.registry).heartbeat(connection, &heartbeat);
            shared.record(Event::Heartbeat { connection, worker_id, heartbeat });
            None
        }
        Ok(Outgoing::Result(result)) => {
            let outcome = result.outcome().map_err(|e| (e.code.as_str(), e.message.as_str()));
            let for_relay = lock(&shared.relay).worker_result(connection, &result.id, outcome, Instant::now());
            if !for_relay {
                lock(&shared.registry).route_result(result);
            }
            None
        }
        Ok(Outgoing::Progress(progress)) => {
            lock(&shared.registry).route_progress(progress);
            None
        }
        Ok(Outgoing::Error(frame)) => {
            tracing::debug!(connection, error = %frame.error, "worker reported an error frame");
            None
        }
        Err(e) => {
            tracing::debug!(connection, error = %e, "worker frame not understood");
            None
        }
    }
}

/// The upgrade callback: bearer check, token-in-URL check, `Upgrade` event.
#[allow(clippy::result_large_err)]
fn check_upgrade(shared: &Shared, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    let token_in_url = token_in_url(shared, request.uri());
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let authorized = shared.behavior() != Behavior::RejectAll && presented.is_some_and(|t| shared.accepts_token(t));
    shared.record(Event::Upgrade { authorized, token_in_url });
    if authorized {
        return Ok(response);
    }
    let mut refusal = ErrorResponse::new(Some("missing or wrong bearer token\n".into()));
    *refusal.status_mut() = StatusCode::UNAUTHORIZED;
    refusal.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(refusal)
}

/// A query parameter named like a token, or an accepted token anywhere in the URL.
fn token_in_url(shared: &Shared, uri: &Uri) -> bool {
    let named = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next().is_some_and(|name| name.to_ascii_lowercase().contains("token")))
    });
    named || shared.mentions_token(&uri.to_string())
}

/// Unregisters the connection and records `Disconnected` however the task ends
/// (returned, or cancelled by `stop`).
struct ConnectionGuard {
    shared: Arc<Shared>,
    connection: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        lock(&self.shared.registry).remove_connection(self.connection);
        lock(&self.shared.relay).connection_closed(self.connection, Instant::now());
        self.shared.record(Event::Disconnected { connection: self.connection });
        tracing::debug!(connection = self.connection, "worker connection closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
