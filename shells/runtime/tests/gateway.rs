//! Gateway probes against real loopback servers: each answer, stall, refusal
//! and TLS failure gives its documented status and detail.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cropscode_core::protocol::GatewayStatus;
use cropscode_runtime::{GatewayReading, GatewayUrl, probe_gateway};

const TIMEOUT: Duration = Duration::from_secs(2);

/// A plain HTTP server answering every request with `status`; returns its
/// port and the requests it received.
fn http_server(status: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            seen.lock().unwrap().push(read_head(&mut tcp));
            let _ = write!(tcp, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, requests)
}

fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn probe(url: &str, ca_file: Option<&std::path::Path>) -> GatewayReading {
    let url = GatewayUrl::parse(url).unwrap();
    smol::block_on(probe_gateway(&url, ca_file, TIMEOUT)).unwrap()
}

fn assert_reading(reading: &GatewayReading, status: GatewayStatus, detail_starts: &str) {
    assert_eq!(reading.status, status, "{reading:?}");
    assert!(reading.detail.starts_with(detail_starts), "{reading:?}");
}

#[test]
fn an_answering_server_is_ok_and_gets_no_credentials() {
    let (port, requests) = http_server("200 OK");
    let reading = probe(&format!("http://probe:pa55word@127.0.0.1:{port}/health?key=s3cret"), None);
    assert_reading(&reading, GatewayStatus::Ok, "HTTP 200 in ");
    assert!(reading.detail.ends_with(" ms"), "{reading:?}");
    let request = requests.lock().unwrap()[0].clone();
    assert!(request.starts_with("GET /health?key=s3cret HTTP/1.1\r\n"), "{request}");
    assert!(request.contains(&format!("Host: 127.0.0.1:{port}\r\n")), "{request}");
    let lower = request.to_ascii_lowercase();
    assert!(!lower.contains("authorization") && !lower.contains("pa55word") && !lower.contains("cookie"), "{request}");
}

#[test]
fn a_401_is_auth_failed_and_a_503_degraded() {
    let (port, _) = http_server("401 Unauthorized");
    assert_reading(&probe(&format!("http://127.0.0.1:{port}/"), None), GatewayStatus::AuthFailed, "HTTP 401 in ");
    let (port, _) = http_server("403 Forbidden");
    assert_reading(&probe(&format!("http://127.0.0.1:{port}/"), None), GatewayStatus::AuthFailed, "HTTP 403 in ");
    let (port, _) = http_server("503 Service Unavailable");
    assert_reading(&probe(&format!("http://127.0.0.1:{port}/"), None), GatewayStatus::Degraded, "HTTP 503 in ");
}

#[test]
fn a_stalled_server_times_out_and_a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts (the kernel's backlog does) and never answers.
    let started = std::time::Instant::now();
    let reading = probe(&format!("http://127.0.0.1:{port}/"), None);
    assert_eq!(reading, GatewayReading { status: GatewayStatus::Unreachable, detail: "timed out after 2 s".into() });
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1), "bounded: {:?}", started.elapsed());
    drop(listener);
    let reading = probe(&format!("http://127.0.0.1:{port}/"), None);
    assert_eq!(reading, GatewayReading { status: GatewayStatus::Unreachable, detail: "connect refused".into() });
    let reading = probe(&format!("tcp://127.0.0.1:{port}"), None);
    assert_eq!(reading.detail, "connect refused");
}

#[test]
fn tcp_gateways_are_ok_once_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_reading(&probe(&format!("tcp://127.0.0.1:{port}"), None), GatewayStatus::Ok, "connected in ");
}

#[test]
fn a_server_that_is_not_http_is_degraded() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let _ = tcp.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        }
    });
    let reading = probe(&format!("http://127.0.0.1:{port}/"), None);
    assert_eq!(reading, GatewayReading { status: GatewayStatus::Degraded, detail: "not an HTTP response".into() });
}

/// An HTTPS server (certificate from the test CA) answering 200.
fn https_server(server: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let server = server.clone();
            std::thread::spawn(move || {
                let Ok(connection) = rustls::ServerConnection::new(server) else { return };
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                read_head(&mut tls);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = tls.flush();
            });
        }
    });
    port
}

#[test]
fn https_trusts_what_the_orchestrator_connection_trusts() {
    let pki = support::test_pki();
    let port = https_server(pki.server.clone());
    let url = format!("https://localhost:{port}/health");
    // Not among the webpki roots: refused.
    let reading = probe(&url, None);
    assert_eq!(
        reading,
        GatewayReading { status: GatewayStatus::TlsFailed, detail: "TLS: certificate not trusted".into() }
    );
    // Trusted through ORCHESTRATOR_CA_FILE's roots.
    assert_reading(&probe(&url, Some(&pki.ca_file)), GatewayStatus::Ok, "HTTP 200 in ");
}
