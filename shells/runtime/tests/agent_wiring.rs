//! What [`Agent`] wires so that no caller has to, against the local
//! orchestrator over a real loopback WebSocket: a custom engine is told the
//! orchestrator's worker id (`Engine::registered`), `worker.json` is written
//! with it and announced by the next agent, every command reaches the audit
//! log, and heartbeats carry the engine's running-container count.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cropscode_core::protocol::Command;
use cropscode_core::{Engine, Secret, SessionConfig, Step};
use cropscode_orchestrator::{Event, Orchestrator, OrchestratorConfig};
use cropscode_runtime::{Agent, read_worker_state};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// Answers every command with `[]`, remembers the ids it was registered
/// under, and claims five running containers.
#[derive(Clone, Default)]
struct CountingEngine {
    registered: Arc<Mutex<Vec<String>>>,
}

impl Engine for CountingEngine {
    type Execution<'a> = futures_lite::stream::Once<Step>;

    fn execute(&self, _command: Command) -> Self::Execution<'_> {
        futures_lite::stream::once(Step::Done(Ok(json!([]))))
    }

    fn registered(&self, worker_id: &str) {
        self.registered.lock().unwrap().push(worker_id.to_owned());
    }

    fn containers_running(&self) -> Option<u32> {
        Some(5)
    }
}

#[test]
fn the_builder_wires_registration_state_audit_and_the_engines_count() {
    let orchestrator = smol::block_on(Orchestrator::start(OrchestratorConfig::with_token("tok-wiring"))).unwrap();
    let data_dir = support::temp_dir().join("data");
    let engine = CountingEngine::default();
    let session = SessionConfig { heartbeat_interval: Duration::from_millis(100), ..SessionConfig::default() };
    let agent = Agent::builder(orchestrator.ws_url(), Secret::new("tok-wiring"), &data_dir)
        .name("wired")
        .session(session.clone())
        .build(engine.clone())
        .expect("build");
    assert_eq!(agent.register().worker_id, None, "nothing stored yet");
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let worker = std::thread::spawn(move || {
        agent.run(async move {
            let _ = stop_rx.recv().await;
        })
    });

    let registered = smol::block_on(orchestrator.wait_for(|e| matches!(e, Event::Registered { .. }), WAIT));
    let Some(Event::Registered { worker_id, register, .. }) = registered.map(|t| t.event) else {
        panic!("no registration: {:?}", orchestrator.events())
    };
    assert_eq!(register.name, "wired");
    let beat = smol::block_on(orchestrator.wait_for(|e| matches!(e, Event::Heartbeat { .. }), WAIT));
    let Some(Event::Heartbeat { heartbeat, .. }) = beat.map(|t| t.event) else { panic!("no heartbeat") };
    assert_eq!(heartbeat.containers_running, 5, "the engine's count, not the probe's");
    // Registered before any command of the registration: by now the engine knows.
    assert_eq!(*engine.registered.lock().unwrap(), std::slice::from_ref(&worker_id));
    let state = read_worker_state(&data_dir.join("worker.json")).unwrap().expect("worker.json");
    assert_eq!((state.worker_id.as_str(), state.name.as_str()), (worker_id.as_str(), "wired"));

    let result =
        smol::block_on(orchestrator.command(&worker_id, "container.list", json!({"tenant": "acme"}), WAIT)).unwrap();
    assert_eq!(result.outcome(), Ok(&json!([])));
    smol::block_on(stop_tx.send(())).unwrap();
    worker.join().expect("worker thread");
    let audit = std::fs::read_to_string(data_dir.join("audit").join("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"command\":\"container.list\"") && audit.contains("\"outcome\":\"ok\""), "{audit}");

    // The next agent on this data directory announces the stored id.
    let again = Agent::builder(orchestrator.ws_url(), Secret::new("tok-wiring"), &data_dir)
        .session(session)
        .build(CountingEngine::default())
        .expect("build");
    assert_eq!(again.register().worker_id.as_deref(), Some(worker_id.as_str()));
    smol::block_on(orchestrator.stop());
}
