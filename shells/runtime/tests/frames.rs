//! Frames across a real loopback WebSocket: every kind maps onto core's
//! `Frame`, large text frames reach the core, messages over the transport cap
//! close the connection with 1009, and `recv` survives being cancelled.

mod support;

use std::time::Duration;

use async_net::TcpStream;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use cropscode_core::protocol::limits::TRANSPORT_MAX_MESSAGE_BYTES;
use cropscode_core::{Connector, Frame, Secret, Transport, TransportError};
use cropscode_runtime::{WsConnector, WsTransport};
use futures_lite::{FutureExt, StreamExt};

/// A connected pair: our transport and the server's end of the socket.
async fn pair() -> (WsTransport, WebSocketStream<TcpStream>) {
    let (listener, port) = support::listen().await;
    let server = smol::spawn(async move { support::accept_plain(&listener, None).await.0 });
    let connector = WsConnector::new(&format!("ws://127.0.0.1:{port}/w"), Secret::new("tok")).unwrap();
    let transport = connector.connect().await.expect("connect");
    (transport, server.await.expect("upgrade"))
}

#[test]
fn every_kind_of_frame_maps_both_ways() {
    smol::block_on(async {
        let (mut transport, mut server) = pair().await;

        server.send(Message::text("{\"type\":\"x\"}")).await.unwrap();
        server.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        server.send(Message::Ping(vec![9u8].into())).await.unwrap();
        server.send(Message::Pong(vec![8u8].into())).await.unwrap();
        assert_eq!(transport.recv().await.unwrap(), Frame::Text("{\"type\":\"x\"}".into()));
        assert_eq!(transport.recv().await.unwrap(), Frame::Binary(vec![1, 2, 3]));
        assert_eq!(transport.recv().await.unwrap(), Frame::Ping(vec![9]));
        assert_eq!(transport.recv().await.unwrap(), Frame::Pong(vec![8]));

        transport.send(Frame::Text("hi".into())).await.unwrap();
        transport.send(Frame::Binary(vec![4, 5])).await.unwrap();
        transport.send(Frame::Ping(vec![7])).await.unwrap();
        // The server sees our frames, and tungstenite's automatic pong to its ping.
        let mut seen = Vec::new();
        while seen.len() < 4 {
            seen.push(server.next().await.unwrap().unwrap());
        }
        assert!(seen.contains(&Message::text("hi")), "{seen:?}");
        assert!(seen.contains(&Message::binary(vec![4u8, 5])), "{seen:?}");
        assert!(seen.contains(&Message::Ping(vec![7u8].into())), "{seen:?}");
        assert!(seen.contains(&Message::Pong(vec![9u8].into())), "{seen:?}");
    });
}

#[test]
fn a_close_from_the_orchestrator_is_a_frame_then_a_closed_error() {
    smol::block_on(async {
        let (mut transport, mut server) = pair().await;
        server.close(Some(CloseFrame { code: CloseCode::from(4003), reason: "token revoked".into() })).await.unwrap();
        assert_eq!(transport.recv().await.unwrap(), Frame::Close { code: 4003, reason: "token revoked".into() });
        let error = transport.recv().await.unwrap_err();
        assert_eq!(error, TransportError::Closed { code: 4003, reason: "token revoked".into() });
        assert!(error.is_auth());
    });
}

#[test]
fn a_close_frame_sent_by_the_core_reaches_the_orchestrator() {
    smol::block_on(async {
        let (mut transport, mut server) = pair().await;
        transport.send(Frame::Close { code: 1000, reason: "shutting down".into() }).await.unwrap();
        let Some(Ok(Message::Close(Some(close)))) = server.next().await else {
            panic!("expected a close frame");
        };
        assert_eq!((u16::from(close.code), close.reason.as_str()), (1000, "shutting down"));
    });
}

#[test]
fn a_two_mib_text_frame_reaches_recv() {
    smol::block_on(async {
        let (mut transport, mut server) = pair().await;
        let big = format!("{{\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
        let sent = big.clone();
        let send = smol::spawn(async move {
            server.send(Message::text(sent)).await.unwrap();
            server
        });
        match transport.recv().await {
            Ok(Frame::Text(text)) => assert_eq!(text.len(), big.len()),
            other => panic!("a 2 MiB text frame must reach the core, got {:?}", other.map(|_| "another frame")),
        }
        drop(send.await);
    });
}

#[test]
fn a_message_over_the_transport_cap_closes_with_1009() {
    smol::block_on(async {
        let (mut transport, server) = pair().await;
        let (mut tx, mut rx) = server.split();
        let huge = vec![0u8; TRANSPORT_MAX_MESSAGE_BYTES + 1];
        // The server's write cannot finish (we stop reading), so it runs on its own.
        let writer = smol::spawn(async move {
            let _ = tx.send(Message::binary(huge)).await;
        });
        let error = transport.recv().await.unwrap_err();
        assert!(matches!(error, TransportError::Protocol(_)), "{error:?}");
        let close = async {
            loop {
                match rx.next().await {
                    Some(Ok(Message::Close(close))) => return close,
                    Some(Ok(_)) => continue,
                    other => panic!("expected a close frame, got {other:?}"),
                }
            }
        };
        let close = close.await.expect("a close frame with a code");
        assert_eq!(u16::from(close.code), 1009);
        // Asking again reports the same failure.
        assert_eq!(transport.recv().await.unwrap_err(), error);
        drop(transport);
        writer.await;
    });
}

#[test]
fn recv_is_cancel_safe() {
    smol::block_on(async {
        let (mut transport, mut server) = pair().await;
        // Drop many pending receives, as the driver does when a timer wins.
        for _ in 0..20 {
            let lost = async {
                transport.recv().await.expect("nothing arrives yet");
                panic!("no frame was sent");
            }
            .or(async {
                smol::Timer::after(Duration::from_millis(2)).await;
            });
            lost.await;
        }
        // Then a frame that takes many reads to arrive, with receives
        // dropped in between, still arrives whole.
        let frame = format!("{{\"pad\":\"{}\"}}", "b".repeat(300_000));
        let expected = frame.clone();
        let send = smol::spawn(async move {
            server.send(Message::text(frame)).await.unwrap();
            server
        });
        let received = loop {
            let attempt = async { Some(transport.recv().await) }.or(async {
                smol::Timer::after(Duration::from_micros(200)).await;
                None
            });
            if let Some(result) = attempt.await {
                break result.unwrap();
            }
        };
        assert_eq!(received, Frame::Text(expected));
        drop(send.await);
    });
}
