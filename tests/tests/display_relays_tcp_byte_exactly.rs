//! `display.open` relays a TCP server inside the container (busybox `nc`
//! standing in for a VNC server) over binary frames, byte-exactly in both
//! directions at once; a server that closes ends the relay with an end frame;
//! a port nothing listens on is refused.

mod streams;

use std::time::{Duration, Instant};

use cropscode_tests::*;
use serde_json::{Value, json};
use streams::*;

const WAIT: Duration = Duration::from_secs(30);
const DOWN: usize = 300_000;
const UP: usize = 200_000;

/// Reproducible bytes covering every value.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// The bytes of a file in the container.
fn file(t: &EngineRun, id: &str, path: &str) -> Vec<u8> {
    let out = t.ok(
        "container.exec",
        json!({ "containerId": id, "command": ["cat", path], "outputEncoding": "base64", "maxOutputBytes": 4_000_000 }),
    );
    base64_decode(out["stdout"].as_str().expect("stdout"))
}

/// `display.open`, retried while the server is not listening yet.
fn open_display(t: &EngineRun, id: &str, port: u16) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = t.command("display.open", json!({ "containerId": id, "port": port }));
        match answer.outcome() {
            Ok(result) => return result.clone(),
            Err(e) if e.code.as_str() == "conflict" && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("display.open: {} {}", e.code, e.message),
        }
    }
}

fn relay(t: &EngineRun) {
    let tenant = t.tenant("vnc");
    let server = "head -c 300000 /dev/urandom > /tmp/src; \
                  nc -l -p 5901 -e sh -c 'cat /tmp/src & cat > /tmp/dst; wait'; \
                  nc -l -p 5901 -e echo bye; \
                  sleep 3600";
    let created = t.ok(
        "container.create",
        json!({
            "image": BUSYBOX, "tenant": tenant, "name": t.name("vnc"), "labels": t.labels(), "pull": "never",
            "command": ["sh", "-c", server],
        }),
    );
    let id = created["containerId"].as_str().expect("containerId").to_string();
    t.ok("container.start", json!({ "containerId": id }));

    let result = open_display(t, &id, 5901);
    let orchestrator: &'static _ = Box::leak(Box::new(t.orchestrator.clone()));
    let mut display = Stream::attach(orchestrator, &t.worker_id, &result);
    assert!(display.session_id.starts_with("d-"), "{result}");

    // Both directions at once: the upload goes while the download arrives.
    let upload = pattern(UP, 7);
    display.send(&upload);
    display.wait_until("the server's bytes", WAIT, |s| s.output.len() >= DOWN);
    assert_eq!(display.output.len(), DOWN);
    assert_eq!(display.output, file(t, &id, "/tmp/src"), "server → orchestrator, byte-exact");
    let deadline = Instant::now() + WAIT;
    let received = loop {
        let got = file(t, &id, "/tmp/dst");
        if got.len() >= UP || Instant::now() >= deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(received == upload, "orchestrator → server, byte-exact ({} of {UP} bytes)", received.len());

    // Closing ends the connection: the server sees the end and moves on to the next listener.
    let closed = t.ok("display.close", json!({ "sessionId": display.session_id }));
    assert_eq!(closed, json!({ "sessionId": display.session_id }));
    t.fails_with("not_found", "display.close", json!({ "sessionId": display.session_id }));

    // A server that closes ends the relay: its last bytes, then the end frame.
    let result = open_display(t, &id, 5901);
    let mut short = Stream::attach(orchestrator, &t.worker_id, &result);
    let end = short.wait_end(WAIT);
    assert_eq!(short.text(), "bye\n");
    assert_eq!(end, json!({ "reason": "exited" }));

    // Nothing listens: refused, naming the port.
    let refused = t.fails_with("conflict", "display.open", json!({ "containerId": id, "port": 5999 }));
    assert!(refused.message.contains("5999"), "{}", refused.message);
}

engine_tests!(relay);
