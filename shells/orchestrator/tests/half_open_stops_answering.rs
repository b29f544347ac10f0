//! `Behavior::HalfOpen` keeps sockets open but stops reading and answering (no pongs,
//! no acknowledgements, commands lost); back to `Normal`, the connection resumes.

mod common;

use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use common::*;
use cropscode_core::protocol::Outgoing;
use cropscode_orchestrator::{Behavior, Event};
use futures_lite::{AsyncRead, AsyncWrite, StreamExt};

/// The next message within `wait`, if any.
async fn within<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, wait: Duration) -> Option<Message> {
    smol::future::or(async { ws.next().await.and_then(Result::ok) }, async {
        smol::Timer::after(wait).await;
        None
    })
    .await
}

#[test]
fn half_open_is_silent_and_recovers() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;
        orchestrator.set_behavior(Behavior::HalfOpen);
        // Let the connection task notice before anything arrives.
        smol::Timer::after(Duration::from_millis(100)).await;

        ws.send(Message::Ping(b"are you there".to_vec().into())).await.expect("ping");
        ws.send(frame(Outgoing::Heartbeat(heartbeat()))).await.expect("heartbeat");
        orchestrator.send_text(&id, r#"{"type":"container.list","id":"lost","params":{}}"#.into()).await.expect("lost");
        assert_eq!(within(&mut ws, Duration::from_millis(700)).await, None, "a half-open server answered");
        assert!(!orchestrator.events().iter().any(|t| matches!(t.event, Event::Heartbeat { .. })), "it read a frame");
        assert!(!orchestrator.events().iter().any(|t| matches!(t.event, Event::Disconnected { .. })), "it closed");

        // A new connection upgrades but its registration is never acknowledged.
        let mut late = connect(orchestrator.ws_addr(), Some(TOKEN)).await.expect("upgrade while half-open");
        late.send(frame(Outgoing::Register(register("late", None)))).await.expect("register");
        assert_eq!(within(&mut late, Duration::from_millis(300)).await, None);

        orchestrator.set_behavior(Behavior::Normal);
        assert_eq!(within(&mut ws, WAIT).await, Some(Message::Pong(b"are you there".to_vec().into())));
        orchestrator.wait_for(|e| matches!(e, Event::Heartbeat { .. }), WAIT).await.expect("buffered heartbeat read");
        let ack = next_json(&mut late).await.expect("late ack");
        assert_eq!(ack["type"], "worker.registered");
        orchestrator.stop().await;
    });
}
