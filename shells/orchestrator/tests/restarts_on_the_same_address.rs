//! `stop()` drops every connection like a dying process, frees the port, and a new
//! orchestrator starts on the same address.

mod common;

use std::time::Duration;

use async_net::TcpStream;
use common::*;
use cropscode_orchestrator::{Event, Orchestrator, OrchestratorConfig, OrchestratorError};
use futures_lite::StreamExt;
use futures_lite::future::zip;
use serde_json::json;

#[test]
fn stop_frees_the_port_and_a_restart_works() {
    smol::block_on(async {
        let orchestrator = start().await;
        let addr = orchestrator.ws_addr();
        let feed = orchestrator.subscribe();
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;

        // A command waiting when the orchestrator dies ends with `Stopped`.
        let waiting = orchestrator.command(&id, "container.list", json!({}), Duration::from_secs(60));
        let stopping = async {
            orchestrator.wait_for(|e| matches!(e, Event::Frame { .. }), WAIT).await;
            smol::Timer::after(Duration::from_millis(100)).await;
            orchestrator.stop().await;
        };
        let (outcome, ()) = zip(waiting, stopping).await;
        assert_eq!(outcome, Err(OrchestratorError::Stopped));

        // The worker's socket is gone (the command may arrive first, then the end).
        let ended = smol::future::or(
            async {
                while let Some(Ok(_)) = ws.next().await {}
                true
            },
            async {
                smol::Timer::after(WAIT).await;
                false
            },
        )
        .await;
        assert!(ended, "the connection was not dropped");
        assert!(TcpStream::connect(addr).await.is_err(), "the listener is still open");
        assert!(orchestrator.events().iter().any(|t| matches!(t.event, Event::Disconnected { .. })));
        assert_eq!(orchestrator.command(&id, "container.list", json!({}), WAIT).await, Err(OrchestratorError::Stopped));
        // The live feed ends.
        while feed.recv().await.is_ok() {}

        let config = OrchestratorConfig { ws_addr: addr, ..OrchestratorConfig::with_token(TOKEN) };
        let revived = Orchestrator::start(config).await.expect("restart on the same address");
        assert_eq!(revived.ws_addr(), addr);
        let (_ws, again) = connect_registered(&revived, "pi-1", Some(&id)).await;
        assert_eq!(again, id);
        revived.stop().await;
    });
}

#[test]
fn dropping_the_last_handle_stops_it() {
    smol::block_on(async {
        let orchestrator = start().await;
        let addr = orchestrator.ws_addr();
        let (mut ws, _) = connect_registered(&orchestrator, "pi-1", None).await;
        drop(orchestrator);
        let ended = smol::future::or(
            async {
                while let Some(Ok(_)) = ws.next().await {}
                true
            },
            async {
                smol::Timer::after(WAIT).await;
                false
            },
        )
        .await;
        assert!(ended, "the connection outlived the orchestrator");
        // Dropping cancels the tasks without waiting, so the port is freed soon, not at once.
        let config = OrchestratorConfig { ws_addr: addr, ..OrchestratorConfig::with_token(TOKEN) };
        let deadline = std::time::Instant::now() + WAIT;
        let revived = loop {
            match Orchestrator::start(config.clone()).await {
                Ok(revived) => break revived,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    smol::Timer::after(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the port was not freed: {e}"),
            }
        };
        revived.stop().await;
    });
}
