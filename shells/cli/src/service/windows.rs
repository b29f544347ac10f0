//! Windows: a real service, `cropscode`, registered with the service control manager (SCM).
//!
//! `install` calls `CreateServiceW` (the equivalent of `sc.exe create`) with the command line
//! `"<exe>" service run <flags>`, automatic start, LocalSystem (the account that reaches
//! Docker Desktop's and Podman machine's pipes whoever is logged in), and recovery actions
//! that restart it 2 s, 2 s then 10 s after a failure, counted afresh each day, also when it
//! stops with an error rather than crashing. A BYOM service is pinned to the installing
//! user's profile (`--home`), so it reads that user's `~/.cropscode/credentials.json`. Then
//! it starts the service. `service run` is what the SCM starts: it enters the service
//! dispatcher ([`super::windows_scm`]), answers stop and shutdown with the same drain as
//! SIGTERM, and logs to `DATA_DIR\logs\worker.log` (rotated: a service has no console).
//!
//! Everything here but [`call`] is plain data and compiled on every system, so the plan and
//! the control-code mapping are tested on Linux too.

use std::fmt;

use cropscode_core::protocol::Mode;

use super::{Action, NAME, ServicePlan, ServiceSpec, Step};
use crate::Failure;

/// The name in the services list.
pub const DISPLAY_NAME: &str = "cropscode worker agent";
/// The description in the services list.
pub const DESCRIPTION: &str = "Connects this machine to a cropscode orchestrator and runs its containers.";
/// Delays of the recovery actions (restart), in milliseconds.
pub const RESTART_DELAYS_MS: [u32; 3] = [2_000, 2_000, 10_000];
/// After this many seconds without a failure the recovery count starts again.
pub const RESET_PERIOD_S: u32 = 24 * 3600;

/// A call to the service control manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScmStep {
    /// Register the service (auto start, LocalSystem, recovery actions, description).
    Create { name: String, command_line: String },
    /// Start it.
    Start { name: String },
    /// Stop it and wait until it has stopped; `if_running` tolerates a service that is not.
    Stop { name: String, if_running: bool },
    /// Unregister it (stopped first by the plan).
    Delete { name: String },
    /// Print its state.
    Query { name: String },
}

impl ScmStep {
    /// What undoes this step when a later one fails.
    pub fn undo(&self) -> Option<ScmStep> {
        match self {
            ScmStep::Create { name, .. } => Some(ScmStep::Delete { name: name.clone() }),
            ScmStep::Start { name } => Some(ScmStep::Stop { name: name.clone(), if_running: true }),
            _ => None,
        }
    }
}

impl fmt::Display for ScmStep {
    /// The `sc.exe` commands that do the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScmStep::Create { name, command_line } => {
                let actions: Vec<String> = RESTART_DELAYS_MS.iter().map(|d| format!("restart/{d}")).collect();
                writeln!(
                    f,
                    "scm: sc.exe create {name} binPath= {} start= auto DisplayName= \"{DISPLAY_NAME}\"",
                    quote(command_line)
                )?;
                writeln!(f, "scm: sc.exe description {name} \"{DESCRIPTION}\"")?;
                writeln!(f, "scm: sc.exe failure {name} reset= {RESET_PERIOD_S} actions= {}", actions.join("/"))?;
                write!(f, "scm: sc.exe failureflag {name} 1")
            }
            ScmStep::Start { name } => write!(f, "scm: sc.exe start {name}"),
            ScmStep::Stop { name, .. } => write!(f, "scm: sc.exe stop {name}"),
            ScmStep::Delete { name } => write!(f, "scm: sc.exe delete {name}"),
            ScmStep::Query { name } => write!(f, "scm: sc.exe query {name}"),
        }
    }
}

/// One argument of a Windows command line, quoted so `CommandLineToArgvW` (and Rust's
/// `std::env::args`) read it back unchanged: backslashes before a quote are doubled.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut q = String::from('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                q.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                q.push('"');
                backslashes = 0;
            }
            c => {
                q.extend(std::iter::repeat_n('\\', backslashes));
                q.push(c);
                backslashes = 0;
            }
        }
    }
    q.extend(std::iter::repeat_n('\\', backslashes * 2));
    q.push('"');
    q
}

/// The command line the SCM starts: `"<exe>" service run <flags>` (and `--home` for BYOM).
pub fn command_line(spec: &ServiceSpec) -> String {
    let exe = spec.exe.display().to_string();
    let mut words = vec![quote(&exe), "service".into(), "run".into()];
    words.extend(spec.config_args.iter().map(|a| quote(a)));
    if spec.mode != Mode::Fleet
        && let Some(home) = &spec.home
    {
        words.extend(["--home".into(), quote(&home.display().to_string())]);
    }
    words.join(" ")
}

/// The plan for `action`.
pub fn plan(spec: &ServiceSpec, action: Action) -> ServicePlan {
    let name = NAME.to_owned();
    let (verb, steps) = match action {
        Action::Install => {
            let mut steps = vec![
                Step::Scm(ScmStep::Create { name: name.clone(), command_line: command_line(spec) }),
                Step::Scm(ScmStep::Start { name }),
            ];
            if spec.user.is_some() {
                steps.insert(
                    0,
                    Step::Note(
                        "note: --user is ignored on Windows: the service runs as LocalSystem (another account \
                         needs its password: set it in services.msc)"
                            .into(),
                    ),
                );
            }
            ("install", steps)
        }
        Action::Uninstall => (
            "uninstall",
            vec![
                Step::Scm(ScmStep::Stop { name: name.clone(), if_running: true }),
                Step::Scm(ScmStep::Delete { name }),
            ],
        ),
        Action::Start => ("start", vec![Step::Scm(ScmStep::Start { name })]),
        Action::Stop => ("stop", vec![Step::Scm(ScmStep::Stop { name, if_running: false })]),
        Action::Status => ("status", vec![Step::Scm(ScmStep::Query { name })]),
    };
    let flavour = if spec.mode == Mode::Fleet { "fleet" } else { "byom: this user's files" };
    ServicePlan {
        title: format!("{verb} (windows service, {flavour})"),
        steps,
        rights_hint: "registering a service needs an administrator: run it from an elevated prompt".into(),
        after_undo: Vec::new(),
    }
}

/// What the service does for a control code from the SCM.
#[cfg_attr(not(windows), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// Stop or shutdown: report STOP_PENDING and start the drain (the SIGTERM path).
    Drain,
    /// Interrogate: report the current state (nothing to do).
    Report,
    /// Anything else: ERROR_CALL_NOT_IMPLEMENTED.
    NotImplemented,
}

/// `SERVICE_CONTROL_STOP`.
#[cfg_attr(not(windows), allow(dead_code))]
pub const CONTROL_STOP: u32 = 1;
/// `SERVICE_CONTROL_INTERROGATE`.
#[cfg_attr(not(windows), allow(dead_code))]
pub const CONTROL_INTERROGATE: u32 = 4;
/// `SERVICE_CONTROL_SHUTDOWN`.
#[cfg_attr(not(windows), allow(dead_code))]
pub const CONTROL_SHUTDOWN: u32 = 5;
/// `SERVICE_CONTROL_PRESHUTDOWN`.
#[cfg_attr(not(windows), allow(dead_code))]
pub const CONTROL_PRESHUTDOWN: u32 = 0x0F;

#[cfg_attr(not(windows), allow(dead_code))]
/// The handler's decision, separate from the FFI so it is tested everywhere.
pub fn control_action(code: u32) -> ControlAction {
    match code {
        CONTROL_STOP | CONTROL_SHUTDOWN | CONTROL_PRESHUTDOWN => ControlAction::Drain,
        CONTROL_INTERROGATE => ControlAction::Report,
        _ => ControlAction::NotImplemented,
    }
}

/// Carries out one SCM call (Windows only).
#[cfg(windows)]
pub fn call(step: &ScmStep) -> Result<(), Failure> {
    super::windows_scm::call(step)
}

/// Carries out one SCM call (Windows only).
#[cfg(not(windows))]
pub fn call(step: &ScmStep) -> Result<(), Failure> {
    Err(Failure::Config(format!("`{step}` needs Windows' service control manager")))
}
