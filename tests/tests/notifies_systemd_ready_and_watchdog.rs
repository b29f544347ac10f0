//! Under systemd (`Type=notify`, `WatchdogSec=`) the worker speaks `sd_notify`: a real
//! unix datagram socket stands in for systemd's. It hears `READY=1` once the worker is
//! registered (or, with no orchestrator, once it is retrying), `STATUS=` lines as the
//! link changes, `WATCHDOG=1` every `WATCHDOG_USEC / 2` while the loop turns, and
//! `STOPPING=1` on SIGTERM. (That a stuck loop stops feeding the watchdog is the
//! runtime's unit test with hand-made time, `notify::tests`.)

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use cropscode_tests::*;

/// Every datagram received within `within`, or until `until` matches one.
fn listen(socket: &UnixDatagram, within: Duration, until: impl Fn(&str) -> bool) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    while started.elapsed() < within {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = until(&text);
            got.push((started.elapsed(), text));
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn ready_status_watchdog_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let orchestrator = start_orchestrator();
    let mut worker = WorkerSpec::new(orchestrator.ws_url())
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "1000000")
        .spawn();
    let registered = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");

    let heard = listen(&socket, Duration::from_secs(4), |_| false);
    let texts: Vec<&str> = heard.iter().map(|(_, t)| t.as_str()).collect();
    let ready: Vec<&&str> = texts.iter().filter(|t| t.contains("READY=1")).collect();
    assert_eq!(ready.len(), 1, "READY=1 exactly once: {texts:?}");
    assert!(ready[0].contains(&format!("STATUS=registered as {}", registered.worker_id)), "{texts:?}");
    // Fed every 0.5 s while the loop turns: about 8 in 4 s.
    let fed: Vec<Duration> = heard.iter().filter(|(_, t)| *t == "WATCHDOG=1").map(|(at, _)| *at).collect();
    assert!(fed.len() >= 5, "the watchdog was fed {} times in 4 s: {texts:?}", fed.len());
    for gap in fed.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap <= Duration::from_millis(900), "watchdog gap {gap:?}: {fed:?}");
    }

    worker.stop().expect("the worker stops");
    let heard = listen(&socket, Duration::from_secs(2), |t| t.contains("STOPPING=1"));
    assert!(heard.iter().any(|(_, t)| t.starts_with("STOPPING=1")), "{heard:?}");
}

#[test]
fn ready_while_retrying_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("cropscode-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    // Nothing listens on port 9: every attempt fails, and the worker retries.
    let _worker = WorkerSpec::new("ws://127.0.0.1:9/worker").env("NOTIFY_SOCKET", format!("@{name}")).spawn();
    let heard = listen(&socket, Duration::from_secs(15), |t| t.contains("READY=1"));
    let ready = heard.iter().find(|(_, t)| t.contains("READY=1")).unwrap_or_else(|| panic!("no READY=1: {heard:?}"));
    assert!(ready.1.contains("STATUS=reconnecting in"), "{heard:?}");
    assert!(!heard.iter().any(|(_, t)| t.contains("WATCHDOG=1")), "no WATCHDOG_USEC, no watchdog: {heard:?}");
}
