//! `cropscode dev` starts a local orchestrator and a worker connected to it,
//! prints the banner and the events, stops cleanly on Ctrl-C, and never
//! touches the user's `~/.cropscode`.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn dev_shows_a_registered_worker_and_leaves_home_alone() {
    let home = Home::new("dev");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cropscode"))
        .args(["dev", "--http-port", "0", "--heartbeat-interval", "500ms"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = |seen: &[String]| {
        seen.iter().any(|l| l.contains("registered as")) && seen.iter().any(|l| l.starts_with("heartbeat from"))
    };
    while !done(&seen) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
    }
    let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push(line);
    }
    let text = seen.join("\n");
    assert!(done(&seen), "no registration and heartbeat in:\n{text}");
    assert!(text.contains("ws://127.0.0.1:") && text.contains("curl -s -X POST http://127.0.0.1:"), "{text}");
    assert!(status.success(), "dev exits cleanly on Ctrl-C: {status:?}\n{text}");
    assert!(!home.path(".cropscode").exists(), "dev wrote into the real ~/.cropscode");
}
