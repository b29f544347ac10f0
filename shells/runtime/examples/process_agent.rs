//! A custom agent whose "containers" are local processes, on the real
//! WebSocket shell through [`Agent::builder`].
//!
//! ```sh
//! # CI: a local orchestrator in this process, one `echo hello`, exit 0 if it came back right
//! cargo run -p cropscode-runtime --example process_agent
//! # a real orchestrator (the token from the environment, never argv)
//! WORKER_TOKEN=… cargo run -p cropscode-runtime --example process_agent -- --url wss://orchestrator.example/worker
//! ```
//!
//! The [`Engine`] serves one pseudo container, `local`: `container.list`
//! shows it and `container.exec` in it spawns the argument vector as a local
//! process (never through a shell), with the request's timeout and output
//! cap. Everything else is `not_found`. The builder adds the rest: TLS and
//! the token header, the security floor in front of the engine (a
//! `privileged` exec is refused before it gets here), `worker.json`, the audit
//! log, heartbeats with the machine's figures, reconnects with backoff.

use std::future::{Future, ready};
use std::pin::Pin;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use cropscode_core::dispatch::{OnceStep, once};
use cropscode_core::protocol::commands::{
    ContainerExec, ContainerExecResult, ContainerListResult, ContainerState, ContainerSummary, Encoding,
};
use cropscode_core::protocol::{Command, ErrorCode, WireError};
use cropscode_core::{Engine, Secret};
use cropscode_orchestrator::{Event, Orchestrator, OrchestratorConfig};
use cropscode_runtime::Agent;
use serde_json::{Value, json};

/// The one pseudo container.
const CONTAINER: &str = "local";
/// The self-test gives up after this long, whatever hangs.
const DEADLINE: Duration = Duration::from_secs(60);

type Outcome<'a> = Pin<Box<dyn Future<Output = Result<Value, WireError>> + Send + 'a>>;

/// Runs `container.exec` as local processes.
struct ProcessEngine;

impl Engine for ProcessEngine {
    type Execution<'a> = OnceStep<Outcome<'a>>;

    fn execute(&self, command: Command) -> Self::Execution<'_> {
        let outcome: Outcome<'_> = match command {
            Command::ContainerList(_) => Box::pin(ready(to_value(ContainerListResult { containers: vec![local()] }))),
            Command::ContainerExec(exec) if exec.container_id == CONTAINER => Box::pin(run(exec)),
            other => Box::pin(ready(Err(WireError::new(
                ErrorCode::NotFound,
                format!("`{}`: this agent has only the container `{CONTAINER}`", other.name()),
            )))),
        };
        once(outcome)
    }
}

fn local() -> ContainerSummary {
    ContainerSummary {
        container_id: CONTAINER.into(),
        name: CONTAINER.into(),
        image: "host".into(),
        tenant: None,
        state: ContainerState::Running,
        status: "the machine itself".into(),
        created_at: 0,
        labels: Default::default(),
        ports: Vec::new(),
    }
}

/// Spawns `exec.command` (already validated by the core: a non-empty argv)
/// and waits for it, killing it at the timeout.
async fn run(exec: ContainerExec) -> Result<Value, WireError> {
    let invalid = |what: &str| Err(WireError::new(ErrorCode::InvalidRequest, format!("{what}: not served here")));
    if exec.user.is_some() || exec.stdin.is_some() || exec.output_encoding != Encoding::Utf8 {
        return invalid("`user`, `stdin` and non-UTF-8 output");
    }
    let mut process = smol::process::Command::new(&exec.command[0]);
    process.args(&exec.command[1..]).envs(&exec.env.0).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(dir) = &exec.working_dir {
        process.current_dir(dir);
    }
    let started = Instant::now();
    let timeout = Duration::from_millis(exec.timeout_ms());
    let output = futures_lite::future::or(async { Some(process.output().await) }, async {
        smol::Timer::after(timeout).await;
        None // dropping the output future kills the process (kill_on_drop)
    })
    .await;
    let output = match output {
        None => return Err(WireError::new(ErrorCode::Timeout, format!("killed after {} ms", timeout.as_millis()))),
        Some(Err(error)) => return Err(WireError::new(ErrorCode::NotFound, format!("cannot run: {error}"))),
        Some(Ok(output)) => output,
    };
    let cap = exec.max_output_bytes.unwrap_or(1 << 20) as usize;
    let truncated = output.stdout.len() > cap || output.stderr.len() > cap;
    let text = |bytes: &[u8]| String::from_utf8_lossy(&bytes[..bytes.len().min(cap)]).into_owned();
    to_value(ContainerExecResult {
        exit_code: output.status.code().unwrap_or(-1),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
        encoding: Encoding::Utf8,
        truncated,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn to_value(result: impl serde::Serialize) -> Result<Value, WireError> {
    serde_json::to_value(result).map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let url = flag("--url").or_else(|| std::env::var("ORCHESTRATOR_WS_URL").ok().filter(|u| !u.is_empty()));
    let outcome = match url {
        Some(url) => serve(url, flag("--data-dir")),
        None => self_test(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("process_agent: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves a real orchestrator until Ctrl-C.
fn serve(url: String, data_dir: Option<String>) -> Result<(), String> {
    let token = std::env::var("WORKER_TOKEN").map_err(|_| "set WORKER_TOKEN (never passed as an argument)")?;
    let data_dir = data_dir.map_or_else(|| std::env::temp_dir().join("cropscode-process-agent"), Into::into);
    let agent = Agent::builder(url, Secret::new(token), data_dir)
        .on_event(|event| eprintln!("{event:?}"))
        .build(ProcessEngine)
        .map_err(|e| e.to_string())?;
    agent.run(cropscode_runtime::shutdown_signal().map_err(|e| e.to_string())?);
    Ok(())
}

/// The CI run: the local orchestrator on loopback registers this agent and
/// sends one `echo hello`, whose result must come back as the process wrote it.
fn self_test() -> Result<(), String> {
    std::thread::spawn(|| {
        std::thread::sleep(DEADLINE);
        eprintln!("process_agent: no result within {DEADLINE:?}");
        std::process::exit(1);
    });
    let token = random_token();
    let orchestrator = smol::block_on(Orchestrator::start(OrchestratorConfig::with_token(token.clone())))
        .map_err(|e| format!("cannot start the local orchestrator: {e}"))?;
    let data_dir = std::env::temp_dir().join(format!("cropscode-process-agent-{}", std::process::id()));
    let agent = Agent::builder(orchestrator.ws_url(), Secret::new(token), &data_dir)
        .name("process-agent")
        .build(ProcessEngine)
        .map_err(|e| e.to_string())?;
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let worker = std::thread::spawn(move || {
        agent.run(async move {
            let _ = stopped.recv().await;
        })
    });

    let outcome = smol::block_on(async {
        let wait = Duration::from_secs(20);
        let registered = orchestrator.wait_for(|e| matches!(e, Event::Registered { .. }), wait).await;
        let Some(Event::Registered { worker_id, .. }) = registered.map(|t| t.event) else {
            return Err("the agent did not register".to_owned());
        };
        println!("registered as {worker_id}");
        let params = json!({"containerId": CONTAINER, "command": ["echo", "hello"], "timeoutMs": 10_000});
        let result =
            orchestrator.command(&worker_id, "container.exec", params, wait).await.map_err(|e| e.to_string())?;
        let value = result.outcome().map_err(|e| format!("container.exec failed: {e}"))?.clone();
        println!("container.exec echo hello → {value}");
        match (value["exitCode"].as_i64(), value["stdout"].as_str()) {
            (Some(0), Some("hello\n")) => Ok(()),
            _ => Err(format!("unexpected result {value}")),
        }
    });
    let _ = stop.try_send(());
    let _ = worker.join();
    smol::block_on(orchestrator.stop());
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome
}

/// 128 bits from std's randomly keyed hasher: enough for a token that never leaves this process.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", word(), word())
}
