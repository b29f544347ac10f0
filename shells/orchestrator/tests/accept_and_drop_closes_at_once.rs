//! `Behavior::AcceptAndDrop` completes the upgrade, then closes the connection at once.

mod common;

use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use common::*;
use cropscode_core::protocol::Outgoing;
use cropscode_orchestrator::{Behavior, Event};
use futures_lite::StreamExt;

#[test]
fn upgrades_then_closes() {
    smol::block_on(async {
        let orchestrator = start().await;
        orchestrator.set_behavior(Behavior::AcceptAndDrop);
        let started = Instant::now();
        let mut ws = connect(orchestrator.ws_addr(), Some(TOKEN)).await.expect("the upgrade succeeds");
        let _ = ws.send(frame(Outgoing::Register(register("pi-1", None)))).await;
        let mut acknowledged = false;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_))) => acknowledged = true,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
        assert!(!acknowledged, "a dropped connection acknowledged a registration");
        assert!(started.elapsed() < Duration::from_secs(2), "closed after {:?}", started.elapsed());
        // The client can see the close before the orchestrator has recorded it (often under qemu).
        orchestrator.wait_for(|e| matches!(e, Event::Disconnected { .. }), Duration::from_secs(2)).await;
        let kinds: Vec<&'static str> = orchestrator
            .events()
            .iter()
            .map(|t| match t.event {
                Event::Upgrade { authorized: true, .. } => "upgrade",
                Event::Disconnected { .. } => "disconnected",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["upgrade", "disconnected"]);

        // Back to normal, workers register again.
        orchestrator.set_behavior(Behavior::Normal);
        connect_registered(&orchestrator, "pi-1", None).await;
        orchestrator.stop().await;
    });
}
