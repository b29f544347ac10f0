//! The loopback HTTP endpoint: list workers, page through events, send a command and
//! get its result frame; malformed and oversized requests get clear errors.

mod common;

use std::net::SocketAddr;

use async_net::TcpStream;
use common::*;
use cropscode_core::protocol::{CommandResult as WireResult, Outgoing};
use cropscode_orchestrator::{Event, Orchestrator};
use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde_json::json;

async fn start_and_address() -> (Orchestrator, SocketAddr) {
    let orchestrator = start_with_http().await;
    let addr = orchestrator.http_addr().expect("http addr");
    assert_eq!(orchestrator.http_url(), Some(format!("http://{addr}")));
    (orchestrator, addr)
}

#[test]
fn workers_events_and_commands_over_http() {
    smol::block_on(async {
        let (orchestrator, http_addr) = start_and_address().await;
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", None).await;

        let (status, workers) = http(http_addr, "GET", "/workers", None).await.expect("GET /workers");
        assert_eq!(status, 200);
        assert_eq!(workers[0]["workerId"], id.as_str());
        assert_eq!(workers[0]["register"]["name"], "pi-1");

        // The written `worker.registered` is recorded (as `sent`) once the write returned.
        orchestrator.wait_for(|e| matches!(e, Event::Sent { .. }), WAIT).await.expect("sent event");
        let (status, page) = http(http_addr, "GET", "/events?since=0", None).await.expect("GET /events");
        assert_eq!(status, 200);
        let kinds: Vec<&str> =
            page["events"].as_array().unwrap().iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["upgrade", "frame", "registered", "sent"]);
        assert_eq!(page["events"][2]["event"]["workerId"], id.as_str());
        assert_eq!(page["events"][3]["event"]["workerId"], id.as_str());
        assert_eq!(page["events"][3]["summary"], format!("sent to {id}: worker.registered"));
        let next = page["next"].as_u64().expect("next");
        assert_eq!(next, 4);
        let (_, empty) = http(http_addr, "GET", &format!("/events?since={next}"), None).await.unwrap();
        assert_eq!((empty["events"].as_array().map(Vec::len), empty["next"].as_u64()), (Some(0), Some(next)));

        let body = json!({ "type": "container.list", "params": { "all": true }, "timeoutMs": 10_000 }).to_string();
        let path = format!("/workers/{id}/commands");
        let request = http(http_addr, "POST", &path, Some(&body));
        let worker = async {
            let command = next_json(&mut ws).await.expect("command");
            assert_eq!(
                (command["type"].as_str(), &command["params"]),
                (Some("container.list"), &json!({ "all": true }))
            );
            let cid = command["id"].as_str().unwrap().to_string();
            let answer = WireResult::from_outcome(cid, Ok(json!({ "containers": [] })));
            ws.send(frame(Outgoing::Result(answer))).await.unwrap();
        };
        let (response, ()) = zip(request, worker).await;
        let (status, result) = response.expect("POST command");
        assert_eq!(status, 200, "{result}");
        assert_eq!((result["type"].as_str(), result["ok"].as_bool()), (Some("result"), Some(true)));
        assert_eq!(result["result"], json!({ "containers": [] }));

        let body = json!({ "type": "container.list", "timeoutMs": 100 }).to_string();
        let (status, _) = http(http_addr, "POST", &format!("/workers/{id}/commands"), Some(&body)).await.unwrap();
        assert_eq!(status, 504, "no answer within timeoutMs");
        orchestrator.stop().await;
    });
}

#[test]
fn bad_requests_get_clear_errors() {
    smol::block_on(async {
        let (orchestrator, http_addr) = start_and_address().await;
        let body = json!({ "type": "container.list" }).to_string();
        let (status, error) = http(http_addr, "POST", "/workers/w-404/commands", Some(&body)).await.unwrap();
        assert_eq!(status, 404);
        assert!(error["error"].as_str().unwrap().contains("w-404"), "{error}");
        assert_eq!(http(http_addr, "POST", "/workers/w-1/commands", Some("[1]")).await.unwrap().0, 400);
        assert_eq!(http(http_addr, "GET", "/nowhere", None).await.unwrap().0, 404);
        assert_eq!(http(http_addr, "DELETE", "/workers", None).await.unwrap().0, 405);
        assert_eq!(http(http_addr, "GET", "/events?since=x", None).await.unwrap().0, 400);

        // A body over 1 MiB is refused from its Content-Length, without reading it.
        let mut stream = TcpStream::connect(http_addr).await.unwrap();
        let head =
            format!("POST /workers/w-1/commands HTTP/1.1\r\nHost: {http_addr}\r\nContent-Length: 2000000\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        assert_eq!(parse_http(&response).unwrap().0, 413);

        // Headers over 16 KiB.
        let mut stream = TcpStream::connect(http_addr).await.unwrap();
        let padding = "a".repeat(20 * 1024);
        let _ = stream.write_all(format!("GET /workers HTTP/1.1\r\nX-Pad: {padding}\r\n\r\n").as_bytes()).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        assert_eq!(parse_http(&response).unwrap().0, 431);
        orchestrator.stop().await;
    });
}
