//! Harness for the integration tests in `tests/tests/`: the real `cropscode`
//! binary as a child process, the local orchestrator in-process on loopback,
//! and a throwaway certificate authority for TLS.
//!
//! Every test gets its own `HOME` and data directory, so tests run in
//! parallel and never touch the user's real configuration.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use cropscode_orchestrator as orchestrator;

mod engines;
pub use engines::*;

/// The worker token the tests' orchestrators accept. Long and distinctive, so
/// a search of the logs for it cannot miss a leak.
pub const TEST_TOKEN: &str = "tok_TEST_s3cr3t_9f8e7d6c5b4a";

/// Path of the `cropscode` binary, built (once per test process) from this workspace.
/// `CROPSCODE_BIN` overrides it: cross/test.sh points it at an ARM build run under qemu.
pub fn cropscode_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CROPSCODE_BIN") {
            return PathBuf::from(bin);
        }
        cargo_build_cropscode("debug")
    })
}

/// Path of the optimized `cropscode` binary (`cargo build --release`), built once per
/// process: for measurements (the benchmark), where a debug worker would skew the figures.
pub fn cropscode_release_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cargo_build_cropscode("release"))
}

/// `cargo build [--release] -p cropscode` in this workspace; the path of the binary.
fn cargo_build_cropscode(profile: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "cropscode", "--bin", "cropscode"]).current_dir(workspace_root());
    if profile == "release" {
        cmd.arg("--release");
    }
    // Cargo gives a running test its own package's variables (CARGO_MANIFEST_DIR, …); a
    // build script that watches one (ring's) would see a change and rebuild half the
    // workspace (~45 s), and the next plain `cargo build` would rebuild it back.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status().expect("running cargo build for the cropscode binary");
    assert!(status.success(), "cargo build -p cropscode ({profile}) failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join(profile).join("cropscode");
    assert!(bin.exists(), "no binary at {}", bin.display());
    bin
}

/// The architecture the worker under test reports (`std::env::consts::ARCH` of its build): this
/// test process's own, or `CROPSCODE_BIN_ARCH` when `CROPSCODE_BIN` is a cross build (cross/test.sh).
pub fn worker_arch() -> String {
    std::env::var("CROPSCODE_BIN_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_string())
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("cropscode-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway CA and a server certificate for `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA certificate (what the worker trusts via `ORCHESTRATOR_CA_FILE`).
    pub ca_pem: String,
    /// The server certificate chain.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl TestCa {
    /// Generates a fresh CA and server certificate.
    pub fn new() -> TestCa {
        TestCa::with_server(&["localhost", "127.0.0.1"], None)
    }

    /// A fresh CA and a server certificate for `names` only; with `expired`, one whose
    /// validity ended on that date (`(year, month, day)`, e.g. `(2021, 1, 1)`).
    pub fn with_server(names: &[&str], expired: Option<(i32, u8, u8)>) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cropscode test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca cert");
        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("server params");
        if let Some((year, month, day)) = expired {
            server_params.not_before = rcgen::date_time_ymd(year - 1, month, day);
            server_params.not_after = rcgen::date_time_ymd(year, month, day);
        }
        let server = server_params.signed_by(&server_key, &ca).expect("server cert");
        TestCa { ca_pem: ca.pem(), cert_pem: server.pem(), key_pem: server_key.serialize_pem() }
    }

    /// Writes the CA certificate to `dir/ca.pem` and returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
        path
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// What to start a worker with.
pub struct WorkerSpec {
    /// `ORCHESTRATOR_WS_URL`.
    pub url: String,
    /// `WORKER_TOKEN` (passed through the environment, never argv).
    pub token: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Arguments after `cropscode` (default `["worker"]`).
    pub args: Vec<String>,
    /// Run with this HOME instead of a fresh one (to restart a worker on its own state).
    pub home: Option<PathBuf>,
    /// Seed `~/.cropscode/worker.json` with this id before starting, so the worker
    /// registers under it (the local orchestrator adopts an announced id).
    pub worker_id: Option<String>,
    /// Run this binary instead of [`cropscode_bin`] (e.g. [`cropscode_release_bin`]).
    pub bin: Option<PathBuf>,
}

impl WorkerSpec {
    /// A worker for `url` with the test token and fast, exact timings suited to tests
    /// (no jitter; a short liveness deadline is set by the tests that need one).
    pub fn new(url: impl Into<String>) -> WorkerSpec {
        WorkerSpec {
            url: url.into(),
            token: TEST_TOKEN.to_string(),
            env: vec![
                ("BACKOFF_JITTER".into(), "0".into()),
                // Off Podman's supervised service unless a test binds an engine
                // (`WorkerSpec::engine`): with Podman installed and no socket of its own
                // answering, a worker would start one per test, ~2 s before it connects.
                ("PODMAN_PATH".into(), "/nonexistent/podman".into()),
            ],
            args: vec!["worker".into()],
            home: None,
            worker_id: None,
            bin: None,
        }
    }

    /// Reuses an existing HOME (and the data dir inside it).
    pub fn home(mut self, home: &Path) -> WorkerSpec {
        self.home = Some(home.to_path_buf());
        self
    }

    /// Replaces the arguments after `cropscode`.
    pub fn args(mut self, args: &[&str]) -> WorkerSpec {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> WorkerSpec {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Registers under `id` (seeded into `worker.json`): tests that share an engine give
    /// every worker its own id, so one worker's containers are never another's.
    pub fn worker_id(mut self, id: &str) -> WorkerSpec {
        self.worker_id = Some(id.to_string());
        self
    }

    /// Runs `bin` instead of the debug build.
    pub fn bin(mut self, bin: &Path) -> WorkerSpec {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// Replaces the token.
    pub fn token(mut self, token: &str) -> WorkerSpec {
        self.token = token.to_string();
        self
    }

    /// Starts the worker.
    pub fn spawn(self) -> WorkerProcess {
        WorkerProcess::spawn(self)
    }
}

/// A running `cropscode` child process with its own HOME, data dir and log file.
pub struct WorkerProcess {
    child: Option<Child>,
    home: PathBuf,
    _owned_home: Option<TempDir>,
    log_path: PathBuf,
    token: String,
}

impl WorkerProcess {
    fn spawn(spec: WorkerSpec) -> WorkerProcess {
        let owned = if spec.home.is_none() { Some(TempDir::new("home")) } else { None };
        let home =
            spec.home.clone().unwrap_or_else(|| owned.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_default());
        let data_dir = home.join("data");
        if let Some(id) = &spec.worker_id {
            let dir = home.join(".cropscode");
            std::fs::create_dir_all(&dir).expect("create ~/.cropscode");
            let state = serde_json::json!({ "workerId": id, "name": "cropscode-test", "registeredAt": 0 });
            std::fs::write(dir.join("worker.json"), state.to_string()).expect("seed worker.json");
        }
        static RUN: AtomicU32 = AtomicU32::new(0);
        let log_path = home.join(format!("worker-{}.log", RUN.fetch_add(1, Ordering::Relaxed)));
        let log = std::fs::File::create(&log_path).expect("create log file");
        let mut cmd = Command::new(spec.bin.as_deref().unwrap_or_else(|| cropscode_bin()));
        cmd.args(&spec.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("DATA_DIR", &data_dir)
            .env("ORCHESTRATOR_WS_URL", &spec.url)
            .env("WORKER_TOKEN", &spec.token)
            .env("LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn cropscode");
        WorkerProcess { child: Some(child), home, _owned_home: owned, log_path, token: spec.token }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The worker's HOME directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Everything the worker has logged so far (stdout and stderr).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the logs contain `needle`; false on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.logs().contains(needle)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the worker to stop (SIGTERM) and waits for it; kills it after 10 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let status = self.wait_exit(Duration::from_secs(10));
        if status.is_none()
            && let Some(child) = self.child.as_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
        status
    }

    /// Panics if the token appears anywhere in the worker's logs or files other than credentials.json.
    pub fn assert_token_absent(&self) {
        let logs = self.logs();
        assert!(!logs.contains(&self.token), "the token leaked into the worker's logs:\n{logs}");
        for entry in walk(&self.home) {
            if entry.file_name().is_some_and(|n| n == "credentials.json") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&entry) {
                assert!(!text.contains(&self.token), "the token leaked into {}", entry.display());
            }
        }
    }
}

impl WorkerProcess {
    /// Panics if `secret` (a git credential, an API key) appears in the worker's logs or
    /// in any file under its HOME (the data dir included).
    pub fn assert_secret_absent(&self, secret: &str) {
        let logs = self.logs();
        assert!(!logs.contains(secret), "a secret leaked into the worker's logs:\n{logs}");
        for entry in walk(&self.home) {
            if let Ok(bytes) = std::fs::read(&entry) {
                let leaked = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!leaked, "a secret leaked into {}", entry.display());
            }
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- worker log ----\n{}\n---- end of worker log ----", self.logs());
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs a future to completion on smol's executor.
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future)
}

/// Starts a plain `ws://` orchestrator on a free loopback port accepting [`TEST_TOKEN`].
pub fn start_orchestrator() -> orchestrator::Orchestrator {
    block_on(orchestrator::Orchestrator::start(orchestrator::OrchestratorConfig::with_token(TEST_TOKEN)))
        .expect("start the local orchestrator")
}

/// A registration the orchestrator saw.
pub struct Registration {
    /// The orchestrator's id for the worker.
    pub worker_id: String,
    /// The connection it registered on.
    pub connection: u64,
    /// When it arrived.
    pub at: Instant,
    /// The `worker.register` frame.
    pub register: cropscode_core::protocol::Register,
}

/// Waits for a registration on a connection other than `not_on` (any, when `None`).
pub fn wait_registered(
    orchestrator: &orchestrator::Orchestrator,
    not_on: Option<u64>,
    timeout: Duration,
) -> Option<Registration> {
    let found = block_on(orchestrator.wait_for(
        |e| matches!(e, orchestrator::Event::Registered { connection, .. } if Some(*connection) != not_on),
        timeout,
    ))?;
    match found.event {
        orchestrator::Event::Registered { connection, worker_id, register } => {
            Some(Registration { worker_id, connection, at: found.at, register })
        }
        _ => None,
    }
}

/// The times at which the orchestrator saw upgrade requests, oldest first.
pub fn upgrade_times(orchestrator: &orchestrator::Orchestrator) -> Vec<(Instant, bool)> {
    orchestrator
        .events()
        .into_iter()
        .filter_map(|t| match t.event {
            orchestrator::Event::Upgrade { authorized, .. } => Some((t.at, authorized)),
            _ => None,
        })
        .collect()
}

/// Asserts that no upgrade request ever carried a token in its URL.
pub fn assert_no_token_in_url(orchestrator: &orchestrator::Orchestrator) {
    for t in orchestrator.events() {
        if let orchestrator::Event::Upgrade { token_in_url, .. } = t.event {
            assert!(!token_in_url, "a token appeared in an upgrade URL");
        }
    }
}

/// Waits for the orchestrator's first upgrade request; returns when it arrived.
pub fn wait_first_upgrade(orchestrator: &orchestrator::Orchestrator, timeout: Duration) -> Option<Instant> {
    let found = block_on(orchestrator.wait_for(|e| matches!(e, orchestrator::Event::Upgrade { .. }), timeout))?;
    Some(found.at)
}

impl WorkerProcess {
    /// The address the worker's health listener bound (`HEALTH_ADDR=127.0.0.1:0` picks a
    /// free port; the worker logs the one it got).
    pub fn health_addr(&self, timeout: Duration) -> std::net::SocketAddr {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            let found = logs.lines().filter(|l| l.contains("health listener")).find_map(|line| {
                let at = line.find("addr=")? + "addr=".len();
                line[at..].split_whitespace().next()?.parse().ok()
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "no health listener in the worker's logs:\n{logs}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `GET path` on `addr` (HTTP/1.1, one request per connection): the status and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    let status = reply.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Polls `GET path` until its status is `status`; the body, or a panic after `within`.
pub fn wait_http_status(addr: std::net::SocketAddr, path: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = http_get(addr, path);
        if got == status {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} still answers {got} after {within:?}, not {status}: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
