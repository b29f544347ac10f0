//! A raw worker-side client for the orchestrator's tests: real TCP (and TLS),
//! real WebSocket upgrades, hand-written frames.
#![allow(dead_code)] // each test file uses a different part

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_net::TcpStream;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use cropscode_core::protocol::{Heartbeat, Limits, Mode, Outgoing, Register};
use cropscode_orchestrator::{Orchestrator, OrchestratorConfig};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

pub const TOKEN: &str = "test-token-7f3a";
/// The HTTP endpoint's secret in these tests (`OrchestratorConfig::http_secret`).
pub const SECRET: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<TcpStream>;

pub async fn start() -> Orchestrator {
    Orchestrator::start(OrchestratorConfig::with_token(TOKEN)).await.expect("start orchestrator")
}

/// An orchestrator with the HTTP endpoint on a free port, [`SECRET`] and the test hooks.
pub async fn start_with_http() -> Orchestrator {
    let config = OrchestratorConfig {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        http_secret: Some(SECRET.into()),
        test_hooks: true,
        ..OrchestratorConfig::with_token(TOKEN)
    };
    Orchestrator::start(config).await.expect("start orchestrator")
}

/// Upgrades a plain TCP connection to `addr`, with `Authorization: Bearer <token>` when given.
pub async fn connect(addr: SocketAddr, token: Option<&str>) -> Result<Ws, WsError> {
    let stream = TcpStream::connect(addr).await?;
    upgrade(format!("ws://{addr}/worker"), token, stream).await
}

pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    url: String,
    token: Option<&str>,
    stream: S,
) -> Result<WebSocketStream<S>, WsError> {
    let mut request = url.into_client_request()?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
        request.headers_mut().insert("authorization", value);
    }
    async_tungstenite::client_async(request, stream).await.map(|(ws, _)| ws)
}

/// The HTTP status of a refused upgrade.
pub fn refusal_status(error: &WsError) -> Option<u16> {
    match error {
        WsError::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

pub fn register(name: &str, worker_id: Option<&str>) -> Register {
    Register {
        protocol_version: cropscode_core::protocol::PROTOCOL_VERSION,
        name: name.into(),
        hostname: "test-host".into(),
        platform: "linux".into(),
        arch: "aarch64".into(),
        cpu_count: 4,
        memory_total: 8 << 30,
        container_engines: vec!["podman".into()],
        agent_version: "0.1.0".into(),
        mode: Mode::Byom,
        worker_id: worker_id.map(Into::into),
        limits: Limits::DEFAULT,
    }
}

pub fn frame(message: Outgoing) -> Message {
    Message::text(serde_json::to_string(&message).expect("encode"))
}

pub fn heartbeat() -> Heartbeat {
    Heartbeat { cpu_usage: 3.2, memory_free: 1 << 30, containers_running: 2, ..Heartbeat::default() }
}

/// The next text frame as JSON (skipping pings/pongs), or `None` on close/error/timeout.
pub async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Option<Value> {
    let read = async {
        loop {
            match ws.next().await? {
                Ok(Message::Text(text)) => return serde_json::from_str(text.as_str()).ok(),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                _ => return None,
            }
        }
    };
    smol::future::or(read, async {
        smol::Timer::after(WAIT).await;
        None
    })
    .await
}

/// Connects, registers and returns the socket with the acknowledged worker id.
pub async fn connect_registered(orchestrator: &Orchestrator, name: &str, worker_id: Option<&str>) -> (Ws, String) {
    let mut ws = connect(orchestrator.ws_addr(), Some(TOKEN)).await.expect("upgrade");
    ws.send(frame(Outgoing::Register(register(name, worker_id)))).await.expect("send register");
    let ack = next_json(&mut ws).await.expect("registration ack");
    assert_eq!(ack["type"], "worker.registered", "{ack}");
    let id = ack["workerId"].as_str().expect("workerId").to_string();
    (ws, id)
}

/// A test CA and a `localhost` leaf signed by it.
pub struct TestCa {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub leaf_key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("ca key");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params = CertificateParams::new(vec!["localhost".into()]).expect("leaf params");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf cert");
        TestCa { ca_pem: ca.pem(), leaf_pem: leaf.pem(), leaf_key_pem: leaf_key.serialize_pem() }
    }

    /// A TLS connector that trusts only this CA.
    pub fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

pub async fn connect_tls(
    ca: &TestCa,
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<WebSocketStream<TlsStream<TcpStream>>, WsError> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = ca.connector().connect(name, tcp).await?;
    upgrade(format!("wss://localhost:{}/worker", addr.port()), token, tls).await
}

/// One raw HTTP/1.1 request with the bearer [`SECRET`]; returns the status and the body parsed as JSON.
pub async fn http(addr: SocketAddr, method: &str, target: &str, body: Option<&str>) -> io::Result<(u16, Value)> {
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    parse_http(&raw_http(addr, &request).await?)
}

/// Sends `request` verbatim on a new connection; returns everything the server answered.
pub async fn raw_http(addr: SocketAddr, request: &str) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

pub fn parse_http(response: &[u8]) -> io::Result<(u16, Value)> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| io::Error::other(format!("no head in {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    let json = serde_json::from_str(body.trim()).map_err(|e| io::Error::other(format!("{e}: {body:?}")))?;
    Ok((status, json))
}
