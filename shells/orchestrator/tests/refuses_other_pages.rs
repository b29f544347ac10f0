//! The HTTP endpoint and the console WebSocket are closed to other pages
//! (`console/API.md` § 2): a cross-origin `text/plain` POST (what any web page
//! can send without a preflight) is refused and never reaches the worker; a
//! WebSocket from another origin, or without the key, is refused; a foreign
//! `Host` (DNS rebinding) is refused; the right request works; the secret is
//! never in an answer or an event.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use async_net::TcpStream;
use async_tungstenite::tungstenite::Error as WsError;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use common::*;
use cropscode_orchestrator::Event;
use futures_lite::StreamExt;

const BODY: &str = r#"{"type":"container.list","params":{}}"#;

fn post(host: &str, extra: &str, content_type: &str) -> String {
    post_body(host, extra, content_type, BODY)
}

fn post_body(host: &str, extra: &str, content_type: &str, body: &str) -> String {
    format!(
        "POST /workers/w-1/commands HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn status_of(addr: SocketAddr, request: &str) -> (u16, String) {
    let response = raw_http(addr, request).await.expect("HTTP exchange");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (status, _) = parse_http(&response).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, text)
}

#[test]
fn a_cross_origin_text_plain_post_never_reaches_the_worker() {
    smol::block_on(async {
        let orchestrator = start_with_http().await;
        let addr = orchestrator.http_addr().unwrap();
        let (mut ws, id) = connect_registered(&orchestrator, "pi-1", Some("w-1")).await;
        assert_eq!(id, "w-1");
        let host = addr.to_string();
        let evil = "Origin: http://evil.example\r\n";
        let bearer = format!("Authorization: Bearer {SECRET}\r\n");

        // What a foreign page's fetch/form sends: its Origin, no key, text/plain.
        let (status, text) = status_of(addr, &post(&host, evil, "text/plain")).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("Connection: close") && !text.contains("Access-Control"), "{text}");
        // Each check on its own: no key (401), then the wrong type (415), even with the key.
        assert_eq!(status_of(addr, &post(&host, "", "text/plain")).await.0, 401);
        let wrong_key = "Authorization: Bearer 0000\r\n";
        assert_eq!(status_of(addr, &post(&host, wrong_key, "application/json")).await.0, 401);
        assert_eq!(status_of(addr, &post(&host, &bearer, "text/plain")).await.0, 415);
        let with_key_and_origin = format!("{evil}{bearer}");
        assert_eq!(status_of(addr, &post(&host, &with_key_and_origin, "application/json")).await.0, 403);
        let null_origin = format!("Origin: null\r\n{bearer}");
        assert_eq!(status_of(addr, &post(&host, &null_origin, "application/json")).await.0, 403);
        // DNS rebinding: the right key and type, but another Host.
        let rebound = format!("evil.example:{}", addr.port());
        assert_eq!(status_of(addr, &post(&rebound, &bearer, "application/json")).await.0, 403);
        let options = format!("OPTIONS /workers/w-1/commands HTTP/1.1\r\nHost: {host}\r\n{evil}\r\n");
        assert_eq!(status_of(addr, &options).await.0, 403);
        let options = format!("OPTIONS /workers/w-1/commands HTTP/1.1\r\nHost: {host}\r\n{bearer}\r\n");
        assert_eq!(status_of(addr, &options).await.0, 405);

        // None of that sent the worker anything.
        let nothing = smol::future::or(async { ws.next().await.map(|m| format!("{m:?}")) }, async {
            smol::Timer::after(Duration::from_millis(300)).await;
            None
        })
        .await;
        assert_eq!(nothing, None, "a refused request reached the worker");
        let commands = orchestrator
            .events()
            .into_iter()
            .filter(|t| matches!(&t.event, Event::Sent { text, .. } if text.contains("container.list")))
            .count();
        assert_eq!(commands, 0);

        // The page's own request works: same origin, the key, JSON.
        let own = format!("Origin: http://127.0.0.1:{}\r\n{bearer}", addr.port());
        let body = r#"{"type":"container.list","params":{},"async":true}"#;
        let request = post_body(&format!("localhost:{}", addr.port()), &own, "application/json; charset=utf-8", body);
        let (status, text) = status_of(addr, &request).await;
        assert_eq!(status, 202, "{text}");
        let command = next_json(&mut ws).await.expect("the command reached the worker");
        assert_eq!(command["type"], "container.list");

        let everything: String = orchestrator.events().iter().map(|t| format!("{:?}", t.event)).collect();
        assert!(!everything.contains(SECRET), "the secret is in an event");
        orchestrator.stop().await;
    });
}

async fn console_upgrade(addr: SocketAddr, origin: Option<&str>, protocols: &str) -> Result<String, WsError> {
    let mut request = format!("ws://{addr}/console/ws").into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    if !protocols.is_empty() {
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocols).unwrap());
    }
    let stream = TcpStream::connect(addr).await?;
    let (_ws, response) = async_tungstenite::client_async(request, stream).await?;
    let protocol = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
    Ok(protocol.unwrap_or_default().to_string())
}

#[test]
fn a_console_websocket_needs_the_pages_origin_and_the_key() {
    smol::block_on(async {
        let orchestrator = start_with_http().await;
        let addr = orchestrator.http_addr().unwrap();
        let key = format!("cropscode-console, key.{SECRET}");
        let own = format!("http://127.0.0.1:{}", addr.port());

        let refused = console_upgrade(addr, Some("http://evil.example"), &key).await.expect_err("foreign origin");
        assert_eq!(refusal_status(&refused), Some(403), "{refused:?}");
        let refused = console_upgrade(addr, Some(&own), "cropscode-console").await.expect_err("no key");
        assert_eq!(refusal_status(&refused), Some(401), "{refused:?}");
        let refused = console_upgrade(addr, Some(&own), "cropscode-console, key.0123").await.expect_err("wrong key");
        assert_eq!(refusal_status(&refused), Some(401), "{refused:?}");

        let protocol = console_upgrade(addr, Some(&own), &key).await.expect("the page's upgrade");
        assert_eq!(protocol, "cropscode-console", "the answer names the protocol and never echoes the key");
        let protocol = console_upgrade(addr, None, &key).await.expect("an upgrade without Origin (a test client)");
        assert_eq!(protocol, "cropscode-console");
        orchestrator.stop().await;
    });
}

#[test]
fn the_page_needs_no_key_but_the_right_host_and_origin() {
    smol::block_on(async {
        let orchestrator = start_with_http().await;
        let addr = orchestrator.http_addr().unwrap();
        let get = |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
        let (status, text) = status_of_any(addr, &get("/", "")).await;
        if cfg!(feature = "console") {
            assert_eq!(status, 200, "{text}");
            assert!(text.contains("Content-Type: text/html; charset=utf-8"), "{text}");
            assert!(text.contains("Content-Security-Policy: default-src 'none'; script-src 'self';"), "{text}");
            let ws = format!("connect-src 'self' ws://127.0.0.1:{0} ws://localhost:{0};", addr.port());
            assert!(text.contains(&ws), "{text}");
            assert!(text.contains("X-Content-Type-Options: nosniff") && text.contains("Cache-Control: no-store"));
            assert!(text.contains("Referrer-Policy: no-referrer"), "{text}");
            let (status, text) = status_of_any(addr, &get("/assets/app.js", "")).await;
            assert_eq!(status, 200);
            assert!(text.contains("Content-Type: text/javascript; charset=utf-8"), "{text}");
            let (status, text) = status_of_any(addr, &get("/assets/xterm.css", "")).await;
            assert_eq!(status, 200);
            assert!(text.contains("Content-Type: text/css; charset=utf-8"), "{text}");
        } else {
            assert_eq!(status, 404, "{text}");
            assert!(text.contains("this build has no console (cargo feature `console`)"), "{text}");
        }
        assert_eq!(status_of_any(addr, &get("/assets/../Cargo.toml", "")).await.0, 404);
        assert_eq!(status_of_any(addr, &get("/assets/nope.js", "")).await.0, 404);
        assert_eq!(status_of_any(addr, &get("/", "Origin: http://evil.example\r\n")).await.0, 403);
        let rebound = format!("GET / HTTP/1.1\r\nHost: evil.example:{}\r\n\r\n", addr.port());
        assert_eq!(status_of_any(addr, &rebound).await.0, 403);
        // Everything else needs the key.
        assert_eq!(status_of_any(addr, &get("/workers", "")).await.0, 401);
        assert_eq!(status_of_any(addr, &get("/events?since=0", "")).await.0, 401);
        orchestrator.stop().await;
    });
}

/// Status and raw text of an answer whose body may not be JSON (the page).
async fn status_of_any(addr: SocketAddr, request: &str) -> (u16, String) {
    let response = raw_http(addr, request).await.expect("HTTP exchange");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}
