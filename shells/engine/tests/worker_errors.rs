//! Answers that need no container: the stream commands sent as plain engine calls are
//! refused (core's stream registry answers them), background execs without a data
//! directory are `engine_unavailable`, and a worker whose engine does not answer at all
//! answers every command `engine_unavailable`.

mod common;

use cropscode_core::Step;
use cropscode_core::protocol::{Command, ErrorCode, WireError};
use cropscode_core::traits::Engine;
use cropscode_engine::{Endpoint, WorkerEngine};
use futures_lite::StreamExt;
use serde_json::{Value, json};

async fn outcome(worker: &WorkerEngine, name: &str, params: Value) -> Result<Value, WireError> {
    let command = Command::decode(name, params).expect("valid command");
    let steps: Vec<Step> = worker.execute(command).collect().await;
    match steps.as_slice() {
        [Step::Done(outcome)] => outcome.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

fn issue_4_commands() -> Vec<(&'static str, Value)> {
    vec![
        ("container.exec.background", json!({"containerId": "c", "command": ["true"]})),
        ("container.exec.background.kill", json!({"execId": "x-1"})),
        ("container.exec.background.capture", json!({"execId": "x-1"})),
        ("terminal.open", json!({"containerId": "c"})),
        ("terminal.input", json!({"sessionId": "t-1", "data": "ls\r"})),
        ("terminal.resize", json!({"sessionId": "t-1", "cols": 80, "rows": 24})),
        ("terminal.close", json!({"sessionId": "t-1"})),
        ("display.open", json!({"containerId": "c"})),
        ("display.close", json!({"sessionId": "d-1"})),
    ]
}

/// The stream commands are not one-shot engine calls: the worker's stream registry
/// (core) answers them, and the engine only serves the streams it opens. Called as plain
/// commands they are refused clearly; background execs need the data directory's spool.
#[test]
fn stream_commands_are_not_plain_engine_calls() {
    smol::block_on(async {
        let worker =
            WorkerEngine::with_endpoint(Endpoint::Unix(common::socket(common::Which::Docker).into()), "w-x").await;
        for (name, params) in issue_4_commands() {
            let error = outcome(&worker, name, params).await.expect_err(name);
            match name {
                n if n.starts_with("container.exec.background") => {
                    assert_eq!(error.code, ErrorCode::EngineUnavailable, "{name}: {}", error.message);
                    assert!(error.message.contains("DATA_DIR"), "{name}: {}", error.message);
                }
                "terminal.resize" => assert_eq!(error.code, ErrorCode::NotFound, "{name}: {}", error.message),
                _ => {
                    assert_eq!(error.code, ErrorCode::Internal, "{name}: {}", error.message);
                    assert!(error.message.contains("stream registry"), "{name}: {}", error.message);
                }
            }
        }
    });
}

#[test]
fn without_an_engine_every_command_is_engine_unavailable() {
    smol::block_on(async {
        let nowhere = Endpoint::Unix("/run/cropscode-test/no-such-engine.sock".into());
        let worker = WorkerEngine::with_endpoint(nowhere, "w-x").await;
        assert!(worker.engines().is_empty());
        assert_eq!(worker.serving().await, None);
        for (name, params) in [
            ("container.create", json!({"image": "busybox", "tenant": "acme"})),
            ("container.start", json!({"containerId": "c"})),
            ("container.list", json!({"tenant": "acme"})),
            ("container.list-all", json!({})),
            ("container.exec", json!({"containerId": "c", "command": ["true"]})),
            ("container.setup", json!({"containerId": "c", "files": [{"path": "/x", "content": "x"}]})),
            ("images.list", json!({})),
            ("image.check", json!({"image": "busybox"})),
            ("image.delete", json!({"image": "busybox"})),
            ("image.build", json!({"tag": "t", "dockerfile": "FROM scratch\n"})),
        ] {
            let error = outcome(&worker, name, params).await.expect_err(name);
            assert_eq!(error.code, ErrorCode::EngineUnavailable, "{name}: {error:?}");
        }
    });
}
