//! `cropscode service install | uninstall | start | stop | status`: the worker as
//! the system's service, one command after `cropscode login` (or after writing
//! `agent.yaml`).
//!
//! ```text
//! flags + environment ──resolve──► Config ──► ServiceSpec ──► ServicePlan ──► --dry-run: printed
//!                                   (mode,      (exe, the       (files with      --root DIR: files
//!                                   data dir,    worker's        their mode,      under DIR, nothing
//!                                   token's      flags, the      commands,        run
//!                                   source)      system)         SCM calls)       else: applied, undone
//!                                                                                 on the first failure
//! ```
//!
//! The mode decides the flavour: fleet is system-wide (a systemd system unit, a
//! launchd daemon, a Windows service as LocalSystem), BYOM is the user's own (a
//! systemd user unit, a launchd agent; on Windows the service reads that user's
//! `~/.cropscode`). [`ServicePlan`] is pure: [`systemd`], [`launchd`] and
//! [`windows`] build it from a [`ServiceSpec`] without touching the system, so
//! `--dry-run` and the tests see exactly what `install` does. `--system` builds
//! another system's plan (with `--dry-run` or `--root` only).
//!
//! What the service runs is this binary (`current_exe`) with `worker` and the
//! configuration pinned: `--mode`, `--config`, `--data-dir`, and every value that
//! came from a flag or the environment (a service does not see the installing
//! shell's environment). Values from files stay in the files, which the worker
//! reads at each start. No secret goes into a unit, a plist or a service's
//! arguments: install refuses when the token comes only from `WORKER_TOKEN`.
//!
//! Install checks that it can write every target directory before it writes
//! anything (a fleet install needs root), writes each file to a temporary name
//! and renames it, and undoes what it did when a later step fails. Uninstall
//! stops and unregisters the service and removes its file and the directories
//! install created for it; `DATA_DIR` (worker.json, the audit log, logs) is kept.

pub mod launchd;
#[cfg_attr(not(windows), allow(dead_code))]
pub mod log_file;
mod plan;
pub mod systemd;
pub mod windows;
#[cfg(windows)]
mod windows_scm;

use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use cropscode_core::protocol::Mode;

use crate::Failure;
use crate::config::{self, Config, Env, Key, Source};
use crate::flags::config_flags;

pub use plan::{ServicePlan, Step};

/// The service's name everywhere: the systemd unit `cropscode.service`, the Windows service `cropscode`.
pub const NAME: &str = "cropscode";
/// The launchd label (reverse DNS, as launchd expects).
pub const LABEL: &str = "dev.cropscode.worker";

/// install, remove or control the worker as a system service (systemd, launchd, Windows)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "service")]
pub struct ServiceCommand {
    #[argh(subcommand)]
    action: ActionCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ActionCommand {
    Install(InstallCommand),
    Uninstall(UninstallCommand),
    Start(StartCommand),
    Stop(StopCommand),
    Status(ServiceStatusCommand),
    Run(RunCommand),
}

/// Declares an action's struct: the configuration flags plus the options every action has.
macro_rules! action {
    ($(#[$meta:meta])* $name:ident { $($fields:tt)* }) => {
        config_flags! {
            $(#[$meta])*
            pub struct $name {
                /// print what would be written and run, change nothing
                #[argh(switch)]
                pub dry_run: bool,
                /// write and remove files under DIR instead of /, run no command (tests, packaging)
                #[argh(option)]
                pub root: Option<PathBuf>,
                /// systemd, launchd or windows; default: this system's (another only with --dry-run or --root)
                #[argh(option)]
                pub system: Option<String>,
                $($fields)*
            }
        }
    };
}

action! {
    /// install the worker as a service and start it (fleet: system-wide; byom: for this user)
    #[argh(subcommand, name = "install")]
    InstallCommand {
        /// fleet mode: the account the service runs as (default root / LocalSystem; it needs the engine's socket)
        #[argh(option)]
        pub user: Option<String>,
    }
}
action! {
    /// stop the service and remove it (DATA_DIR is kept)
    #[argh(subcommand, name = "uninstall")]
    UninstallCommand {}
}
action! {
    /// start the installed service
    #[argh(subcommand, name = "start")]
    StartCommand {}
}
action! {
    /// stop the installed service
    #[argh(subcommand, name = "stop")]
    StopCommand {}
}
action! {
    /// show the service manager's view of the service
    #[argh(subcommand, name = "status")]
    ServiceStatusCommand {}
}
config_flags! {
    /// (internal) run as a Windows service: started by the service control manager, not by hand
    #[argh(subcommand, name = "run")]
    pub struct RunCommand {
        /// the profile directory whose ~/.cropscode a BYOM service reads
        #[argh(option)]
        pub home: Option<PathBuf>,
    }
}

/// What a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write and register the service, start it.
    Install,
    /// Stop, unregister, remove.
    Uninstall,
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Ask the service manager.
    Status,
}

/// The service manager a plan is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Linux.
    Systemd,
    /// macOS.
    Launchd,
    /// Windows' service control manager.
    Windows,
}

impl System {
    /// This system's service manager, if the worker has one for it.
    pub fn current() -> Option<System> {
        if cfg!(windows) {
            Some(System::Windows)
        } else if cfg!(target_os = "macos") {
            Some(System::Launchd)
        } else if cfg!(target_os = "linux") {
            Some(System::Systemd)
        } else {
            None
        }
    }

    fn parse(text: &str) -> Result<System, String> {
        match text.trim() {
            "systemd" => Ok(System::Systemd),
            "launchd" => Ok(System::Launchd),
            "windows" => Ok(System::Windows),
            other => Err(format!("expected systemd, launchd or windows, got '{}'", other.escape_debug())),
        }
    }
}

/// Everything a plan is made from, resolved once: the pure input of [`systemd`],
/// [`launchd`] and [`windows`].
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The service manager.
    pub system: System,
    /// Fleet (system-wide) or BYOM (the user's).
    pub mode: Mode,
    /// The absolute path of this binary.
    pub exe: PathBuf,
    /// The configuration flags the service runs with (`--mode fleet --data-dir …`).
    pub config_args: Vec<String>,
    /// `DATA_DIR`, absolute.
    pub data_dir: PathBuf,
    /// The installing user's home (BYOM paths).
    pub home: Option<PathBuf>,
    /// `--user`: the account a fleet service runs as.
    pub user: Option<String>,
    /// The installing user's id (launchd's `gui/<uid>` domain).
    pub uid: u32,
    /// How long the service may go without a sign of life before it is restarted.
    pub watchdog: Duration,
    /// Whether the service may get a private `/tmp` (not when bind mounts under `/tmp` are allowed:
    /// the floor must see the same `/tmp` as the engine).
    pub private_tmp: bool,
}

impl ServiceSpec {
    /// The plan for `action` on this spec's system.
    pub fn plan(&self, action: Action) -> ServicePlan {
        match self.system {
            System::Systemd => systemd::plan(self, action),
            System::Launchd => launchd::plan(self, action),
            System::Windows => windows::plan(self, action),
        }
    }
}

/// The shortest watchdog: well above the worker's longest idle loop period (a ping every
/// 15 s at the default liveness timeout, a reconnect delay capped at 30 s).
pub const MIN_WATCHDOG: Duration = Duration::from_secs(90);

/// Three of the longest period the worker's loop may sleep for, at least [`MIN_WATCHDOG`].
pub fn watchdog(config: &Config) -> Duration {
    let longest = [config.liveness_timeout.value / 3, config.heartbeat_interval.value, config.backoff_max.value]
        .into_iter()
        .max()
        .unwrap_or(MIN_WATCHDOG);
    (longest * 3).max(MIN_WATCHDOG)
}

struct Common<'a> {
    flags: config::Flags,
    dry_run: bool,
    root: Option<&'a PathBuf>,
    system: Option<&'a String>,
}

impl ServiceCommand {
    /// Runs the subcommand.
    pub fn run(self) -> Result<(), Failure> {
        macro_rules! common {
            ($c:expr) => {
                Common {
                    flags: $c.config_flags(),
                    dry_run: $c.dry_run,
                    root: $c.root.as_ref(),
                    system: $c.system.as_ref(),
                }
            };
        }
        match &self.action {
            ActionCommand::Install(c) => run_action(common!(c), Action::Install, c.user.clone()),
            ActionCommand::Uninstall(c) => run_action(common!(c), Action::Uninstall, None),
            ActionCommand::Start(c) => run_action(common!(c), Action::Start, None),
            ActionCommand::Stop(c) => run_action(common!(c), Action::Stop, None),
            ActionCommand::Status(c) => run_action(common!(c), Action::Status, None),
            ActionCommand::Run(c) => run_service(c),
        }
    }
}

fn run_action(common: Common<'_>, action: Action, user: Option<String>) -> Result<(), Failure> {
    let system = match common.system {
        Some(text) => System::parse(text).map_err(|m| Failure::Config(format!("--system: {m}")))?,
        None => {
            System::current().ok_or_else(|| Failure::Config("no service manager is supported on this system".into()))?
        }
    };
    let foreign = Some(system) != System::current();
    if foreign && !common.dry_run && common.root.is_none() {
        return Err(Failure::Config(format!(
            "--system {}: not this system's service manager; add --dry-run or --root DIR",
            common.system.map(String::as_str).unwrap_or_default()
        )));
    }
    let env = Env::from_process();
    let config = config::resolve(&common.flags, &env)?;
    if action == Action::Install {
        check_token_is_stored(&config)?;
        config.require_url()?;
    }
    if user.is_some() && config.mode.value != Mode::Fleet {
        return Err(Failure::Config(
            "--user: a BYOM service runs as the user who installs it; --user is for fleet mode".into(),
        ));
    }
    let spec = ServiceSpec {
        system,
        mode: config.mode.value,
        exe: current_exe()?,
        config_args: config_args(&config, &common.flags, &env),
        data_dir: std::path::absolute(&config.data_dir.value).unwrap_or_else(|_| config.data_dir.value.clone()),
        home: env.home(),
        user,
        uid: current_uid(),
        watchdog: watchdog(&config),
        private_tmp: !config
            .allowed_bind_roots
            .value
            .iter()
            .any(|r| r.starts_with("/tmp") || r.starts_with("/var/tmp")),
    };
    let mut plan = spec.plan(action);
    if let Some(root) = common.root {
        plan = plan.under_root(root);
    }
    if common.dry_run {
        print!("{plan}");
        return Ok(());
    }
    plan.apply(common.root.is_none())
}

/// The token must be in a file the service reads (credentials.json or agent.yaml): a unit
/// never carries it, and the service does not see the installing shell's `WORKER_TOKEN`.
fn check_token_is_stored(config: &Config) -> Result<(), Failure> {
    let fix = match config.mode.value {
        Mode::Byom => "run `cropscode login` (it stores the token in ~/.cropscode/credentials.json, 0600)",
        Mode::Fleet => "put worker_token in agent.yaml (keep the file 0600)",
    };
    match config.token.as_ref().map(|t| &t.source) {
        Some(Source::File(_)) => Ok(()),
        Some(_) => Err(Failure::Config(format!(
            "WORKER_TOKEN (environment): a service does not see this shell's environment, and the token never \
             goes into a service definition: {fix}, then install again"
        ))),
        None => Err(Failure::Config(format!("WORKER_TOKEN: not set: {fix}, then install again"))),
    }
}

/// The flags the service runs with: the mode, the files and every value this shell gave by
/// flag or environment (the token has no flag and is never among them).
fn config_args(config: &Config, flags: &config::Flags, env: &Env) -> Vec<String> {
    let mut args = vec!["--mode".to_owned(), config.mode.value.as_str().to_owned()];
    if let Some(yaml) = &config.agent_config {
        let path = std::path::absolute(&yaml.value).unwrap_or_else(|_| yaml.value.clone());
        args.extend(["--config".to_owned(), path.display().to_string()]);
    }
    let data_dir = std::path::absolute(&config.data_dir.value).unwrap_or_else(|_| config.data_dir.value.clone());
    args.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
    for key in Key::ALL {
        if matches!(key, Key::WorkerToken | Key::AgentMode | Key::AgentConfig | Key::DataDir) {
            continue;
        }
        let Some(flag) = key.flag() else { continue };
        let value = flags.get(key).cloned().or_else(|| env.get(key.env()).and_then(|v| v.to_str()).map(String::from));
        if let Some(value) = value {
            args.extend([flag.to_owned(), value]);
        }
    }
    args
}

fn current_exe() -> Result<PathBuf, Failure> {
    let exe =
        std::env::current_exe().map_err(|e| Failure::Runtime(format!("cannot find the path of this program: {e}")))?;
    // On Windows canonicalize gives a `\\?\` path, which a service command line does not need.
    if cfg!(windows) { Ok(exe) } else { Ok(std::fs::canonicalize(&exe).unwrap_or(exe)) }
}

#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

#[cfg(windows)]
fn run_service(command: &RunCommand) -> Result<(), Failure> {
    windows_scm::run(command)
}

#[cfg(not(windows))]
fn run_service(command: &RunCommand) -> Result<(), Failure> {
    let _ = (command.config_flags(), &command.home);
    Err(Failure::Config(
        "`cropscode service run` is started by the Windows service control manager; here the service runs \
         `cropscode worker` (see `cropscode service install --dry-run`)"
            .into(),
    ))
}

#[cfg(test)]
mod tests;
