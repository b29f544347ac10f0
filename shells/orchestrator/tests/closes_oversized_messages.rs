//! Messages up to the 16 MiB transport cap are read and recorded; a larger one closes
//! the connection with 1009.

mod common;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use common::*;
use cropscode_orchestrator::Event;
use futures_lite::StreamExt;

#[test]
fn above_16_mib_closes_with_1009() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (mut ws, _) = connect_registered(&orchestrator, "pi-1", None).await;
        let two_mib = "y".repeat(2 << 20);
        ws.send(Message::text(two_mib.clone())).await.expect("2 MiB");
        orchestrator
            .wait_for(|e| matches!(e, Event::Frame { text, .. } if text.len() == two_mib.len()), WAIT)
            .await
            .expect("2 MiB frame recorded");

        let _ = ws.send(Message::text("z".repeat((16 << 20) + 1))).await;
        let mut close_code = None;
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => close_code = frame.map(|f| f.code),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(close_code, Some(CloseCode::Size));
        orchestrator.wait_for(|e| matches!(e, Event::Disconnected { .. }), WAIT).await.expect("disconnected");
        orchestrator.stop().await;
    });
}
