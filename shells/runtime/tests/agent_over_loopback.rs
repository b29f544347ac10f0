//! An [`Agent`] end to end over a loopback socket: it registers with the
//! system's figures, sends heartbeats, routes a command to the engine and
//! answers it, and on shutdown closes with 1000 and returns.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use cropscode_core::protocol::{Command, ErrorCode, Limits, PROTOCOL_VERSION, WireError};
use cropscode_core::{Engine, Event, Secret, SessionConfig, Step};
use cropscode_runtime::Agent;
use futures_lite::StreamExt;
use serde_json::{Value, json};

struct NoEngine;

impl Engine for NoEngine {
    type Execution<'a> = futures_lite::stream::Once<Step>;

    fn execute(&self, _command: Command) -> Self::Execution<'_> {
        futures_lite::stream::once(Step::Done(Err(WireError::new(
            ErrorCode::EngineUnavailable,
            "no engine in this test",
        ))))
    }

    fn containers_running(&self) -> Option<u32> {
        Some(2)
    }
}

/// The next text frame as JSON, skipping pings and pongs.
async fn next_json<S>(ws: &mut async_tungstenite::WebSocketStream<S>) -> Value
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[test]
fn the_worker_registers_beats_answers_and_closes_on_shutdown() {
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let events = Arc::new(Mutex::new(Vec::new()));

    let server = smol::block_on(support::listen());
    let (listener, port) = server;
    let session = SessionConfig { heartbeat_interval: Duration::from_millis(100), ..SessionConfig::default() };
    let seen = events.clone();
    let agent = Agent::builder(
        format!("ws://127.0.0.1:{port}/worker"),
        Secret::new("tok-run"),
        support::temp_dir().join("data"),
    )
    .name("test-worker")
    .session(session)
    .on_event(move |event: &Event| seen.lock().unwrap().push(format!("{event:?}")))
    .build(NoEngine)
    .expect("build");

    let worker = std::thread::spawn(move || {
        agent.run(async move {
            let _ = stop_rx.recv().await;
        })
    });

    smol::block_on(async {
        let (ws, upgrade) = support::accept_plain(&listener, None).await;
        let mut ws = ws.expect("upgrade");
        assert_eq!(upgrade.header("authorization"), Some("Bearer tok-run"));

        let hello = next_json(&mut ws).await;
        assert_eq!(hello["type"], "worker.register");
        assert_eq!(hello["name"], "test-worker");
        assert_eq!(hello["protocolVersion"], PROTOCOL_VERSION);
        assert!(hello["cpuCount"].as_u64().unwrap() >= 1);
        assert_eq!(hello["limits"]["maxJsonDepth"], Limits::DEFAULT.max_json_depth);
        ws.send(Message::text(json!({"type": "worker.registered", "workerId": "w-7"}).to_string())).await.unwrap();

        let beat = next_json(&mut ws).await;
        assert_eq!(beat["type"], "worker.heartbeat", "{beat}");
        let cpu = beat["cpuUsage"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu));
        assert!(beat["memoryFree"].as_u64().unwrap() > 0);
        assert_eq!(beat["containersRunning"], 2);

        let command = json!({"type": "images.list", "id": "c-1", "params": {}});
        ws.send(Message::text(command.to_string())).await.unwrap();
        let result = loop {
            let frame = next_json(&mut ws).await;
            if frame["type"] == "result" {
                break frame;
            }
        };
        assert_eq!(result["id"], "c-1");
        assert_eq!(result["ok"], false);
        assert_eq!(result["error"]["code"], "engine_unavailable");

        stop_tx.send(()).await.unwrap();
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(close))) => break close,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(close.map(|c| u16::from(c.code)), Some(1000));
    });

    worker.join().expect("worker thread");
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| e.contains("Registered") && e.contains("w-7")), "{events:?}");
    assert!(!events.iter().any(|e| e.contains("tok-run")), "{events:?}");
}

#[test]
fn an_insecure_url_fails_at_startup() {
    let error =
        Agent::builder("ws://example.com/worker", Secret::new("t"), support::temp_dir()).build(NoEngine).unwrap_err();
    assert!(error.to_string().contains("example.com"), "{error}");
}
