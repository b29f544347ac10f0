//! The worker probes its gateway (the owner's `GATEWAY_URL`, else the one
//! `worker.registered` names) and its heartbeats carry `gatewayStatus` and
//! `gatewayStatusDetail`; without a gateway they carry neither.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use cropscode_tests::orchestrator::{Event, Heartbeat, Orchestrator, OrchestratorConfig, TlsIdentity};
use cropscode_tests::*;

/// A loopback HTTP server answering every request with `status`; returns its port.
fn http_server(status: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && matches!(tcp.read(&mut byte), Ok(1)) {
                head.push(byte[0]);
            }
            let _ = write!(tcp, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

fn orchestrator_with(gateway_url: Option<String>) -> Orchestrator {
    let config = OrchestratorConfig { gateway_url, ..OrchestratorConfig::with_token(TEST_TOKEN) };
    block_on(Orchestrator::start(config)).expect("start the local orchestrator")
}

fn worker(orchestrator: &Orchestrator, gateway_url: Option<&str>) -> WorkerProcess {
    let mut spec = WorkerSpec::new(orchestrator.ws_url())
        .env("HEARTBEAT_INTERVAL", "1s")
        .env("GATEWAY_PROBE_INTERVAL", "500ms")
        .env("GATEWAY_TIMEOUT", "1s");
    if let Some(url) = gateway_url {
        spec = spec.env("GATEWAY_URL", url);
    }
    spec.spawn()
}

fn heartbeats(orchestrator: &Orchestrator, connection: u64) -> Vec<Heartbeat> {
    orchestrator
        .events()
        .into_iter()
        .filter_map(|t| match t.event {
            Event::Heartbeat { connection: c, heartbeat, .. } if c == connection => Some(heartbeat),
            _ => None,
        })
        .collect()
}

/// The first heartbeat reporting a finished probe (a status other than `unknown`).
fn probed_heartbeat(orchestrator: &Orchestrator, worker: &WorkerProcess) -> Heartbeat {
    let reg = wait_registered(orchestrator, None, Duration::from_secs(30)).expect("registered");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let beats = heartbeats(orchestrator, reg.connection);
        if let Some(beat) = beats.iter().find(|b| b.gateway_status.as_deref().is_some_and(|s| s != "unknown")) {
            // Never one field without the other.
            assert!(beats.iter().all(|b| b.gateway_status.is_some() == b.gateway_status_detail.is_some()));
            return beat.clone();
        }
        assert!(Instant::now() < deadline, "no probed heartbeat in {beats:?}\n{}", worker.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(beat: &Heartbeat) -> (&str, &str) {
    (beat.gateway_status.as_deref().unwrap_or(""), beat.gateway_status_detail.as_deref().unwrap_or(""))
}

#[test]
fn without_a_gateway_heartbeats_carry_no_gateway_fields() {
    let orchestrator = start_orchestrator();
    let worker = worker(&orchestrator, None);
    let reg = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");
    let deadline = Instant::now() + Duration::from_secs(15);
    while heartbeats(&orchestrator, reg.connection).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let beats = heartbeats(&orchestrator, reg.connection);
    assert!(beats.len() >= 3, "{beats:?}");
    assert!(beats.iter().all(|b| b.gateway_status.is_none() && b.gateway_status_detail.is_none()), "{beats:?}");
    // Not even as `null` on the wire.
    let frames: Vec<String> = orchestrator
        .events()
        .into_iter()
        .filter_map(|t| match t.event {
            Event::Frame { text, .. } if text.contains("worker.heartbeat") => Some(text),
            _ => None,
        })
        .collect();
    assert!(!frames.is_empty() && frames.iter().all(|f| !f.contains("gateway")), "{frames:?}");
    worker.assert_token_absent();
}

#[test]
fn an_answering_gateway_is_ok_and_its_credentials_never_leak() {
    let port = http_server("200 OK");
    let orchestrator = start_orchestrator();
    let url = format!("http://probe:pa55word@127.0.0.1:{port}/health?key=qu3ry-secret");
    let worker = worker(&orchestrator, Some(&url));
    let beat = probed_heartbeat(&orchestrator, &worker);
    let (status, detail) = status(&beat);
    assert_eq!(status, "ok", "{detail}");
    assert!(detail.starts_with("HTTP 200 in ") && detail.ends_with(" ms"), "{detail}");
    worker.assert_secret_absent("pa55word");
    worker.assert_secret_absent("qu3ry-secret");
    worker.assert_token_absent();
}

#[test]
fn refusals_errors_and_stalls_have_their_statuses() {
    let unauthorized = http_server("401 Unauthorized");
    let unavailable = http_server("503 Service Unavailable");
    let stalled = TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_port = stalled.local_addr().unwrap().port();
    let refused_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cases = [
        (format!("http://127.0.0.1:{unauthorized}/"), "auth_failed", "HTTP 401 in "),
        (format!("http://127.0.0.1:{unavailable}/"), "degraded", "HTTP 503 in "),
        (format!("http://127.0.0.1:{stalled_port}/"), "unreachable", "timed out after 1 s"),
        (format!("http://127.0.0.1:{refused_port}/"), "unreachable", "connect refused"),
        (format!("tcp://127.0.0.1:{refused_port}"), "unreachable", "connect refused"),
    ];
    // One orchestrator per case, all running at once.
    let running: Vec<_> = cases
        .iter()
        .map(|(url, _, _)| {
            let orchestrator = start_orchestrator();
            let worker = worker(&orchestrator, Some(url));
            (orchestrator, worker)
        })
        .collect();
    for ((url, want_status, want_detail), (orchestrator, worker)) in cases.iter().zip(&running) {
        let beat = probed_heartbeat(orchestrator, worker);
        let (status, detail) = status(&beat);
        assert_eq!(status, *want_status, "{url}: {detail}");
        assert!(detail.starts_with(want_detail), "{url}: {detail}");
    }
    drop(stalled);
}

#[test]
fn an_untrusted_certificate_is_tls_failed() {
    // Any TLS server will do: a wss:// orchestrator with a certificate from a CA the worker does not trust.
    let ca = TestCa::new();
    let config = OrchestratorConfig {
        tls: Some(TlsIdentity { cert_chain_pem: ca.cert_pem.clone(), key_pem: ca.key_pem.clone() }),
        ..OrchestratorConfig::with_token(TEST_TOKEN)
    };
    let untrusted = block_on(Orchestrator::start(config)).expect("start a TLS server");
    let port = untrusted.ws_addr().port();
    let orchestrator = start_orchestrator();
    let worker = worker(&orchestrator, Some(&format!("https://localhost:{port}/")));
    let beat = probed_heartbeat(&orchestrator, &worker);
    assert_eq!(status(&beat), ("tls_failed", "TLS: certificate not trusted"));
}

#[test]
fn the_orchestrators_gateway_is_probed_unless_the_owner_named_one() {
    let port = http_server("200 OK");
    let refused_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let orchestrator = orchestrator_with(Some(format!("http://127.0.0.1:{port}/v2/")));
    let offered = worker(&orchestrator, None);
    let beat = probed_heartbeat(&orchestrator, &offered);
    assert_eq!(status(&beat).0, "ok", "{beat:?}");
    drop(offered);

    // The owner's GATEWAY_URL wins: its refused port, not the orchestrator's answering server.
    let orchestrator = orchestrator_with(Some(format!("http://127.0.0.1:{port}/v2/")));
    let owned = worker(&orchestrator, Some(&format!("tcp://127.0.0.1:{refused_port}")));
    let beat = probed_heartbeat(&orchestrator, &owned);
    assert_eq!(status(&beat), ("unreachable", "connect refused"));
}
