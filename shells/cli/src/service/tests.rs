use std::path::{Path, PathBuf};
use std::time::Duration;

use cropscode_core::protocol::Mode;

use super::windows::{self, ControlAction, ScmStep};
use super::*;

fn spec(system: System, mode: Mode) -> ServiceSpec {
    ServiceSpec {
        system,
        mode,
        exe: PathBuf::from("/usr/local/bin/cropscode"),
        config_args: vec!["--mode".into(), mode.as_str().into(), "--data-dir".into(), "/var/lib/cropscode".into()],
        data_dir: PathBuf::from(if mode == Mode::Fleet {
            "/var/lib/cropscode"
        } else {
            "/home/u/.local/share/cropscode"
        }),
        home: Some(PathBuf::from("/home/u")),
        user: None,
        uid: 1000,
        watchdog: MIN_WATCHDOG,
        private_tmp: true,
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn fleet_unit_is_a_sandboxed_notify_service() {
    let unit = systemd::unit(&spec(System::Systemd, Mode::Fleet));
    let l = lines(&unit);
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=90",
        "Restart=always",
        "RestartSec=2",
        "After=network-online.target docker.service podman.socket",
        "Wants=network-online.target",
        "OOMScoreAdjust=-500",
        "StateDirectory=cropscode",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "ProtectControlGroups=yes",
        "WantedBy=multi-user.target",
        "ExecStart=\"/usr/local/bin/cropscode\" \"worker\" \"--mode\" \"fleet\" \"--data-dir\" \"/var/lib/cropscode\"",
    ] {
        assert!(l.contains(&want), "{want} missing from\n{unit}");
    }
    assert!(!unit.contains("User="), "root by default");
}

#[test]
fn fleet_unit_with_a_user_and_a_custom_data_dir() {
    let mut s = spec(System::Systemd, Mode::Fleet);
    s.user = Some("cropscode".into());
    s.data_dir = PathBuf::from("/srv/crops data");
    s.private_tmp = false;
    let unit = systemd::unit(&s);
    assert!(unit.contains("\nUser=cropscode\n"), "{unit}");
    assert!(unit.contains("\nReadWritePaths=\"/srv/crops data\"\n"), "{unit}");
    assert!(!unit.contains("StateDirectory"), "{unit}");
    assert!(!unit.contains("PrivateTmp"), "bind mounts under /tmp are allowed: {unit}");
    let plan = s.plan(Action::Install);
    assert_eq!(plan.steps[0], Step::MakeDir { path: s.data_dir.clone(), mode: 0o700 });
}

#[test]
fn byom_unit_is_a_user_unit_without_a_sandbox() {
    let s = spec(System::Systemd, Mode::Byom);
    let unit = systemd::unit(&s);
    assert!(unit.contains("Type=notify") && unit.contains("WantedBy=default.target"), "{unit}");
    for absent in ["ProtectSystem", "NoNewPrivileges", "OOMScoreAdjust", "network-online", "User="] {
        assert!(!unit.contains(absent), "{absent} in\n{unit}");
    }
    let plan = s.plan(Action::Install);
    assert_eq!(systemd::unit_path(&s), Path::new("/home/u/.config/systemd/user/cropscode.service"));
    let runs: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|st| if let Step::Run { argv, .. } = st { Some(argv.join(" ")) } else { None })
        .collect();
    assert_eq!(runs, ["systemctl --user daemon-reload", "systemctl --user enable --now cropscode.service"]);
    assert!(plan.to_string().contains("loginctl enable-linger"), "{plan}");
}

#[test]
fn systemd_words_are_quoted_and_escaped() {
    assert_eq!(systemd::quote(r#"a b"c\d%e$f"#), r#""a b\"c\\d%%e$$f""#);
}

#[test]
fn uninstall_is_the_reverse_and_under_root_prunes_to_the_root() {
    let s = spec(System::Systemd, Mode::Fleet);
    let plan = s.plan(Action::Uninstall).under_root(Path::new("/t"));
    assert_eq!(
        plan.steps[1],
        Step::Remove { path: PathBuf::from("/t/etc/systemd/system/cropscode.service"), keep: PathBuf::from("/t") }
    );
    assert!(matches!(&plan.steps[0], Step::Run { tolerate_failure: true, .. }));
}

#[test]
fn plist_has_the_keys_and_escapes() {
    let mut s = spec(System::Launchd, Mode::Byom);
    s.config_args.push("--name".into());
    s.config_args.push("a<b&c".into());
    let p = launchd::plist(&s);
    // Paths are joined with this system's separator (the plan for another system is only for reading).
    let log = format!("<string>{}</string>", s.data_dir.join("logs").join("worker.log").display());
    assert!(p.contains(&log), "{log} missing from\n{p}");
    for want in [
        "<key>Label</key>",
        "<string>dev.cropscode.worker</string>",
        "<key>KeepAlive</key>\n    <true/>",
        "<key>RunAtLoad</key>\n    <true/>",
        "<string>Adaptive</string>",
        "<string>a&lt;b&amp;c</string>",
    ] {
        assert!(p.contains(want), "{want} missing from\n{p}");
    }
    let agent = launchd::plist_path(&s);
    assert_eq!(agent, Path::new("/home/u/Library/LaunchAgents/dev.cropscode.worker.plist"));
    let plan = s.plan(Action::Install).to_string();
    assert!(plan.contains(&format!("run: launchctl bootstrap gui/1000 {}", agent.display())), "{plan}");
    let fleet = spec(System::Launchd, Mode::Fleet);
    let daemon = launchd::plist_path(&fleet);
    assert_eq!(daemon, Path::new("/Library/LaunchDaemons/dev.cropscode.worker.plist"));
    let plan = fleet.plan(Action::Install).to_string();
    assert!(plan.contains(&format!("run: launchctl bootstrap system {}", daemon.display())), "{plan}");
}

#[test]
fn windows_command_line_reads_back_as_the_arguments() {
    assert_eq!(windows::quote("plain"), "plain");
    assert_eq!(windows::quote(r"C:\Program Files\x"), r#""C:\Program Files\x""#);
    assert_eq!(windows::quote(r#"a "b" c\"#), r#""a \"b\" c\\""#);
    assert_eq!(windows::quote(""), r#""""#);
    let mut s = spec(System::Windows, Mode::Byom);
    s.exe = PathBuf::from(r"C:\Program Files\cropscode\cropscode.exe");
    s.home = Some(PathBuf::from(r"C:\Users\u"));
    let line = windows::command_line(&s);
    assert!(line.starts_with(r#""C:\Program Files\cropscode\cropscode.exe" service run --mode byom"#), "{line}");
    assert!(line.ends_with(r"--home C:\Users\u"), "{line}");
    let plan = s.plan(Action::Install);
    assert!(matches!(&plan.steps[0], Step::Scm(ScmStep::Create { .. })));
    assert!(
        plan.to_string()
            .contains("sc.exe failure cropscode reset= 86400 actions= restart/2000/restart/2000/restart/10000")
    );
}

#[test]
fn stop_and_shutdown_drain_like_sigterm() {
    assert_eq!(windows::control_action(windows::CONTROL_STOP), ControlAction::Drain);
    assert_eq!(windows::control_action(windows::CONTROL_SHUTDOWN), ControlAction::Drain);
    assert_eq!(windows::control_action(windows::CONTROL_PRESHUTDOWN), ControlAction::Drain);
    assert_eq!(windows::control_action(windows::CONTROL_INTERROGATE), ControlAction::Report);
    // SERVICE_CONTROL_PAUSE: not accepted.
    assert_eq!(windows::control_action(2), ControlAction::NotImplemented);
}

#[test]
fn the_watchdog_outlasts_the_longest_sleep() {
    let home = std::env::temp_dir().join("cropscode-service-unit-home");
    let env = |pairs: &[(&str, &str)]| {
        let mut all = vec![("HOME", home.to_str().unwrap())];
        all.extend_from_slice(pairs);
        config::resolve(&config::Flags::default(), &Env::from_pairs(all, home.join("no-agent.yaml"))).unwrap()
    };
    assert_eq!(watchdog(&env(&[])), Duration::from_secs(90));
    assert_eq!(watchdog(&env(&[("BACKOFF_MAX", "2m")])), Duration::from_secs(360));
}

#[cfg(unix)]
#[test]
fn a_failing_step_undoes_everything_before_it() {
    let dir = std::env::temp_dir().join(format!("cropscode-service-undo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("etc/systemd/system/cropscode.service");
    let undone = dir.join("undo-ran");
    let sh = |script: String| vec!["sh".to_owned(), "-c".to_owned(), script];
    let plan = ServicePlan {
        title: "test".into(),
        steps: vec![
            Step::Write { path: unit.clone(), mode: 0o644, contents: "[Unit]\n".into() },
            // Like `enable --now`: fails, but may have done half its work, so its undo runs too.
            Step::Run {
                argv: sh("exit 3".into()),
                tolerate_failure: false,
                undo: Some(sh(format!("test -f {} && touch {}", unit.display(), undone.display()))),
            },
        ],
        rights_hint: String::new(),
        after_undo: Vec::new(),
    };
    let Err(Failure::Runtime(message)) = plan.apply(true) else { panic!("the step failed") };
    assert!(message.contains("exit 3") || message.contains("exit status: 3"), "{message}");
    assert!(undone.exists(), "the failed command's undo ran before the unit was removed");
    assert!(!unit.exists() && !dir.join("etc").exists(), "the unit and the directories made for it are gone");
    let _ = std::fs::remove_dir_all(&dir);
}
