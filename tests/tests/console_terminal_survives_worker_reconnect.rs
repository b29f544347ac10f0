//! The console's terminal relay (`shells/orchestrator/console/API.md` § 5) end to end: a
//! client speaking the browser's side of `/console/ws` opens a shell in a real container
//! through a real worker, reads `42` back, and keeps reading a numbered sequence while every
//! worker connection is dropped (the test hook): the relay re-attaches the session when the
//! worker is back, and the bytes the browser gets are exactly the shell's output, with
//! consecutive offsets, no `lost`, nothing repeated. Input sent after the reconnect still
//! works, and `close` ends the terminal.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::{Duration, Instant};

use async_net::TcpStream;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use cropscode_tests::orchestrator::{Orchestrator, OrchestratorConfig};
use cropscode_tests::*;
use futures_lite::StreamExt;
use serde_json::{Value, json};

const KEY: &str = "c0501e5ec2e7c0501e5ec2e7c0501e5ec2e7c0501e5ec2e7c0501e5ec2e70001";
const WAIT: Duration = Duration::from_secs(60);
const LINES: usize = 1500;
const TERM: &str = "t-00c0ffee00c0ffee";

/// Replaces the run's orchestrator by one on the same WebSocket address with the HTTP
/// endpoint, a known key and the test hooks; waits for the worker to register with it.
fn with_console(t: &mut EngineRun) -> SocketAddr {
    let addr = t.orchestrator.ws_addr();
    block_on(t.orchestrator.stop());
    let config = OrchestratorConfig {
        ws_addr: addr,
        http_addr: Some("127.0.0.1:0".parse().expect("address")),
        http_secret: Some(KEY.into()),
        test_hooks: true,
        ..OrchestratorConfig::with_token(TEST_TOKEN)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    t.orchestrator = loop {
        match block_on(Orchestrator::start(config.clone())) {
            Ok(o) => break o,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot restart the orchestrator on {addr}: {e}"),
        }
    };
    wait_registered(&t.orchestrator, None, Duration::from_secs(30)).expect("the worker registers again");
    t.orchestrator.http_addr().expect("http address")
}

/// `POST path` with the key; the status and the JSON answer.
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, Value) {
    let mut stream = StdTcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The browser's side of one terminal: every `data` must start exactly where the last ended.
struct Browser {
    ws: WebSocketStream<TcpStream>,
    output: Vec<u8>,
    input_offset: u64,
    seen: Vec<Value>,
}

impl Browser {
    async fn connect(addr: SocketAddr) -> Browser {
        let mut request = format!("ws://{addr}/console/ws").into_client_request().expect("request");
        let protocols = HeaderValue::from_str(&format!("cropscode-console, key.{KEY}")).expect("header");
        request.headers_mut().insert("sec-websocket-protocol", protocols);
        let origin = HeaderValue::from_str(&format!("http://127.0.0.1:{}", addr.port())).expect("header");
        request.headers_mut().insert("origin", origin);
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (ws, _) = async_tungstenite::client_async(request, stream).await.expect("console upgrade");
        Browser { ws, output: Vec::new(), input_offset: 0, seen: Vec::new() }
    }

    async fn send(&mut self, message: Value) {
        self.ws.send(Message::text(message.to_string())).await.expect("send");
    }

    async fn input(&mut self, text: &str) {
        let offset = self.input_offset;
        self.send(json!({ "op": "input", "term": TERM, "offset": offset, "data": text })).await;
        self.input_offset += text.len() as u64;
    }

    /// The next message that is not `data` (which is appended to `output`, strictly in order).
    async fn next_control(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let next = smol::future::or(async { self.ws.next().await }, async {
                smol::Timer::at(deadline).await;
                None
            })
            .await?;
            let text = match next {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(e) => panic!("the console socket broke: {e}"),
            };
            let message: Value = serde_json::from_str(text.as_str()).expect("JSON message");
            if message["op"] == "data" {
                let offset = message["offset"].as_u64().expect("offset");
                assert_eq!(offset, self.output.len() as u64, "data must follow on exactly (no gap, no repeat)");
                self.output.extend(base64_decode(message["data"].as_str().expect("data")));
                continue;
            }
            assert_ne!(message["op"], "lost", "no output may be lost: {message}");
            self.seen.push(message.clone());
            return Some(message);
        }
    }

    async fn expect(&mut self, op: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        while let Some(message) = self.next_control(deadline).await {
            if message["op"] == op {
                return message;
            }
            assert_ne!(message["op"], "error", "{message}");
        }
        panic!("no `{op}` within {WAIT:?}; saw {:?}\noutput:\n{}", self.seen, self.text());
    }

    async fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.text().contains(needle) {
            let poll = Instant::now() + Duration::from_millis(50);
            if let Some(message) = self.next_control(poll.min(deadline)).await {
                assert_ne!(message["op"], "error", "{message}");
                assert_ne!(message["op"], "end", "{message}");
            }
            assert!(Instant::now() < deadline, "no {needle:?} within {WAIT:?} in:\n{}", self.text());
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

fn survives(t: &mut EngineRun) {
    let tenant = t.tenant("console");
    let id = t.create_running("console", &tenant);
    let http = with_console(t);
    let worker = t.worker_id.clone();
    block_on(async {
        let mut browser = Browser::connect(http).await;
        let open = json!({ "op": "open", "term": TERM, "worker": worker, "containerId": id, "tenant": tenant,
            "cols": 100, "rows": 30, "env": { "PS1": "prompt> " } });
        browser.send(open).await;
        let opened = browser.expect("opened").await;
        assert_eq!((opened["resumed"].as_bool(), opened["offset"].as_u64()), (Some(false), Some(0)), "{opened}");
        browser.wait_for("prompt> ").await;
        browser.input("echo $((6*7))\r").await;
        browser.wait_for("\r\n42\r\n").await;
        browser.input("stty size\r").await;
        browser.wait_for("30 100\r\n").await;

        let script =
            format!("i=0; while [ $i -lt {LINES} ]; do echo n-$i; i=$((i+1)); usleep 3000; done; echo DONE-$((2+3))\r");
        browser.input(&script).await;
        browser.wait_for("n-200\r\n").await;
        let (status, dropped) = post(http, "/test/drop-worker-connections", "{}");
        assert_eq!((status, &dropped), (200, &json!({ "dropped": 1 })));
        assert!(!browser.text().contains("DONE-5"), "the drop came too late to test anything");
        let reattaching = browser.expect("reattaching").await;
        assert_eq!(reattaching["term"], TERM);
        let resumed = browser.expect("opened").await;
        assert_eq!(resumed["resumed"], true, "{resumed}");
        assert_eq!(resumed["sessionId"], opened["sessionId"], "the same session, re-attached");
        assert_eq!(resumed["inputOffset"].as_u64(), Some(browser.input_offset), "{resumed}");
        browser.wait_for("DONE-5").await;

        let text = browser.text();
        let numbers: Vec<usize> =
            text.split("\r\n").filter_map(|line| line.strip_prefix("n-")).filter_map(|n| n.parse().ok()).collect();
        assert_eq!(numbers, (0..LINES).collect::<Vec<_>>(), "every line exactly once, in order");

        // Input after the reconnect goes on at its offsets.
        browser.input("echo after-$((3*3))\r").await;
        browser.wait_for("after-9\r\n").await;

        browser.send(json!({ "op": "close", "term": TERM })).await;
        let end = browser.expect("end").await;
        assert_eq!(end["reason"], "closed", "{end}");
        let output_len = browser.output.len();
        browser.send(json!({ "op": "attach", "term": TERM, "offset": output_len })).await;
        let gone = browser.expect("error").await;
        assert_eq!(gone["code"], "not_found", "the terminal is gone after its end: {gone}");
    });
}

#[test]
fn docker() {
    let mut run = EngineRun::start(EngineName::Docker, "console");
    survives(&mut run);
}

#[test]
fn podman() {
    let mut run = EngineRun::start(EngineName::Podman, "console");
    survives(&mut run);
}
