//! The upgrade request and what becomes of its failures: the token travels in
//! the `Authorization` header only; 401/403 are auth errors; plain `ws://`
//! off loopback is refused before any I/O; slow and absent peers are
//! `Timeout` and `Io`.

mod support;

use std::time::{Duration, Instant};

use cropscode_core::{Connector, Secret, TransportError};
use cropscode_runtime::WsConnector;

const TOKEN: &str = "tok-3f9a-secret";

#[test]
fn the_token_is_sent_as_a_bearer_header_and_never_in_the_url() {
    smol::block_on(async {
        let (listener, port) = support::listen().await;
        let server = smol::spawn(async move { support::accept_plain(&listener, None).await.1 });
        let connector = WsConnector::new(&format!("ws://127.0.0.1:{port}/worker?pool=a"), Secret::new(TOKEN)).unwrap();
        let transport = connector.connect().await;
        assert!(transport.is_ok(), "connect failed: {:?}", transport.err());

        let upgrade = server.await;
        assert_eq!(upgrade.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(upgrade.target, "/worker?pool=a");
        assert!(!upgrade.target.contains(TOKEN));
        let agent = upgrade.header("user-agent").unwrap_or_default();
        assert_eq!(agent, format!("cropscode-worker/{}", env!("CARGO_PKG_VERSION")));
    });
}

#[test]
fn localhost_resolves_to_loopback_for_plain_ws() {
    smol::block_on(async {
        let (listener, port) = support::listen().await;
        let server = smol::spawn(async move { support::accept_plain(&listener, None).await.1 });
        let connector = WsConnector::new(&format!("ws://localhost:{port}/worker"), Secret::new(TOKEN)).unwrap();
        assert!(connector.connect().await.is_ok());
        assert_eq!(server.await.header("host"), Some(format!("localhost:{port}").as_str()));
    });
}

#[test]
fn refusals_401_and_403_are_auth_errors() {
    for status in [401, 403] {
        smol::block_on(async {
            let (listener, port) = support::listen().await;
            let server = smol::spawn(async move { support::accept_plain(&listener, Some(status)).await });
            let connector = WsConnector::new(&format!("ws://127.0.0.1:{port}/w"), Secret::new(TOKEN)).unwrap();
            let error = connector.connect().await.expect_err("a refused upgrade must fail");
            assert_eq!(error, TransportError::Auth { status });
            assert!(error.is_auth() && !error.is_retryable());
            assert!(!error.to_string().contains(TOKEN));
            server.await;
        });
    }
}

#[test]
fn other_http_statuses_are_protocol_errors() {
    smol::block_on(async {
        let (listener, port) = support::listen().await;
        let server = smol::spawn(async move { support::accept_plain(&listener, Some(503)).await });
        let connector = WsConnector::new(&format!("ws://127.0.0.1:{port}/w"), Secret::new(TOKEN)).unwrap();
        let error = connector.connect().await.expect_err("a refused upgrade must fail");
        assert!(matches!(&error, TransportError::Protocol(m) if m.contains("503")), "{error:?}");
        assert!(error.is_retryable());
        server.await;
    });
}

#[test]
fn plain_ws_off_loopback_is_refused_before_connecting() {
    // 192.0.2.0/24 is TEST-NET-1: nothing answers there, and nothing is sent
    // either, since the connector refuses to exist.
    for url in ["ws://192.0.2.1:9/w", "ws://orchestrator.example.com/w", "ws://[2001:db8::1]/w"] {
        let error = WsConnector::new(url, Secret::new(TOKEN)).expect_err("must be refused");
        assert!(matches!(error, TransportError::InsecureUrl(_)), "{url}: {error:?}");
        assert!(!error.is_retryable());
    }
}

#[test]
fn a_silent_peer_is_a_timeout() {
    smol::block_on(async {
        // The kernel completes the TCP handshake; nobody answers the upgrade.
        let (listener, port) = support::listen().await;
        let connector = WsConnector::new(&format!("ws://127.0.0.1:{port}/w"), Secret::new(TOKEN))
            .unwrap()
            .with_connect_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let error = connector.connect().await.expect_err("must time out");
        assert_eq!(error, TransportError::Timeout);
        assert!(started.elapsed() >= Duration::from_millis(300));
        drop(listener);
    });
}

#[test]
fn nobody_listening_is_an_io_error() {
    smol::block_on(async {
        let (listener, port) = support::listen().await;
        drop(listener);
        let connector = WsConnector::new(&format!("ws://127.0.0.1:{port}/w"), Secret::new(TOKEN)).unwrap();
        let error = connector.connect().await.expect_err("must fail");
        assert!(matches!(error, TransportError::Io(_)), "{error:?}");
        assert!(error.is_retryable());
    });
}
