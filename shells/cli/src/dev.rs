//! `cropscode dev`: a local orchestrator and a worker connected to it, in one
//! process, for a first look and for development.
//!
//! The orchestrator (from `cropscode-orchestrator`) listens on loopback only,
//! with a fresh random worker token that never leaves the process (it is not
//! printed and not put in argv), and a second per-run secret for its HTTP
//! endpoint and console page: printed once, in the console URL's fragment
//! (`http://127.0.0.1:PORT/#key=SECRET`), and offered to a browser through a
//! private redirect file rather than argv. The worker runs on its own thread exactly as
//! `cropscode worker` does, but its configuration is built from a throwaway
//! directory: `HOME`, the data directory and `worker.json` all live under a
//! temporary directory removed at exit, so `dev` never reads or writes the
//! user's real credentials. The orchestrator's events are printed live, one
//! line each, until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use argh::FromArgs;
use cropscode_orchestrator::{Event, Orchestrator, OrchestratorConfig, print_summary};

use crate::Failure;
use crate::config::{self, Env, Flags, Key};
use crate::worker;

/// start a local orchestrator and a worker connected to it, and show what they say
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "dev")]
pub struct DevCommand {
    /// port of the local orchestrator's WebSocket listener (default: any free port)
    #[argh(option, default = "0")]
    pub port: u16,
    /// port of the orchestrator's HTTP JSON endpoint for sending commands
    #[argh(option, default = "7700")]
    pub http_port: u16,
    /// worker name (default: the hostname)
    #[argh(option)]
    pub name: Option<String>,
    /// time between heartbeats, e.g. 10s
    #[argh(option)]
    pub heartbeat_interval: Option<String>,
    /// log filter (default: warn)
    #[argh(option)]
    pub log_level: Option<String>,
    /// text or json
    #[argh(option)]
    pub log_format: Option<String>,
    /// do not open the console in a browser
    #[argh(switch)]
    pub no_open: bool,
}

/// Logs in `dev` are for surprises only: the event lines tell the story.
const DEV_LOG_LEVEL: &str = "warn";

impl DevCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        let scratch = Scratch::new()?;
        let token = random_token();

        let mut flags = Flags::default();
        flags
            .set(Key::WorkerName, self.name.as_ref())
            .set(Key::HeartbeatInterval, self.heartbeat_interval.as_ref())
            .set(Key::LogLevel, self.log_level.as_ref())
            .set(Key::LogFormat, self.log_format.as_ref());
        // Check the flags before binding any port.
        let env = dev_env(&scratch.path, "ws://127.0.0.1:1/worker", &token);
        let probe = config::resolve(&flags, &env)?;
        crate::logging::init(probe.log_format.value, probe.log_level.value.targets.clone());

        let orchestrator = smol::block_on(Orchestrator::start(OrchestratorConfig {
            ws_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            http_addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, self.http_port))),
            tokens: vec![token.clone()],
            // The drop-connections hook lets the browser test prove terminals survive a reconnect.
            test_hooks: true,
            ..OrchestratorConfig::default()
        }))
        .map_err(|e| {
            Failure::Runtime(format!(
                "cannot start the local orchestrator on 127.0.0.1 (ports {} and {}): {e}; try --port / --http-port",
                self.port, self.http_port
            ))
        })?;
        let ws_url = orchestrator.ws_url();
        let http_url = orchestrator.http_url().unwrap_or_default();
        let config = config::resolve(&flags, &dev_env(&scratch.path, &ws_url, &token))?;

        let console_url = orchestrator.console_url().unwrap_or_default();
        println!("cropscode dev — a local orchestrator and a worker, in this process");
        println!();
        println!("  console:  {console_url}");
        println!("            (open it in a browser on this machine; the key after # is this run's secret)");
        println!();
        println!("  orchestrator (WebSocket)  {ws_url}");
        println!("  orchestrator (HTTP)       {http_url}");
        println!("  worker data (temporary)   {}", scratch.path.display());
        println!();
        println!("  the HTTP API wants the key:  export CROPSCODE_DEV_KEY={}", orchestrator.http_secret());
        println!("  list workers:     curl -s -H \"{AUTH}\" {http_url}/workers");
        println!("  send a command:   curl -s -X POST {http_url}/workers/WORKER_ID/commands -H \"{AUTH}\" \\");
        println!("                      -H 'Content-Type: application/json' -d '{{\"type\": \"container.list-all\"}}'");
        println!();
        println!("Press Ctrl-C to stop.");
        println!();
        if !self.no_open {
            offer_browser(&scratch.path, &console_url);
        }

        let shutdown = cropscode_runtime::shutdown_signal()
            .map_err(|e| Failure::Runtime(format!("cannot watch for Ctrl-C: {e}")))?;
        let (stop_worker, worker_stopped) = smol::channel::bounded::<()>(1);
        let worker_thread = std::thread::Builder::new()
            .name("cropscode-worker".into())
            .spawn(move || {
                worker::run_agent(&config, async move {
                    let _ = worker_stopped.recv().await;
                })
            })
            .map_err(|e| Failure::Runtime(format!("cannot start the worker thread: {e}")))?;

        let events = orchestrator.subscribe();
        smol::block_on(futures_lite::future::or(
            async {
                while let Ok(timed) = events.recv().await {
                    if let Some(line) = summary(&timed.event, &http_url) {
                        println!("{line}");
                    }
                }
            },
            shutdown,
        ));

        println!("stopping…");
        let _ = stop_worker.try_send(());
        let outcome =
            worker_thread.join().unwrap_or_else(|_| Err(Failure::Runtime("the worker thread panicked".into())));
        smol::block_on(orchestrator.stop());
        outcome
    }
}

/// The curl header for the HTTP API, reading the key from the environment (not argv).
const AUTH: &str = "Authorization: Bearer $CROPSCODE_DEV_KEY";

/// One line per interesting event. Every text frame is also reported as a
/// `Frame` event; registrations and heartbeats have their own, nicer lines;
/// frames sent to the worker (`Sent`) are left to the console's audit trail.
fn summary(event: &Event, http_url: &str) -> Option<String> {
    if let Event::Sent { .. } = event {
        return None;
    }
    if let Event::Frame { text, .. } = event {
        let kind = serde_json::from_str::<serde_json::Value>(text).ok()?.get("type")?.as_str()?.to_owned();
        if kind == "worker.register" || kind == "worker.heartbeat" {
            return None;
        }
    }
    let mut line = print_summary(event);
    if let Event::Registered { worker_id, .. } = event {
        line.push_str(&format!(
            "\n  try: curl -s -X POST {http_url}/workers/{worker_id}/commands -H \"{AUTH}\" -H 'Content-Type: application/json' -d '{{\"type\": \"container.list-all\"}}'"
        ));
    }
    Some(line)
}

/// Opens the console in a browser when one is at hand: stdout is a terminal, not under CI,
/// and `xdg-open` (or macOS's `open`) is on the PATH. Never waits for it. The URL (with its
/// secret) goes through a redirect file in the private scratch directory, not through argv,
/// where every user of the machine could read it.
fn offer_browser(scratch: &Path, console_url: &str) {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || std::env::var_os("CI").is_some() {
        return;
    }
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(opener).is_file()));
    if !found || cfg!(windows) {
        return;
    }
    let page = scratch.join("console.html");
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta name=referrer content=no-referrer>\
         <meta http-equiv=refresh content=\"0;url={console_url}\"><title>cropscode console</title>"
    );
    if cropscode_runtime::state::write_atomically(&page, html.as_bytes(), 0o600).is_err() {
        return;
    }
    let child = std::process::Command::new(opener)
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        println!("Opening the console in your browser (--no-open not to).");
        println!();
        // Reap it whenever it exits; `dev` never waits for it.
        std::thread::spawn(move || child.wait());
    }
}

/// The environment the dev worker's configuration is resolved from: the
/// user's logging and timing variables, nothing that points at real files.
fn dev_env(scratch: &Path, ws_url: &str, token: &str) -> Env {
    const KEPT: [Key; 15] = [
        Key::LogFormat,
        Key::LogLevel,
        Key::HeartbeatInterval,
        Key::LivenessTimeout,
        Key::RegisterTimeout,
        Key::BackoffMax,
        Key::BackoffJitter,
        Key::SecurityFloor,
        Key::ContainerEngine,
        Key::AllowedBindRoots,
        Key::HostPortRange,
        Key::TerminalIdleTimeout,
        Key::GatewayUrl,
        Key::GatewayProbeInterval,
        Key::GatewayTimeout,
    ];
    let process = Env::from_process();
    let kept: Vec<(&str, String)> = KEPT
        .iter()
        .filter_map(|k| process.get(k.env()).and_then(|v| v.to_str()).map(|v| (k.env(), v.to_owned())))
        .collect();
    let home = scratch.to_string_lossy().into_owned();
    let data = scratch.join("data").to_string_lossy().into_owned();
    let mut pairs: Vec<(&str, &str)> = kept.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if process.get(Key::LogLevel.env()).is_none() {
        pairs.push((Key::LogLevel.env(), DEV_LOG_LEVEL));
    }
    pairs.extend([
        ("HOME", home.as_str()),
        (Key::AgentMode.env(), "byom"),
        (Key::DataDir.env(), data.as_str()),
        (Key::OrchestratorWsUrl.env(), ws_url),
        (Key::WorkerToken.env(), token),
    ]);
    Env::from_pairs(pairs, scratch.join("no-agent.yaml"))
}

/// A private temporary directory, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, Failure> {
        let name = format!("cropscode-dev-{}-{}", std::process::id(), &random_token()[..8]);
        let path = std::env::temp_dir().join(name);
        cropscode_runtime::state::create_private_dir(&path)
            .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", path.display())))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// 256 random bits as hex, from the OS.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_os.is_err() {
        // No /dev/urandom (Windows): std's hasher keys are seeded from the OS's random source.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn dev_configuration_stays_in_the_scratch_directory() {
        let scratch = std::env::temp_dir().join("cropscode-dev-test");
        let config = config::resolve(&Flags::default(), &dev_env(&scratch, "ws://127.0.0.1:5/worker", "t")).unwrap();
        assert_eq!(config.data_dir.value, scratch.join("data"));
        assert_eq!(config.paths.worker_state, scratch.join(".cropscode/worker.json"));
        assert_eq!(config.paths.credentials, Some(scratch.join(".cropscode/credentials.json")));
        assert_eq!(config.token.unwrap().value.expose(), "t");
    }
}
