//! The HTTP additions the console relies on (`console/API.md` § 4): a long
//! poll of the events, `sent` events and `workerId` on frame events, commands
//! that answer 202 at once, and the test hook that drops worker connections.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cropscode_core::protocol::{CommandResult as WireResult, Outgoing};
use cropscode_orchestrator::{Orchestrator, OrchestratorConfig};
use futures_lite::future::zip;
use serde_json::json;

#[test]
fn long_poll_waits_for_the_next_event() {
    smol::block_on(async {
        let orchestrator = start_with_http().await;
        let addr = orchestrator.http_addr().unwrap();
        let (_, page) = http(addr, "GET", "/events?since=0", None).await.unwrap();
        let next = page["next"].as_u64().unwrap();

        let started = Instant::now();
        let (_, empty) = http(addr, "GET", &format!("/events?since={next}&waitMs=300"), None).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300), "waited {:?}", started.elapsed());
        assert_eq!(empty["events"], json!([]));

        let started = Instant::now();
        let target = format!("/events?since={next}&waitMs=20000");
        let poll = http(addr, "GET", &target, None);
        let connect = async {
            smol::Timer::after(Duration::from_millis(200)).await;
            connect_registered(&orchestrator, "pi-1", None).await
        };
        let (answer, _connected) = zip(poll, connect).await;
        let (status, page) = answer.unwrap();
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(10), "the poll answered when the event came");
        assert_eq!(page["events"][0]["event"]["kind"], "upgrade");
        assert_eq!(http(addr, "GET", "/events?since=0&waitMs=x", None).await.unwrap().0, 400);
        orchestrator.stop().await;
    });
}

#[test]
fn async_commands_answer_202_and_sent_frames_are_events() {
    smol::block_on(async {
        let orchestrator = start_with_http().await;
        let addr = orchestrator.http_addr().unwrap();
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;

        let body = json!({ "type": "image.build", "params": { "tag": "x:1" }, "async": true }).to_string();
        let (status, answer) = http(addr, "POST", &format!("/workers/{id}/commands"), Some(&body)).await.unwrap();
        assert_eq!(status, 202, "{answer}");
        let cid = answer["id"].as_str().expect("id").to_string();
        let command = next_json(&mut ws).await.expect("command");
        assert_eq!((command["type"].as_str(), command["id"].as_str()), (Some("image.build"), Some(cid.as_str())));
        let done = WireResult::from_outcome(cid.clone(), Ok(json!({ "tag": "x:1" })));
        ws.send(frame(Outgoing::Result(done))).await.unwrap();
        orchestrator
            .wait_for(|e| matches!(e, cropscode_orchestrator::Event::Frame { text, .. } if text.contains(&cid)), WAIT)
            .await
            .expect("the result frame");

        let (_, page) = http(addr, "GET", "/events?since=0", None).await.unwrap();
        let events = page["events"].as_array().unwrap();
        let sent: Vec<&str> =
            events.iter().filter(|e| e["event"]["kind"] == "sent").map(|e| e["summary"].as_str().unwrap()).collect();
        assert_eq!(sent, vec![format!("sent to {id}: worker.registered"), format!("sent to {id}: image.build {cid}")]);
        let result = events.iter().find(|e| e["event"]["text"].as_str().is_some_and(|t| t.contains("\"result\"")));
        assert_eq!(result.expect("result frame")["event"]["workerId"], id.as_str());
        let register = events.iter().find(|e| e["event"]["kind"] == "frame").unwrap();
        assert_eq!(register["event"]["workerId"], json!(null), "no worker id before registration");

        let body = json!({ "type": "container.list", "async": true }).to_string();
        assert_eq!(http(addr, "POST", "/workers/w-404/commands", Some(&body)).await.unwrap().0, 404);
        let body = json!({ "type": "container.list", "async": "yes" }).to_string();
        assert_eq!(http(addr, "POST", &format!("/workers/{id}/commands"), Some(&body)).await.unwrap().0, 400);
        orchestrator.stop().await;
    });
}

#[test]
fn the_test_hook_drops_every_worker_connection() {
    smol::block_on(async {
        let orchestrator = start_with_http().await;
        let addr = orchestrator.http_addr().unwrap();
        let (mut first, _) = connect_registered(&orchestrator, "pi-1", None).await;
        let (mut second, _) = connect_registered(&orchestrator, "pi-2", None).await;
        let (status, answer) = http(addr, "POST", "/test/drop-worker-connections", Some("{}")).await.unwrap();
        assert_eq!((status, answer), (200, json!({ "dropped": 2 })));
        assert_eq!(next_json(&mut first).await, None, "the connection ended");
        assert_eq!(next_json(&mut second).await, None);
        let deadline = Instant::now() + WAIT;
        while !orchestrator.workers().is_empty() && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        assert!(orchestrator.workers().is_empty());
        // The listener stays up: workers come back.
        let (_again, _) = connect_registered(&orchestrator, "pi-1", None).await;
        orchestrator.stop().await;

        // Without the test hooks there is no such endpoint.
        let config = OrchestratorConfig {
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            http_secret: Some(SECRET.into()),
            ..OrchestratorConfig::with_token(TOKEN)
        };
        let plain = Orchestrator::start(config).await.unwrap();
        let addr = plain.http_addr().unwrap();
        assert_eq!(http(addr, "POST", "/test/drop-worker-connections", Some("{}")).await.unwrap().0, 404);
        plain.stop().await;
    });
}
