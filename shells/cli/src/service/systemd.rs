//! Linux: a systemd unit, `cropscode.service`.
//!
//! - **fleet**: a system unit, `/etc/systemd/system/cropscode.service`, run as root unless
//!   `--user NAME` (a dedicated account fits Docker: the account in the `docker` group
//!   reaches `/run/docker.sock`; rootful Podman needs root, so root is the default). The
//!   worker only talks to the engine's socket, so it is sandboxed: `ProtectSystem=strict`
//!   with only `DATA_DIR` writable (`StateDirectory=cropscode` for the default
//!   `/var/lib/cropscode`, which systemd creates and hands to `User=`), `ProtectHome=read-only`
//!   (not `yes`: the floor resolves bind-mount paths under `/home` as the engine will see
//!   them), `PrivateTmp=yes` unless `ALLOWED_BIND_ROOTS` allows `/tmp` (same reason), and
//!   the kernel, cgroup, SUID, personality and realtime restrictions. Connecting to a
//!   socket on a read-only mount works, so the engine sockets need no `ReadWritePaths`. The
//!   one thing the sandbox rules out is the worker's fallback of starting
//!   `podman system service` itself: a fleet machine's engine is a system service
//!   (`docker.service`, or `systemctl enable --now podman.socket`), hence the ordering.
//!   `OOMScoreAdjust=-500` makes the kernel kill a tenant's container before the agent.
//! - **BYOM**: a user unit, `~/.config/systemd/user/cropscode.service`, run as the user
//!   (`systemctl --user`; `loginctl enable-linger` starts it at boot without a login). No
//!   file-system sandbox: sandboxing in a user manager needs user namespaces and maps the
//!   user alone, and `NoNewPrivileges` stops `newuidmap`, both of which break the rootless
//!   Podman the worker may start itself; the worker writes `~/.cropscode/worker.json`. No
//!   `OOMScoreAdjust` either: an unprivileged manager cannot lower it (systemd ignores it).
//!
//! Both: `Type=notify` (the runtime sends `READY=1` once registered or retrying and
//! `WATCHDOG=1` while its loop turns), `WatchdogSec=` three of the loop's longest sleep and
//! at least 90 s, `Restart=always` after 2 s and never a start limit (a fleet board nobody
//! logs into must keep trying).

use std::path::{Path, PathBuf};

use cropscode_core::protocol::Mode;

use super::{Action, NAME, ServicePlan, ServiceSpec, Step};

/// The fleet data directory systemd manages as `StateDirectory=cropscode`.
const STATE_DIRECTORY: &str = "/var/lib/cropscode";

/// Where the unit goes.
pub fn unit_path(spec: &ServiceSpec) -> PathBuf {
    match spec.mode {
        Mode::Fleet => PathBuf::from("/etc/systemd/system").join(format!("{NAME}.service")),
        _ => home(spec).join(".config/systemd/user").join(format!("{NAME}.service")),
    }
}

fn home(spec: &ServiceSpec) -> PathBuf {
    spec.home.clone().unwrap_or_else(|| PathBuf::from("~"))
}

/// The unit file.
pub fn unit(spec: &ServiceSpec) -> String {
    let fleet = spec.mode == Mode::Fleet;
    let mut exec = vec![quote(&spec.exe.display().to_string()), quote("worker")];
    exec.extend(spec.config_args.iter().map(|a| quote(a)));
    let mut u = String::new();
    u.push_str("# Written by `cropscode service install`; `cropscode service uninstall` removes it.\n");
    u.push_str("# The worker token is not here: it stays in agent.yaml or ~/.cropscode/credentials.json.\n");
    u.push_str("[Unit]\n");
    if fleet {
        u.push_str("Description=cropscode worker agent\n");
        u.push_str("After=network-online.target docker.service podman.socket\n");
        u.push_str("Wants=network-online.target\n");
    } else {
        u.push_str("Description=cropscode worker agent (this user's)\n");
        u.push_str("After=podman.socket\n");
    }
    u.push_str("StartLimitIntervalSec=0\n\n[Service]\n");
    u.push_str("Type=notify\nNotifyAccess=main\n");
    u.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    u.push_str("Restart=always\nRestartSec=2\n");
    u.push_str(&format!("WatchdogSec={}\n", spec.watchdog.as_secs()));
    if fleet {
        u.push_str("OOMScoreAdjust=-500\n");
        if let Some(user) = &spec.user {
            u.push_str(&format!("User={user}\n"));
        }
        if spec.data_dir == Path::new(STATE_DIRECTORY) {
            u.push_str("StateDirectory=cropscode\nStateDirectoryMode=0700\n");
        } else {
            u.push_str(&format!("ReadWritePaths={}\n", quote(&spec.data_dir.display().to_string())));
        }
        u.push_str("NoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=read-only\n");
        if spec.private_tmp {
            u.push_str("PrivateTmp=yes\n");
        }
        u.push_str(
            "ProtectKernelTunables=yes\nProtectKernelModules=yes\nProtectControlGroups=yes\n\
             RestrictSUIDSGID=yes\nLockPersonality=yes\nRestrictRealtime=yes\n",
        );
        u.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    } else {
        u.push_str("\n[Install]\nWantedBy=default.target\n");
    }
    u
}

/// One word of a systemd command line or path list: double-quoted, with `\`, `"`, and the
/// specifier `%` and variable `$` characters escaped.
pub fn quote(word: &str) -> String {
    let mut q = String::with_capacity(word.len() + 2);
    q.push('"');
    for c in word.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '%' => q.push_str("%%"),
            '$' => q.push_str("$$"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn systemctl(spec: &ServiceSpec, args: &[&str]) -> Step {
    let mut argv = vec!["systemctl".to_owned()];
    if spec.mode != Mode::Fleet {
        argv.push("--user".into());
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    Step::Run { argv, tolerate_failure: false, undo: None }
}

/// The plan for `action`.
pub fn plan(spec: &ServiceSpec, action: Action) -> ServicePlan {
    let fleet = spec.mode == Mode::Fleet;
    let path = unit_path(spec);
    let unit_name = format!("{NAME}.service");
    let flavour = if fleet { "fleet: system unit" } else { "byom: user unit" };
    let verb = match action {
        Action::Install => "install",
        Action::Uninstall => "uninstall",
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Status => "status",
    };
    let mut steps = Vec::new();
    match action {
        Action::Install => {
            if fleet && spec.data_dir != Path::new(STATE_DIRECTORY) {
                // ReadWritePaths= needs the directory to exist when the sandbox is set up.
                steps.push(Step::MakeDir { path: spec.data_dir.clone(), mode: 0o700 });
            }
            steps.push(Step::Write { path: path.clone(), mode: 0o644, contents: unit(spec) });
            steps.push(systemctl(spec, &["daemon-reload"]));
            let mut enable = systemctl(spec, &["enable", "--now", &unit_name]);
            if let (Step::Run { undo, .. }, Step::Run { argv, .. }) =
                (&mut enable, systemctl(spec, &["disable", "--now", &unit_name]))
            {
                *undo = Some(argv);
            }
            steps.push(enable);
            if let (true, Some(user), false) = (fleet, &spec.user, spec.data_dir == Path::new(STATE_DIRECTORY)) {
                steps.push(Step::Note(format!(
                    "note: give {user} the data directory: `chown -R {user} {}`",
                    spec.data_dir.display()
                )));
            }
            if let (true, Some(user)) = (fleet, &spec.user) {
                steps.push(Step::Note(format!(
                    "note: the service runs as {user}: that account must read agent.yaml and reach the engine \
                     (for Docker: `usermod -aG docker {user}`; rootful Podman needs root: install without --user)"
                )));
            }
            if !fleet {
                let user = std::env::var("USER").unwrap_or_else(|_| "$USER".into());
                steps.push(Step::Note(format!(
                    "note: a user unit runs while you are logged in; to start it at boot without a login run \
                     `loginctl enable-linger {user}` (once, as root or with your password)"
                )));
            }
        }
        Action::Uninstall => {
            let mut stop = systemctl(spec, &["disable", "--now", &unit_name]);
            if let Step::Run { tolerate_failure, .. } = &mut stop {
                *tolerate_failure = true;
            }
            steps.push(stop);
            let keep = if fleet { PathBuf::from("/etc/systemd/system") } else { home(spec).join(".config") };
            steps.push(Step::Remove { path: path.clone(), keep });
            steps.push(systemctl(spec, &["daemon-reload"]));
        }
        Action::Start => steps.push(systemctl(spec, &["start", &unit_name])),
        Action::Stop => steps.push(systemctl(spec, &["stop", &unit_name])),
        Action::Status => steps.push(systemctl(spec, &["status", "--no-pager", &unit_name])),
    }
    let rights_hint = if fleet {
        "the system-wide (fleet) service needs root: run `sudo cropscode service install` (or install the \
         BYOM user unit with --mode byom)"
            .to_owned()
    } else {
        "the user unit goes under your home directory: check its permissions".to_owned()
    };
    let mut reload = vec!["systemctl".to_owned()];
    if !fleet {
        reload.push("--user".into());
    }
    reload.push("daemon-reload".into());
    ServicePlan { title: format!("{verb} (systemd, {flavour})"), steps, rights_hint, after_undo: vec![reload] }
}
