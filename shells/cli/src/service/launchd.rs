//! macOS: a launchd property list, label `dev.cropscode.worker`.
//!
//! - **BYOM**: a LaunchAgent, `~/Library/LaunchAgents/dev.cropscode.worker.plist`, loaded into
//!   the user's GUI domain (`launchctl bootstrap gui/<uid> …`): it runs while the user is
//!   logged in, which is also when Docker Desktop or a Podman machine is up.
//! - **fleet**: a LaunchDaemon, `/Library/LaunchDaemons/dev.cropscode.worker.plist`, in the
//!   `system` domain (root, at boot; `--user` sets `UserName`).
//!
//! `RunAtLoad` and `KeepAlive` true (launchd restarts it whenever it exits, throttled to once
//! per 10 s), `ProcessType` `Adaptive`, stdout and stderr to `DATA_DIR/logs/worker.log` (launchd
//! does not create that directory: install does, and uninstall keeps it with the rest of
//! `DATA_DIR`). launchd's `PATH` is only `/usr/bin:/bin:/usr/sbin:/sbin`, so the plist adds
//! Homebrew's and `/usr/local/bin`, where `podman` and `docker` live. `bootout` sends SIGTERM:
//! the worker's normal drain. The XML is written here, escaped, without a plist library.

use std::path::PathBuf;

use cropscode_core::protocol::Mode;

use super::{Action, LABEL, ServicePlan, ServiceSpec, Step};

/// The `PATH` the worker gets: where Homebrew, Docker Desktop and Podman put their tools.
const PATH: &str = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// Where the plist goes.
pub fn plist_path(spec: &ServiceSpec) -> PathBuf {
    let file = format!("{LABEL}.plist");
    match spec.mode {
        Mode::Fleet => PathBuf::from("/Library/LaunchDaemons").join(file),
        _ => spec.home.clone().unwrap_or_else(|| PathBuf::from("~")).join("Library/LaunchAgents").join(file),
    }
}

/// The log file launchd writes the worker's output to.
pub fn log_path(spec: &ServiceSpec) -> PathBuf {
    spec.data_dir.join("logs").join("worker.log")
}

/// The property list.
pub fn plist(spec: &ServiceSpec) -> String {
    let string = |s: &str| format!("<string>{}</string>", escape(s));
    let key = |k: &str| format!("    <key>{k}</key>\n");
    let mut p = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `cropscode service install`; `cropscode service uninstall` removes it.\n     \
         The worker token is not here: it stays in agent.yaml or ~/.cropscode/credentials.json. -->\n\
         <plist version=\"1.0\">\n<dict>\n",
    );
    p.push_str(&key("Label"));
    p.push_str(&format!("    {}\n", string(LABEL)));
    p.push_str(&key("ProgramArguments"));
    p.push_str("    <array>\n");
    let exe = spec.exe.display().to_string();
    for arg in [exe.as_str(), "worker"].into_iter().chain(spec.config_args.iter().map(String::as_str)) {
        p.push_str(&format!("        {}\n", string(arg)));
    }
    p.push_str("    </array>\n");
    p.push_str(&key("RunAtLoad"));
    p.push_str("    <true/>\n");
    p.push_str(&key("KeepAlive"));
    p.push_str("    <true/>\n");
    p.push_str(&key("ProcessType"));
    p.push_str(&format!("    {}\n", string("Adaptive")));
    let log = log_path(spec).display().to_string();
    for k in ["StandardOutPath", "StandardErrorPath"] {
        p.push_str(&key(k));
        p.push_str(&format!("    {}\n", string(&log)));
    }
    p.push_str(&key("EnvironmentVariables"));
    p.push_str(&format!("    <dict>\n        <key>PATH</key>\n        {}\n    </dict>\n", string(PATH)));
    if let (Mode::Fleet, Some(user)) = (spec.mode, &spec.user) {
        p.push_str(&key("UserName"));
        p.push_str(&format!("    {}\n", string(user)));
    }
    p.push_str("</dict>\n</plist>\n");
    p
}

/// XML character data: `&`, `<`, `>` and quotes escaped.
pub fn escape(text: &str) -> String {
    let mut e = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => e.push_str("&amp;"),
            '<' => e.push_str("&lt;"),
            '>' => e.push_str("&gt;"),
            '"' => e.push_str("&quot;"),
            '\'' => e.push_str("&apos;"),
            c => e.push(c),
        }
    }
    e
}

fn launchctl(args: &[&str], tolerate_failure: bool) -> Step {
    let mut argv = vec!["launchctl".to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    Step::Run { argv, tolerate_failure, undo: None }
}

/// The plan for `action`.
pub fn plan(spec: &ServiceSpec, action: Action) -> ServicePlan {
    let fleet = spec.mode == Mode::Fleet;
    let domain = if fleet { "system".to_owned() } else { format!("gui/{}", spec.uid) };
    let target = format!("{domain}/{LABEL}");
    let path = plist_path(spec);
    let path_text = path.display().to_string();
    let (verb, mut steps) = match action {
        Action::Install => ("install", Vec::new()),
        Action::Uninstall => ("uninstall", Vec::new()),
        Action::Start => ("start", Vec::new()),
        Action::Stop => ("stop", Vec::new()),
        Action::Status => ("status", Vec::new()),
    };
    match action {
        Action::Install => {
            steps.push(Step::MakeDir { path: spec.data_dir.join("logs"), mode: 0o700 });
            steps.push(Step::Write { path: path.clone(), mode: 0o644, contents: plist(spec) });
            // A plist loaded by an earlier install would make bootstrap fail.
            steps.push(launchctl(&["bootout", &target], true));
            let mut bootstrap = launchctl(&["bootstrap", &domain, &path_text], false);
            if let Step::Run { undo, .. } = &mut bootstrap {
                *undo = Some(vec!["launchctl".into(), "bootout".into(), target.clone()]);
            }
            steps.push(bootstrap);
        }
        Action::Uninstall => {
            steps.push(launchctl(&["bootout", &target], true));
            let keep = path.parent().map(PathBuf::from).unwrap_or_default();
            steps.push(Step::Remove { path: path.clone(), keep });
        }
        Action::Start => {
            // Loaded again after a stop (bootout); already loaded is fine.
            steps.push(launchctl(&["bootstrap", &domain, &path_text], true));
            steps.push(launchctl(&["kickstart", &target], false));
        }
        // KeepAlive would restart a killed job: stopping is unloading.
        Action::Stop => steps.push(launchctl(&["bootout", &target], false)),
        Action::Status => steps.push(launchctl(&["print", &target], false)),
    }
    let rights_hint = if fleet {
        "a LaunchDaemon (fleet) needs root: run `sudo cropscode service install`".to_owned()
    } else {
        "the LaunchAgent goes under ~/Library: check its permissions".to_owned()
    };
    let flavour = if fleet { "fleet: LaunchDaemon" } else { "byom: LaunchAgent" };
    ServicePlan { title: format!("{verb} (launchd, {flavour})"), steps, rights_hint, after_undo: Vec::new() }
}
