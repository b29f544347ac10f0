//! A loopback WebSocket server (plain or TLS with a throwaway CA) for the
//! transport tests. Real sockets only: every test binds 127.0.0.1:0.
#![allow(dead_code, clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_net::{TcpListener, TcpStream};
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::StatusCode;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_lite::{AsyncRead, AsyncWrite};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the server saw of the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Path and query of the request line.
    pub target: String,
    /// All headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Upgrade {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A listener on 127.0.0.1 with a free port.
pub async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    (listener, port)
}

/// Accepts one WebSocket upgrade on `stream`, recording the request; with
/// `refuse = Some(status)` answers that HTTP status instead of upgrading.
pub async fn upgrade<S>(stream: S, refuse: Option<u16>) -> (Option<WebSocketStream<S>>, Upgrade)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = Upgrade::default();
    let record = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        seen.target = request.uri().to_string();
        seen.headers = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        match refuse {
            Some(status) => {
                let mut error = ErrorResponse::new(Some("refused".into()));
                *error.status_mut() = StatusCode::from_u16(status).expect("status");
                Err(error)
            }
            None => Ok(response),
        }
    };
    // The server reads whatever the tests throw at it.
    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    let ws = async_tungstenite::accept_hdr_async_with_config(stream, record, Some(config)).await.ok();
    (ws, seen)
}

/// Accepts one TCP connection and upgrades it.
pub async fn accept_plain(
    listener: &TcpListener,
    refuse: Option<u16>,
) -> (Option<WebSocketStream<TcpStream>>, Upgrade) {
    let (tcp, _) = listener.accept().await.expect("accept");
    upgrade(tcp, refuse).await
}

/// A throwaway CA, a server certificate it signed for `localhost` and
/// `127.0.0.1`, and the CA certificate written to a PEM file.
pub struct TestPki {
    pub ca_file: PathBuf,
    pub server: Arc<ServerConfig>,
}

pub fn test_pki() -> TestPki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "cropscode test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server params");
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let server_cert = params.signed_by(&server_key, &issuer).expect("server certificate");

    let server = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .expect("server config");

    let ca_file = temp_dir().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).expect("write CA file");
    TestPki { ca_file, server: Arc::new(server) }
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cropscode-runtime-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
