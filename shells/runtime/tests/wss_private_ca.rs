//! `wss://` to an orchestrator whose certificate comes from a private CA:
//! trusted with `ca_file`, refused as a TLS error without it.

mod support;

use std::sync::Arc;

use async_net::TcpListener;
use cropscode_core::{Connector, Frame, Secret, Transport, TransportError};
use cropscode_runtime::WsConnector;
use futures_lite::StreamExt;
use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;

const TOKEN: &str = "tok-wss-secret";

/// Serves one TLS connection: upgrades, answers the first text frame with its
/// echo, and returns the upgrade it saw (None if TLS failed).
async fn serve_once(listener: TcpListener, tls: Arc<ServerConfig>) -> Option<support::Upgrade> {
    let (tcp, _) = listener.accept().await.ok()?;
    let stream = TlsAcceptor::from(tls).accept(tcp).await.ok()?;
    let (ws, upgrade) = support::upgrade(stream, None).await;
    let mut ws = ws?;
    if let Some(Ok(message)) = ws.next().await {
        ws.send(message).await.ok()?;
    }
    Some(upgrade)
}

#[test]
fn wss_with_the_ca_file_connects_and_carries_frames() {
    let pki = support::test_pki();
    for host in ["localhost", "127.0.0.1"] {
        smol::block_on(async {
            let (listener, port) = support::listen().await;
            let server = smol::spawn(serve_once(listener, pki.server.clone()));
            let connector = WsConnector::new(&format!("wss://{host}:{port}/worker"), Secret::new(TOKEN))
                .unwrap()
                .with_ca_file(&pki.ca_file)
                .unwrap();
            let mut transport = match connector.connect().await {
                Ok(transport) => transport,
                Err(error) => panic!("wss://{host} with the CA file: {error}"),
            };
            transport.send(Frame::Text("{\"type\":\"hello\"}".into())).await.unwrap();
            assert_eq!(transport.recv().await.unwrap(), Frame::Text("{\"type\":\"hello\"}".into()));
            let upgrade = server.await.expect("the server saw a TLS upgrade");
            assert_eq!(upgrade.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        });
    }
}

#[test]
fn wss_without_the_ca_file_is_a_tls_error() {
    let pki = support::test_pki();
    smol::block_on(async {
        let (listener, port) = support::listen().await;
        let server = smol::spawn(serve_once(listener, pki.server.clone()));
        let connector = WsConnector::new(&format!("wss://localhost:{port}/worker"), Secret::new(TOKEN)).unwrap();
        let error = connector.connect().await.expect_err("a private CA is not in webpki-roots");
        assert!(matches!(&error, TransportError::Tls(m) if m.contains("certificate")), "{error:?}");
        assert!(!error.is_retryable());
        // The token never left: TLS failed before the upgrade request.
        assert!(server.await.is_none());
    });
}

#[test]
fn a_bad_ca_file_is_refused_at_construction_naming_the_path() {
    let dir = support::temp_dir();
    let path = dir.join("not-a-ca.pem");
    std::fs::write(&path, "hello\n").unwrap();
    let error = WsConnector::new("wss://localhost:1/w", Secret::new(TOKEN))
        .unwrap()
        .with_ca_file(&path)
        .expect_err("a file without certificates must be refused");
    assert!(matches!(&error, TransportError::Tls(m) if m.contains(&*path.to_string_lossy())), "{error:?}");
}
