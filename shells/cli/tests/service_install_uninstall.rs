//! `cropscode service …` through the real binary: `--dry-run` prints the unit, `install --root T`
//! writes exactly the unit and `uninstall --root T` leaves `T` as it was; the unit passes
//! `systemd-analyze verify`, the launchd plist parses with Python's `plistlib`; the token is in
//! neither and in no output; without the rights (or with the token only in the environment)
//! install refuses and writes nothing.

#![cfg(unix)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every path under `dir` with its mode and size, sorted.
fn listing(dir: &Path) -> Vec<(PathBuf, u32, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, u32, u64)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let len = if meta.is_dir() { 0 } else { meta.len() };
            out.push((path.strip_prefix(root).unwrap().to_path_buf(), mode_of(&path), len));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A fleet configuration with the token in agent.yaml, and the environment pointing at it.
fn fleet(home: &Home) -> (PathBuf, Vec<(&'static str, String)>) {
    let yaml = home.path("agent.yaml");
    let text = format!("orchestrator_ws_url: wss://fleet.example/worker\nworker_token: {TOKEN}\n");
    std::fs::write(&yaml, text).unwrap();
    let env = vec![("AGENT_MODE", "fleet".to_owned()), ("AGENT_CONFIG", yaml.display().to_string())];
    (yaml, env)
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn byom_login(home: &Home) -> Vec<(&'static str, &'static str)> {
    home.write(
        "credentials.json",
        &format!("{{\"token\":\"{TOKEN}\",\"orchestratorUrl\":\"wss://o.example/worker\"}}"),
    );
    #[cfg(unix)]
    std::fs::set_permissions(
        home.path(".cropscode/credentials.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    vec![]
}

#[test]
fn dry_run_prints_the_unit_without_the_token() {
    let home = Home::new("svc-dry");
    let (yaml, env) = fleet(&home);
    let run = home.run(&["service", "install", "--dry-run", "--system", "systemd"], &env_refs(&env));
    run.assert_ok();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_cropscode")).unwrap();
    for want in [
        "write /etc/systemd/system/cropscode.service (mode 0644):".to_owned(),
        "    Type=notify".to_owned(),
        "    WatchdogSec=90".to_owned(),
        format!(
            "    ExecStart=\"{}\" \"worker\" \"--mode\" \"fleet\" \"--config\" \"{}\" \"--data-dir\" \"/var/lib/cropscode\"",
            exe.display(),
            yaml.display()
        ),
        "run: systemctl daemon-reload".to_owned(),
        "run: systemctl enable --now cropscode.service".to_owned(),
    ] {
        assert!(run.stdout.lines().any(|l| l == want), "no line {want:?} in:\n{}", run.stdout);
    }
    assert!(!run.all().contains(TOKEN), "the token leaked:\n{}", run.all());

    let home = Home::new("svc-dry-byom");
    byom_login(&home);
    let run = home.run(&["service", "install", "--dry-run", "--system", "systemd"], &[("LOG_LEVEL", "debug")]);
    run.assert_ok();
    assert!(run.stdout.contains(&format!("write {}/.config/systemd/user/cropscode.service", home.dir.display())));
    assert!(run.stdout.contains("run: systemctl --user enable --now cropscode.service"), "{}", run.stdout);
    assert!(run.stdout.contains("loginctl enable-linger"), "{}", run.stdout);
    // A value from the environment is pinned as a flag: the service does not see this shell.
    assert!(run.stdout.contains("\"--log-level\" \"debug\""), "{}", run.stdout);
    assert!(!run.all().contains(TOKEN), "the token leaked:\n{}", run.all());
}

#[test]
fn install_then_uninstall_under_a_root_leaves_it_as_it_was() {
    let home = Home::new("svc-root");
    let (_, env) = fleet(&home);
    let env = env_refs(&env);
    let root = home.path("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "board-7\n").unwrap();
    let before = listing(&root);

    let args = ["--root", root.to_str().unwrap(), "--system", "systemd"];
    let run = home.run(&[&["service", "install"][..], &args].concat(), &env);
    run.assert_ok();
    assert!(run.stdout.contains("not run (--root): systemctl enable --now cropscode.service"), "{}", run.stdout);
    let unit = root.join("etc/systemd/system/cropscode.service");
    let added: Vec<_> = listing(&root).into_iter().filter(|e| !before.contains(e)).map(|e| (e.0, e.1)).collect();
    assert_eq!(
        added,
        [
            (PathBuf::from("etc/systemd"), 0o755),
            (PathBuf::from("etc/systemd/system"), 0o755),
            (PathBuf::from("etc/systemd/system/cropscode.service"), 0o644),
        ],
        "exactly the unit"
    );
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Type=notify") && !text.contains(TOKEN), "{text}");
    verify_unit(&unit);

    // Installing again replaces the unit in place.
    home.run(&[&["service", "install"][..], &args].concat(), &env).assert_ok();
    let run = home.run(&[&["service", "uninstall"][..], &args].concat(), &env);
    run.assert_ok();
    assert!(run.stdout.contains("removed"), "{}", run.stdout);
    assert_eq!(listing(&root), before, "uninstall left something behind");
}

#[test]
fn byom_user_unit_verifies_too() {
    let home = Home::new("svc-byom");
    byom_login(&home);
    let root = home.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let args = ["--root", root.to_str().unwrap(), "--system", "systemd"];
    home.run(&[&["service", "install"][..], &args].concat(), &[]).assert_ok();
    let rel = home.dir.join(".config/systemd/user/cropscode.service");
    let unit = root.join(rel.strip_prefix("/").unwrap());
    assert_eq!(mode_of(&unit), 0o644);
    verify_unit(&unit);
    home.run(&[&["service", "uninstall"][..], &args].concat(), &[]).assert_ok();
    assert_eq!(listing(&root), [], "uninstall left something behind");
}

/// `systemd-analyze verify` on the unit (its ExecStart is this test's real binary).
fn verify_unit(unit: &Path) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package; tests/env/prepare.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    // Anything it prints about the unit itself is a finding, not noise.
    assert!(!stderr.contains("cropscode.service:"), "systemd-analyze verify complained:\n{stderr}");
}

#[test]
fn the_launchd_plist_parses_and_has_the_keys() {
    let home = Home::new("svc-plist");
    byom_login(&home);
    let root = home.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let args = ["--root", root.to_str().unwrap(), "--system", "launchd", "--name", "a<b&c"];
    let run = home.run(&[&["service", "install"][..], &args].concat(), &[]);
    run.assert_ok();
    assert!(run.stdout.contains("not run (--root): launchctl bootstrap gui/"), "{}", run.stdout);
    let rel = home.dir.join("Library/LaunchAgents/dev.cropscode.worker.plist");
    let plist = root.join(rel.strip_prefix("/").unwrap());
    assert_eq!(mode_of(&plist), 0o644);
    assert!(!std::fs::read_to_string(&plist).unwrap().contains(TOKEN));
    let script = r#"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], 'rb'))
assert p['Label'] == 'dev.cropscode.worker', p
assert p['KeepAlive'] is True and p['RunAtLoad'] is True, p
assert p['ProcessType'] == 'Adaptive', p
assert p['StandardOutPath'].endswith('/logs/worker.log') and p['StandardErrorPath'] == p['StandardOutPath'], p
args = p['ProgramArguments']
assert args[1] == 'worker' and args[args.index('--name') + 1] == 'a<b&c', args
assert args[args.index('--mode') + 1] == 'byom', args
print('plist ok')
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(&plist).output().expect("python3");
    assert!(out.status.success(), "plistlib: {}", String::from_utf8_lossy(&out.stderr));
    home.run(&["service", "uninstall", "--root", root.to_str().unwrap(), "--system", "launchd"], &[]).assert_ok();
    assert!(!plist.exists() && !plist.parent().unwrap().exists());
}

#[test]
fn a_token_only_in_the_environment_is_refused() {
    let home = Home::new("svc-envtoken");
    let root = home.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let env = [("WORKER_TOKEN", TOKEN), ("ORCHESTRATOR_WS_URL", "wss://o.example/worker")];
    for extra in [&["--dry-run"][..], &["--root", root.to_str().unwrap()]] {
        let run = home.run(&[&["service", "install", "--system", "systemd"][..], extra].concat(), &env);
        assert_eq!(run.code, Some(2), "{}", run.all());
        assert!(run.stderr.contains("cropscode login"), "{}", run.stderr);
        assert!(!run.all().contains(TOKEN), "the token leaked:\n{}", run.all());
    }
    assert_eq!(listing(&root), [], "nothing written");
}

#[test]
fn without_the_rights_install_refuses_and_writes_nothing() {
    if rustix_is_root() {
        // As root every directory is writable: run the binary as `nobody`.
        let home = Home::new("svc-norights");
        let (yaml, _) = fleet(&home);
        std::fs::set_permissions(&yaml, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&home.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let root = home.path("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let before = listing(&root);
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_cropscode"))
            .args(["service", "install", "--system", "systemd", "--root", root.to_str().unwrap()])
            .env_clear()
            .env("HOME", &home.dir)
            .env("AGENT_MODE", "fleet")
            .env("AGENT_CONFIG", &yaml)
            .output()
            .expect("setpriv");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("cannot write in") && stderr.contains("needs root"), "{stderr}");
        assert_eq!(listing(&root), before, "nothing written");
    } else {
        eprintln!("not root: this user cannot write /etc, so a real install is the test");
        let home = Home::new("svc-norights-user");
        let (_, env) = fleet(&home);
        let run = home.run(&["service", "install", "--system", "systemd"], &env_refs(&env));
        assert_eq!(run.code, Some(2), "{}", run.all());
        assert!(run.stderr.contains("needs root"), "{}", run.stderr);
    }
}

#[test]
fn another_systems_service_only_as_a_dry_run_or_under_a_root() {
    let home = Home::new("svc-foreign");
    byom_login(&home);
    let run = home.run(&["service", "install", "--system", "windows"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stderr.contains("--dry-run or --root"), "{}", run.stderr);
    let run = home.run(&["service", "install", "--system", "windows", "--dry-run"], &[]);
    run.assert_ok();
    assert!(run.stdout.contains("sc.exe create cropscode binPath= "), "{}", run.stdout);
    assert!(run.stdout.contains(" service run --mode byom"), "{}", run.stdout);
}

fn rustix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false)
}
