//! `worker.register` is acknowledged with a worker id (the announced one, or a fresh
//! `w-<n>`), heartbeats are kept, and everything is recorded as events.

mod common;

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use common::*;
use cropscode_core::protocol::Outgoing;
use cropscode_orchestrator::{Event, print_summary};

#[test]
fn registration_is_acknowledged_and_heartbeats_are_kept() {
    smol::block_on(async {
        let orchestrator = start().await;
        let feed = orchestrator.subscribe();
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;
        assert_eq!(id, "w-1");

        // wait_for sees events that already happened.
        let registered = orchestrator
            .wait_for(|e| matches!(e, Event::Registered { .. }), Duration::from_millis(10))
            .await
            .expect("past registration");
        let Event::Registered { connection, worker_id, register } = &registered.event else { unreachable!() };
        assert_eq!((worker_id.as_str(), register.name.as_str()), ("w-1", "pi-1"));
        assert_eq!(
            print_summary(&registered.event),
            "worker pi-1 registered as w-1 (linux/aarch64, 4 CPUs, 8.0 GiB RAM, engines: podman, agent 0.1.0, byom)"
        );

        ws.send(frame(Outgoing::Heartbeat(heartbeat()))).await.expect("heartbeat");
        let beat =
            orchestrator.wait_for(|e| matches!(e, Event::Heartbeat { .. }), WAIT).await.expect("heartbeat recorded");
        match &beat.event {
            Event::Heartbeat { connection: c, worker_id: Some(w), heartbeat: h } => {
                assert_eq!((c, w.as_str(), h.containers_running), (connection, "w-1", 2));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(print_summary(&beat.event), "heartbeat from w-1: cpu 3.2%, mem free 1.0 GiB, 2 containers");

        let workers = orchestrator.workers();
        assert_eq!(workers.len(), 1);
        assert_eq!((workers[0].worker_id.as_str(), workers[0].connection), ("w-1", *connection));
        assert_eq!(workers[0].last_heartbeat.as_ref().map(|h| h.containers_running), Some(2));
        assert!(workers[0].last_heartbeat_at.is_some());

        ws.send(Message::binary(vec![1, 2, 3])).await.expect("binary");
        orchestrator
            .wait_for(|e| matches!(e, Event::Binary { bytes, .. } if bytes == &[1, 2, 3]), WAIT)
            .await
            .expect("binary recorded");

        // Every text frame is recorded verbatim, and the live feed saw the same events in order.
        let frames = orchestrator.events().into_iter().filter(|t| matches!(t.event, Event::Frame { .. })).count();
        assert_eq!(frames, 2, "register + heartbeat");
        let mut fed = Vec::new();
        while let Ok(event) = feed.try_recv() {
            fed.push(event);
        }
        assert_eq!(fed, orchestrator.events());

        ws.close(None).await.expect("close");
        orchestrator
            .wait_for(|e| matches!(e, Event::Disconnected { connection: c } if c == connection), WAIT)
            .await
            .expect("disconnect recorded");
        assert!(orchestrator.workers().is_empty());
        orchestrator.stop().await;
    });
}

#[test]
fn an_announced_worker_id_is_kept_and_fresh_ids_skip_it() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (_a, a) = connect_registered(&orchestrator, "a", Some("w-1")).await;
        let (_b, b) = connect_registered(&orchestrator, "b", None).await;
        let (_c, c) = connect_registered(&orchestrator, "c", Some("pi-kitchen")).await;
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("w-1", "w-2", "pi-kitchen"));
        // The same worker reconnecting takes its id over; the list holds it once.
        let (_again, again) = connect_registered(&orchestrator, "a", Some("w-1")).await;
        assert_eq!(again, "w-1");
        let ids: Vec<String> = orchestrator.workers().into_iter().map(|w| w.worker_id).collect();
        assert_eq!(ids, vec!["w-2", "pi-kitchen", "w-1"]);
        orchestrator.stop().await;
    });
}

#[test]
fn an_unsupported_protocol_version_is_rejected() {
    smol::block_on(async {
        let orchestrator = start().await;
        let mut ws = connect(orchestrator.ws_addr(), Some(TOKEN)).await.expect("upgrade");
        let mut register = register("old", None);
        register.protocol_version = 999;
        ws.send(frame(Outgoing::Register(register))).await.expect("send");
        let reply = next_json(&mut ws).await.expect("reply");
        assert_eq!(
            (reply["type"].as_str(), reply["error"]["code"].as_str()),
            (Some("worker.rejected"), Some("invalid_request"))
        );
        assert!(orchestrator.workers().is_empty());
        orchestrator.stop().await;
    });
}

#[test]
fn wait_for_times_out_without_a_match() {
    smol::block_on(async {
        let orchestrator = start().await;
        let started = std::time::Instant::now();
        let found = orchestrator.wait_for(|e| matches!(e, Event::Registered { .. }), Duration::from_millis(200)).await;
        assert!(found.is_none());
        assert!(started.elapsed() >= Duration::from_millis(200));
        orchestrator.stop().await;
    });
}
