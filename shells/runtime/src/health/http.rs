//! The optional health listener: a tiny HTTP/1.1 server for probes and scrapers.
//!
//! - `GET /healthz`: `200 ok` while the loop pulse is fresh, else `503` (the process
//!   lives but its loop does not turn);
//! - `GET /readyz`: `200` while registered with the orchestrator and (when the agent
//!   has an engine check) the engine answered within [`ENGINE_FRESH`](super::ENGINE_FRESH);
//!   else `503` with `{"ready": false, "reason": "…"}`;
//! - `GET /metrics`: Prometheus text format ([`Health::metrics`]).
//!
//! Bounded like the local orchestrator's endpoint, smaller: one request per
//! connection (`Connection: close`), a request head of at most 8 KiB and no body,
//! 5 s to send it and 5 s to take the reply, at most [`MAX_CONNECTIONS`] at once
//! (more are answered `503` at once). It listens on loopback unless the owner
//! allowed another address ([`is_allowed`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use serde_json::json;

use super::Health;

/// Longest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Time to send the request, and again to take the reply.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the listener may bind `addr`: loopback always, anything else only when
/// the owner said so (`HEALTH_ALLOW_REMOTE=1`): the metrics tell what the machine runs.
pub fn is_allowed(addr: SocketAddr, allow_remote: bool) -> bool {
    allow_remote || addr.ip().is_loopback()
}

/// Serves `listener` until the future is dropped.
pub async fn serve(health: Arc<Health>, listener: TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "accepting a health connection failed");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let busy = active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS;
        let (health, active) = (health.clone(), active.clone());
        smol::spawn(async move {
            answer(&health, stream, busy).await;
            active.fetch_sub(1, Ordering::SeqCst);
        })
        .detach();
    }
}

async fn answer(health: &Health, mut stream: TcpStream, busy: bool) {
    let (status, kind, body) = if busy {
        (503, "text/plain", "too many connections\n".to_owned())
    } else {
        match timeout(IO_TIMEOUT, read_head(&mut stream)).await {
            None => (408, "text/plain", "the request took too long\n".into()),
            Some(Err((status, why))) => (status, "text/plain", format!("{why}\n")),
            Some(Ok((method, path))) => route(health, &method, &path),
        }
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = timeout(IO_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.flush().await
    })
    .await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn route(health: &Health, method: &str, path: &str) -> (u16, &'static str, String) {
    if method != "GET" {
        return (405, "text/plain", "GET only\n".into());
    }
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match path {
        "/healthz" if health.is_alive() => (200, "text/plain", "ok\n".into()),
        "/healthz" => (503, "text/plain", "the agent's loop has stopped turning\n".into()),
        "/readyz" => match health.readiness() {
            Ok(()) => (200, "application/json", format!("{}\n", json!({ "ready": true }))),
            Err(reason) => (503, "application/json", format!("{}\n", json!({ "ready": false, "reason": reason }))),
        },
        "/metrics" => (200, "text/plain; version=0.0.4; charset=utf-8", health.metrics()),
        _ => (404, "text/plain", "not found: /healthz, /readyz, /metrics\n".into()),
    }
}

/// The method and target of one request; the headers are read and ignored.
async fn read_head(stream: &mut TcpStream) -> Result<(String, String), (u16, &'static str)> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err((431, "the request head exceeds 8 KiB"));
        }
        let n = stream.read(&mut chunk).await.map_err(|_| (400, "read error"))?;
        if n == 0 {
            return Err((400, "incomplete request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if end > MAX_HEAD_BYTES {
        return Err((431, "the request head exceeds 8 KiB"));
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| (400, "the request head is not UTF-8"))?;
    let line = head.split("\r\n").next().unwrap_or_default();
    match line.split(' ').collect::<Vec<_>>().as_slice() {
        [method, target, version] if version.starts_with("HTTP/1.") => Ok((method.to_string(), target.to_string())),
        _ => Err((400, "malformed request line")),
    }
}

async fn timeout<T>(after: Duration, work: impl Future<Output = T>) -> Option<T> {
    async { Some(work.await) }
        .or(async {
            smol::Timer::after(after).await;
            None
        })
        .await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn endpoints_answer_and_bounds_hold() {
        let health = Health::new(crate::SmolClock::new(), Duration::from_secs(40), "9.9.9");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = TcpListener::try_from(listener).unwrap();
        let _task = smol::spawn(serve(health.clone(), listener));
        let reply = get(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        let reply = get(addr, "GET /readyz HTTP/1.1\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
        assert!(reply.contains("not registered"), "{reply}");
        health.observe_event(&cropscode_core::Event::Registered { worker_id: "w-1".into(), gateway: None });
        assert!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
        let metrics = get(addr, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(metrics.contains("cropscode_build_info{version=\"9.9.9\"} 1"), "{metrics}");
        assert!(metrics.contains("cropscode_connection_state{state=\"registered\"} 1"), "{metrics}");
        let big = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert!(get(addr, &big).starts_with("HTTP/1.1 431 "));
        assert!(get(addr, "POST /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    }

    #[test]
    fn only_loopback_unless_allowed() {
        assert!(is_allowed("127.0.0.1:9".parse().unwrap(), false));
        assert!(is_allowed("[::1]:9".parse().unwrap(), false));
        assert!(!is_allowed("0.0.0.0:9".parse().unwrap(), false));
        assert!(is_allowed("0.0.0.0:9".parse().unwrap(), true));
    }
}
