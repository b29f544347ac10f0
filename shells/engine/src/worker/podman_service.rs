//! A `podman system service` the worker runs itself when Podman is installed but its API
//! socket is not running (a desktop without the systemd socket unit, a fresh BYOM box).
//!
//! The service listens on `<DATA_DIR>/podman.sock` with `--time=0` (never exits when idle)
//! and logs to `<DATA_DIR>/podman-service.log`. A supervisor task restarts it when it dies,
//! after 1 s doubling to 30 s (back to 1 s once it has run for a minute). Stopping the
//! supervisor (worker shutdown, or dropping the last `WorkerEngine`) kills the child
//! (`kill_on_drop`). On Linux the child also gets SIGKILL when the worker dies without
//! cleaning up (`PR_SET_PDEATHSIG`), so a killed worker leaves no service behind; on
//! macOS such a service keeps running, and the next worker finds it answering on the same
//! socket and uses it instead of starting another.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cropscode_core::backoff::BackoffConfig;
use cropscode_engine_api::{Endpoint, EngineClient};

/// How long the first start may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Delays between restarts: 1 s doubling to 30 s, exact.
const RESTART_BACKOFF: BackoffConfig = BackoffConfig::new().with_jitter(0.0);
/// A service that ran this long before dying is restarted after the shortest delay again.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The supervised service; killed when dropped or stopped.
pub(crate) struct PodmanService {
    supervisor: smol::Task<()>,
    pid: Arc<AtomicU32>,
}

impl PodmanService {
    /// Starts the service on `socket` and waits until it answers.
    pub(crate) async fn start(binary: &Path, socket: &Path, data_dir: &Path) -> Result<PodmanService, String> {
        if cfg!(windows) {
            return Err("a Podman service is started by the worker on Linux and macOS only".into());
        }
        std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let log = data_dir.join("podman-service.log");
        let pid = Arc::new(AtomicU32::new(0));
        let supervisor = smol::spawn(supervise(binary.to_owned(), socket.to_owned(), log.clone(), pid.clone()));
        let service = PodmanService { supervisor, pid };
        let client = EngineClient::new(Endpoint::Unix(socket.to_owned()));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if client.ping().await.is_ok() {
                return Ok(service);
            }
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the Podman service started on {} did not answer within {} s; see {}",
            socket.display(),
            READY_TIMEOUT.as_secs(),
            log.display()
        ))
    }

    /// The process id of the running service (0 between a death and the restart).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Kills the service and waits for the supervisor to end.
    pub(crate) async fn stop(self) {
        self.supervisor.cancel().await;
    }
}

/// The command, set up to die with the worker on Linux.
fn service_command(binary: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    // A set CONTAINER_HOST (even empty, which the worker reads as unset) turns podman into a
    // remote client, whose `system service` refuses the socket argument.
    command.env_remove("CONTAINER_HOST");
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec and only makes two
        // async-signal-safe system calls (prctl, getppid); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
                // The worker may have died between fork and prctl.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other("the worker exited"));
                }
                Ok(())
            });
        }
    }
    command
}

async fn supervise(binary: PathBuf, socket: PathBuf, log: PathBuf, pid: Arc<AtomicU32>) {
    let mut restarts = RESTART_BACKOFF.build();
    let mut first = true;
    loop {
        // A socket file left by a killed service would make the new one fail to bind.
        let _ = std::fs::remove_file(&socket);
        let stderr = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!first)
            .truncate(first)
            .open(&log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        first = false;
        let started = Instant::now();
        let spawned = smol::process::Command::from(service_command(&binary))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn();
        let delay = match spawned {
            Ok(mut child) => {
                tracing::info!(pid = child.id(), socket = %socket.display(), "started podman system service");
                pid.store(child.id(), Ordering::Relaxed);
                let status = child.status().await;
                pid.store(0, Ordering::Relaxed);
                if started.elapsed() >= STABLE_AFTER {
                    restarts.reset();
                }
                let delay = restarts.next_delay();
                tracing::warn!(
                    status = ?status, log = %log.display(),
                    "podman system service exited; restarting in {} s", delay.as_secs()
                );
                delay
            }
            Err(error) => {
                let delay = restarts.next_delay();
                tracing::warn!(binary = %binary.display(), %error, "cannot start podman system service; retrying in {} s", delay.as_secs());
                delay
            }
        };
        smol::Timer::after(delay).await;
    }
}
