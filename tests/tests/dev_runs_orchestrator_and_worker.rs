//! `cropscode dev`, the README's main job: a local orchestrator and a worker connected to
//! it, reachable over the orchestrator's HTTP endpoint, stopped cleanly by SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use cropscode_tests::*;

fn http(port: u16, key: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn dev_starts_an_orchestrator_with_a_registered_worker() {
    let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let mut dev = WorkerSpec::new("").args(&["dev", "--http-port", &port.to_string()]).spawn();
    assert!(dev.wait_for_log("registered", Duration::from_secs(60)), "no registration shown:\n{}", dev.logs());

    // The HTTP endpoint wants the run's key, printed in the console URL's fragment.
    let logs = dev.logs();
    let key =
        logs.split("/#key=").nth(1).map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect::<String>());
    let key = key.unwrap_or_else(|| panic!("no console URL with a key in:\n{logs}"));
    let (status, workers) = http(port, &key, "GET", "/workers", "");
    assert_eq!(status, 200, "{workers}");
    let workers =
        workers.as_array().cloned().unwrap_or_else(|| workers["workers"].as_array().cloned().unwrap_or_default());
    assert_eq!(workers.len(), 1, "one worker registered: {workers:?}");
    let worker_id = workers[0]["workerId"].as_str().expect("workerId").to_string();

    let (status, result) = http(
        port,
        &key,
        "POST",
        &format!("/workers/{worker_id}/commands"),
        r#"{"type":"container.list-all","params":{}}"#,
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["type"], "result", "{result}");
    assert!(result["ok"].is_boolean(), "{result}");

    let status = dev.stop().expect("dev stops on SIGTERM");
    assert!(status.success(), "dev exits cleanly: {status:?}\n{}", dev.logs());
}
