//! The WebSocket link to the orchestrator: core's `Connector` and `Transport`
//! over async-tungstenite, futures-rustls and smol's networking.
//!
//! A [`WsConnector`] is built once from the configuration: the URL is checked
//! ([`validate_url`]), the TLS configuration and the `Authorization` header
//! value are prepared, so a bad URL, CA file or token is an error at startup,
//! not at every reconnect. Each [`Connector::connect`] then runs
//!
//! ```text
//! resolve ─► TCP connect ─► TLS (wss only) ─► HTTP upgrade with
//!   Authorization: Bearer <token>, User-Agent: cropscode-worker/<version>
//! ```
//!
//! under one deadline (`connect_timeout`, 10 s by default), and maps whatever
//! fails onto [`TransportError`]: 401/403 → `Auth`, another HTTP status →
//! `Protocol`, certificate or handshake trouble → `Tls`, sockets → `Io`,
//! the deadline → `Timeout`.
//!
//! The resulting [`WsTransport`] converts between tungstenite messages and
//! core [`Frame`]s. Incoming messages are capped at
//! [`TRANSPORT_MAX_MESSAGE_BYTES`]: anything up to that reaches the core (which
//! answers oversized text frames with `frame_too_large`); a bigger one is not
//! buffered, the transport closes the connection with 1009 and reports an
//! error. tungstenite answers pings with pongs by itself; the pings still
//! reach the core, which counts them as signs of life.
//!
//! The token is only ever written into the upgrade request (as a header marked
//! sensitive); neither the request nor its headers are logged.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_net::TcpStream;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::handshake::client::Request;
use async_tungstenite::tungstenite::http::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{self, Message};
use cropscode_core::protocol::limits::TRANSPORT_MAX_MESSAGE_BYTES;
use cropscode_core::{Connector, Frame, Secret, Transport, TransportError};
use futures_lite::{FutureExt, Stream};
use futures_rustls::TlsConnector;
use futures_util::Sink;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use crate::tls;
use crate::url::{WsUrl, validate_url};

/// How long [`WsConnector::connect`] may take unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `User-Agent` of the upgrade request.
pub const USER_AGENT_VALUE: &str = concat!("cropscode-worker/", env!("CARGO_PKG_VERSION"));

/// Close code sent when the peer's message exceeds the transport cap.
const CLOSE_TOO_BIG: u16 = 1009;

/// The longest close reason a close frame can carry (125 bytes minus the code).
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The byte stream under the WebSocket: plain TCP (loopback `ws://`) or TLS.
type WsStream = async_tungstenite::stream::Stream<TcpStream, futures_rustls::client::TlsStream<TcpStream>>;

/// Opens WebSocket connections to the orchestrator. See the [module docs](self).
///
/// ```no_run
/// use cropscode_core::{Connector, Secret};
/// use cropscode_runtime::WsConnector;
///
/// # fn main() -> Result<(), cropscode_core::TransportError> {
/// let connector = WsConnector::new("wss://orchestrator.example.com/worker", Secret::new("tok"))?
///     .with_ca_file("/etc/cropscode/ca.pem")?
///     .with_connect_timeout(std::time::Duration::from_secs(5));
/// let transport = smol::block_on(connector.connect())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WsConnector {
    url: WsUrl,
    authorization: HeaderValue,
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
}

impl WsConnector {
    /// A connector for `url` that authenticates with `token`, trusting the
    /// webpki roots, with the default connect timeout.
    ///
    /// Fails with [`TransportError::InsecureUrl`] for a URL that
    /// [`validate_url`] refuses, and with [`TransportError::Protocol`] for a
    /// token that cannot be sent in an HTTP header (empty, or with control
    /// characters); the message never contains the token.
    pub fn new(url: &str, token: Secret) -> Result<Self, TransportError> {
        let url = validate_url(url)?;
        let authorization = bearer(&token)?;
        Ok(WsConnector { url, authorization, tls: tls::client_config(None)?, connect_timeout: DEFAULT_CONNECT_TIMEOUT })
    }

    /// Also trusts the CA certificates of a PEM file (for a private
    /// orchestrator). A file that cannot be read or holds no usable
    /// certificate is a [`TransportError::Tls`] naming the path.
    pub fn with_ca_file(mut self, path: impl AsRef<Path>) -> Result<Self, TransportError> {
        self.tls = tls::client_config(Some(path.as_ref()))?;
        Ok(self)
    }

    /// Sets how long one connection attempt (resolve, TCP, TLS, upgrade) may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The URL this connector dials.
    pub fn url(&self) -> &WsUrl {
        &self.url
    }

    async fn connect_now(&self) -> Result<WsTransport, TransportError> {
        let tcp = self.open_tcp().await?;
        let _ = tcp.set_nodelay(true);
        let stream = if self.url.is_secure() {
            let name = ServerName::try_from(self.url.host().to_owned()).map_err(|e| {
                TransportError::Tls(format!("`{}` is not a valid TLS server name: {e}", self.url.host()))
            })?;
            let tls = TlsConnector::from(self.tls.clone()).connect(name, tcp).await.map_err(|e| tls_io_error(&e))?;
            WsStream::Tls(tls)
        } else {
            WsStream::Plain(tcp)
        };
        let request = self.upgrade_request()?;
        let (ws, _response) = async_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
            .await
            .map_err(|e| handshake_error(&e))?;
        tracing::debug!(url = %self.url, "WebSocket connected");
        Ok(WsTransport { ws, peer_close: None, pending_error: None })
    }

    /// Resolves the host and connects to the first address that answers.
    async fn open_tcp(&self) -> Result<TcpStream, TransportError> {
        let port = self.url.port();
        let addresses: Vec<SocketAddr> = if let Ok(ip) = self.url.host().parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else if !self.url.is_secure() {
            // Plain ws:// is only allowed to loopback; do not let a resolver
            // decide where `localhost` is.
            vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port), SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port)]
        } else {
            async_net::resolve((self.url.host(), port))
                .await
                .map_err(|e| TransportError::Io(format!("cannot resolve `{}`: {e}", self.url.host())))?
        };
        let mut last_error = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last_error = Some(format!("cannot connect to {address}: {e}")),
            }
        }
        Err(TransportError::Io(last_error.unwrap_or_else(|| format!("`{}` resolved to no address", self.url.host()))))
    }

    /// The upgrade request: the URL's own headers plus the token and our agent.
    fn upgrade_request(&self) -> Result<Request, TransportError> {
        let mut request = self
            .url
            .uri()
            .into_client_request()
            .map_err(|e| TransportError::Protocol(format!("cannot build the upgrade request: {e}")))?;
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        Ok(request)
    }
}

impl std::fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnector")
            .field("url", &self.url)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The connect future. Boxed: it is made once per connection attempt, and an
/// `async` block's type cannot be named otherwise.
pub type ConnectFuture<'a> = Pin<Box<dyn Future<Output = Result<WsTransport, TransportError>> + Send + 'a>>;

impl Connector for WsConnector {
    type Transport = WsTransport;
    type Connect<'a> = ConnectFuture<'a>;

    fn connect(&self) -> Self::Connect<'_> {
        let timeout = self.connect_timeout;
        Box::pin(self.connect_now().or(async move {
            smol::Timer::after(timeout).await;
            Err(TransportError::Timeout)
        }))
    }
}

/// One open WebSocket connection to the orchestrator. See the [module docs](self).
pub struct WsTransport {
    ws: WebSocketStream<WsStream>,
    /// The close frame the peer sent; every `recv` after it reports `Closed` with it.
    peer_close: Option<(u16, String)>,
    /// An error found while the connection is being closed on our side
    /// (oversized message); reported by the next `recv`.
    pending_error: Option<TransportError>,
}

impl std::fmt::Debug for WsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport").finish_non_exhaustive()
    }
}

impl Transport for WsTransport {
    type Send<'a> = SendFrame<'a>;
    type Recv<'a> = RecvFrame<'a>;

    fn send(&mut self, frame: Frame) -> Self::Send<'_> {
        SendFrame { ws: &mut self.ws, message: Some(to_message(frame)) }
    }

    fn recv(&mut self) -> Self::Recv<'_> {
        RecvFrame { transport: self }
    }
}

/// The future of [`WsTransport::send`]: queues one message and flushes it.
#[must_use = "futures do nothing unless polled"]
pub struct SendFrame<'a> {
    ws: &'a mut WebSocketStream<WsStream>,
    message: Option<Message>,
}

impl Future for SendFrame<'_> {
    type Output = Result<(), TransportError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.message.is_some() {
            ready!(Pin::new(&mut *this.ws).poll_ready(cx)).map_err(|e| stream_error(&e))?;
            if let Some(message) = this.message.take() {
                Pin::new(&mut *this.ws).start_send(message).map_err(|e| stream_error(&e))?;
            }
        }
        Pin::new(&mut *this.ws).poll_flush(cx).map_err(|e| stream_error(&e))
    }
}

/// The future of [`WsTransport::recv`]. Cancel-safe: it keeps no state of its
/// own between polls, so dropping it loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct RecvFrame<'a> {
    transport: &'a mut WsTransport,
}

impl Future for RecvFrame<'_> {
    type Output = Result<Frame, TransportError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let transport = &mut *self.get_mut().transport;
        if let Some(error) = &transport.pending_error {
            // Finish sending our 1009 close before reporting; if the peer is
            // gone, report at once.
            if Pin::new(&mut transport.ws).poll_flush(cx).is_pending() {
                return Poll::Pending;
            }
            return Poll::Ready(Err(error.clone()));
        }
        if let Some((code, reason)) = &transport.peer_close {
            // The peer said goodbye. A client would now wait for the server
            // to drop TCP; we report at once and let the driver drop us.
            let _ = Pin::new(&mut transport.ws).poll_flush(cx);
            return Poll::Ready(Err(TransportError::Closed { code: *code, reason: reason.clone() }));
        }
        loop {
            let message = match ready!(Pin::new(&mut transport.ws).poll_next(cx)) {
                Some(Ok(message)) => message,
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    let error = TransportError::Protocol(format!(
                        "message over the {TRANSPORT_MAX_MESSAGE_BYTES}-byte cap: {e}"
                    ));
                    transport.pending_error = Some(error.clone());
                    let close = Message::Close(Some(CloseFrame {
                        code: CloseCode::from(CLOSE_TOO_BIG),
                        reason: "message too big".into(),
                    }));
                    // start_send only queues; poll_flush (here and on the next
                    // recv) pushes it out.
                    if Pin::new(&mut transport.ws).start_send(close).is_err() {
                        return Poll::Ready(Err(error));
                    }
                    if Pin::new(&mut transport.ws).poll_flush(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return Poll::Ready(Err(error));
                }
                Some(Err(e)) => return Poll::Ready(Err(stream_error(&e))),
                None => {
                    return Poll::Ready(Err(TransportError::Closed { code: 1006, reason: "connection closed".into() }));
                }
            };
            let frame = match message {
                Message::Text(text) => Frame::Text(text.as_str().to_owned()),
                Message::Binary(bytes) => Frame::Binary(Vec::from(bytes)),
                Message::Ping(bytes) => Frame::Ping(Vec::from(bytes)),
                Message::Pong(bytes) => Frame::Pong(Vec::from(bytes)),
                Message::Close(close) => {
                    let (code, reason) = match close {
                        Some(close) => (u16::from(close.code), close.reason.as_str().to_owned()),
                        None => (1005, String::new()),
                    };
                    transport.peer_close = Some((code, reason.clone()));
                    // tungstenite has queued its close reply; try to get it
                    // out now, since the core may drop us right away.
                    let _ = Pin::new(&mut transport.ws).poll_flush(cx);
                    Frame::Close { code, reason }
                }
                // Raw frames are only ever produced for writing.
                Message::Frame(_) => continue,
            };
            return Poll::Ready(Ok(frame));
        }
    }
}

/// Limits for incoming messages: everything up to the transport cap is read,
/// so the core can answer frames between its own limit and the cap.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(TRANSPORT_MAX_MESSAGE_BYTES))
        .max_frame_size(Some(TRANSPORT_MAX_MESSAGE_BYTES))
}

/// `Authorization: Bearer <token>`, marked sensitive so that `http` never
/// prints it in `Debug` output.
fn bearer(token: &Secret) -> Result<HeaderValue, TransportError> {
    let unsendable = || {
        TransportError::Protocol("the worker token is empty or contains characters an HTTP header cannot carry".into())
    };
    if token.is_empty() {
        return Err(unsendable());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| unsendable())?;
    value.set_sensitive(true);
    Ok(value)
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
        Frame::Ping(bytes) => Message::Ping(bytes.into()),
        Frame::Pong(bytes) => Message::Pong(bytes.into()),
        Frame::Close { code, mut reason } => {
            let code = CloseCode::from(code);
            // 1005/1006/1015 and reserved codes must not go on the wire.
            if !code.is_allowed() {
                return Message::Close(None);
            }
            truncate_at_char_boundary(&mut reason, MAX_CLOSE_REASON_BYTES);
            Message::Close(Some(CloseFrame { code, reason: reason.into() }))
        }
    }
}

fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Maps a failed upgrade.
fn handshake_error(error: &tungstenite::Error) -> TransportError {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            if status == 401 || status == 403 {
                TransportError::Auth { status }
            } else {
                TransportError::Protocol(format!("the orchestrator answered the WebSocket upgrade with HTTP {status}"))
            }
        }
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            TransportError::Io("the connection closed during the WebSocket upgrade".into())
        }
        other => stream_error(other),
    }
}

/// Maps an error of an established connection.
fn stream_error(error: &tungstenite::Error) -> TransportError {
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Io(e) => tls_io_error(e),
        tungstenite::Error::Tls(e) => TransportError::Tls(e.to_string()),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            TransportError::Io("connection reset without a closing handshake".into())
        }
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            TransportError::Closed { code: 1006, reason: "connection closed".into() }
        }
        tungstenite::Error::Http(response) => {
            TransportError::Protocol(format!("unexpected HTTP {}", response.status().as_u16()))
        }
        other => TransportError::Protocol(other.to_string()),
    }
}

/// futures-rustls reports TLS failures as `io::Error`s wrapping a `rustls::Error`.
fn tls_io_error(error: &io::Error) -> TransportError {
    match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => TransportError::Tls(tls.to_string()),
        None => TransportError::Io(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frames_on_the_wire_are_legal() {
        assert_eq!(to_message(Frame::Close { code: 1005, reason: String::new() }), Message::Close(None));
        assert_eq!(to_message(Frame::Close { code: 1006, reason: "x".into() }), Message::Close(None));
        let Message::Close(Some(close)) = to_message(Frame::Close { code: 1000, reason: "é".repeat(100) }) else {
            panic!("1000 is a legal close code");
        };
        assert_eq!(u16::from(close.code), 1000);
        assert!(close.reason.len() <= MAX_CLOSE_REASON_BYTES);
    }

    #[test]
    fn bearer_is_sensitive_and_refuses_unsendable_tokens() {
        let value = bearer(&Secret::new("tok-123")).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("tok-123"));
        assert!(matches!(bearer(&Secret::new("")), Err(TransportError::Protocol(_))));
        let Err(TransportError::Protocol(message)) = bearer(&Secret::new("sec\nret")) else {
            panic!("a token with a newline cannot be sent");
        };
        assert!(!message.contains("sec"), "{message}");
    }

    #[test]
    fn user_agent_names_the_worker() {
        assert_eq!(USER_AGENT_VALUE, format!("cropscode-worker/{}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn tls_errors_inside_io_errors_are_tls() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(matches!(tls_io_error(&io::Error::new(io::ErrorKind::InvalidData, inner)), TransportError::Tls(_)));
        assert!(matches!(tls_io_error(&io::Error::from(io::ErrorKind::ConnectionReset)), TransportError::Io(_)));
    }
}
