//! Commands go out as `{"type","id","params"}`; the `result` for the id comes back to the
//! caller with the `progress` that preceded it; raw frames reach the worker verbatim.

mod common;

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use common::*;
use cropscode_core::protocol::{CommandResult as WireResult, ErrorCode, Outgoing, Progress, WireError};
use cropscode_orchestrator::OrchestratorError;
use futures_lite::StreamExt;
use futures_lite::future::zip;
use serde_json::json;

#[test]
fn a_command_gets_its_result_and_progress() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;

        let worker = async {
            let command = next_json(&mut ws).await.expect("command frame");
            assert_eq!(command["type"], "image.build");
            assert_eq!(command["params"], json!({ "tag": "x" }));
            let cid = command["id"].as_str().expect("id").to_string();
            // A result for some other id first: it must not be taken for ours.
            let stray = WireResult::from_outcome("other".into(), Ok(json!(0)));
            ws.send(frame(Outgoing::Result(stray))).await.unwrap();
            for step in 1..=2 {
                let progress = Progress { id: cid.clone(), progress: json!({ "step": step }) };
                ws.send(frame(Outgoing::Progress(progress))).await.unwrap();
            }
            let done = WireResult::from_outcome(cid.clone(), Ok(json!({ "imageId": "sha256:1" })));
            ws.send(frame(Outgoing::Result(done))).await.unwrap();
            cid
        };
        let (result, cid) = zip(orchestrator.command(&id, "image.build", json!({ "tag": "x" }), WAIT), worker).await;
        let result = result.expect("result");
        assert_eq!(result.id, cid);
        assert!(cid.starts_with("c-"), "{cid}");
        assert_eq!(result.outcome(), Ok(&json!({ "imageId": "sha256:1" })));
        assert_eq!(result.progress, vec![json!({ "step": 1 }), json!({ "step": 2 })]);
        orchestrator.stop().await;
    });
}

#[test]
fn failures_chosen_ids_and_concurrent_waiters() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;

        let worker = async {
            // Two deliveries of one id, answered once each.
            for _ in 0..2 {
                let command = next_json(&mut ws).await.expect("command frame");
                assert_eq!(command["id"], "dup-1");
            }
            let error = WireError::new(ErrorCode::NotFound, "no such container");
            for _ in 0..2 {
                let answer = WireResult::from_outcome("dup-1".into(), Err(error.clone()));
                ws.send(frame(Outgoing::Result(answer))).await.unwrap();
            }
        };
        let params = json!({ "containerId": "nope" });
        let first = orchestrator.command_with_id(&id, "dup-1", "container.start", params.clone(), WAIT);
        let second = orchestrator.command_with_id(&id, "dup-1", "container.start", params, WAIT);
        let ((first, second), ()) = zip(zip(first, second), worker).await;
        for answer in [first.expect("first"), second.expect("second")] {
            assert!(!answer.ok);
            assert_eq!(answer.outcome().map_err(|e| e.code), Err(ErrorCode::NotFound));
        }
        orchestrator.stop().await;
    });
}

#[test]
fn unknown_workers_and_silence_are_errors() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (_ws, id) = connect_registered(&orchestrator, "pi-1", None).await;
        let unknown = orchestrator.command("w-404", "container.list", json!({}), WAIT).await;
        assert_eq!(unknown, Err(OrchestratorError::UnknownWorker("w-404".into())));
        let silent = orchestrator.command(&id, "container.list", json!({}), Duration::from_millis(200)).await;
        assert_eq!(silent, Err(OrchestratorError::Timeout));
        orchestrator.stop().await;
    });
}

#[test]
fn raw_frames_reach_the_worker_verbatim() {
    smol::block_on(async {
        let orchestrator = start().await;
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;
        orchestrator.send_text(&id, "{not json".into()).await.expect("send text");
        orchestrator.send_binary(&id, vec![0xff, 0, 1]).await.expect("send binary");
        let big = "x".repeat(2 << 20);
        orchestrator.send_text(&id, big.clone()).await.expect("send 2 MiB");
        let mut got = Vec::new();
        while got.len() < 3 {
            match ws.next().await.expect("open").expect("frame") {
                Message::Ping(_) | Message::Pong(_) => {}
                other => got.push(other),
            }
        }
        assert_eq!(got, vec![Message::text("{not json"), Message::binary(vec![0xff, 0, 1]), Message::text(big)]);
        assert!(matches!(orchestrator.send_text("w-404", "x".into()).await, Err(OrchestratorError::UnknownWorker(_))));
        orchestrator.stop().await;
    });
}
