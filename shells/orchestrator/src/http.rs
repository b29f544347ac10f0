//! A tiny HTTP/1.1 JSON endpoint on loopback, so a person (or a script) can
//! see workers and events and send commands with `curl` (see `README.md`).
//!
//! Deliberately minimal and bounded: one request per connection
//! (`Connection: close`), request line + headers ≤ 16 KiB, a body only with
//! `Content-Length` and ≤ 1 MiB, 10 s to send the request, at most 32
//! connections at once.
//!
//! - `GET /workers` → the connected, registered workers;
//! - `GET /events?since=N` → events with `seq >= N` (at most 1000, ~4 MiB) and the `next` cursor;
//! - `POST /workers/{id}/commands` with `{"type", "params", "timeoutMs", "id"?}` → the result frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_net::{Shutdown, TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use serde_json::{Value, json};
use smol::Timer;

use crate::error::OrchestratorError;
use crate::event::{Event, TimedEvent, print_summary};
use crate::shared::{Shared, with_timeout};

const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_CONNECTIONS: usize = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 30_000;
const MAX_COMMAND_TIMEOUT_MS: u64 = 10 * 60 * 1000;
const MAX_EVENTS_PER_RESPONSE: usize = 1000;
const EVENT_RESPONSE_BUDGET_BYTES: usize = 4 * 1024 * 1024;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Slot::take(&active);
        let task = smol::spawn(serve(shared.clone(), stream, slot));
        shared.keep_task(task);
    }
}

/// One of the `MAX_CONNECTIONS` places; `busy` when none was free.
struct Slot {
    active: Arc<AtomicUsize>,
    busy: bool,
}

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        let before = active.fetch_add(1, Ordering::SeqCst);
        Slot { active: active.clone(), busy: before >= MAX_CONNECTIONS }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply { status, body: json!({ "error": message.into() }) }
    }
}

async fn serve(shared: Arc<Shared>, mut stream: TcpStream, slot: Slot) {
    let reply = if slot.busy {
        Reply::error(503, "too many connections")
    } else {
        match with_timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
            None => Reply::error(408, "the request took too long"),
            Some(Err(reply)) => reply,
            Some(Ok(request)) => route(&shared, request).await,
        }
    };
    let body = reply.body.to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        body.len() + 1
    );
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.write_all(b"\n").await?;
        stream.flush().await
    };
    if with_timeout(REQUEST_TIMEOUT, written).await.is_none() {
        return;
    }
    // Half-close, then drain what the client still sends (e.g. a refused body):
    // closing with unread data would reset the connection and could lose the reply.
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = with_timeout(Duration::from_secs(1), async {
        let mut drained = 0;
        while drained < MAX_BODY_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, Reply> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Reply::error(431, "request line and headers exceed 16 KiB"));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| Reply::error(400, format!("read error: {e}")))?;
        if n == 0 {
            return Err(Reply::error(400, "incomplete request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD_BYTES {
        return Err(Reply::error(431, "request line and headers exceed 16 KiB"));
    }
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Reply::error(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (request_line.next(), request_line.next(), request_line.next(), request_line.next())
    else {
        return Err(Reply::error(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Reply::error(505, "HTTP/1.x only"));
    }
    let mut content_length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Reply::error(400, "malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| Reply::error(400, "bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Reply::error(501, "only Content-Length bodies are supported"));
        }
    }
    if content_length > MAX_BODY_BYTES {
        return Err(Reply::error(413, "the body exceeds 1 MiB"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < content_length {
        let n = stream.read(&mut chunk).await.map_err(|e| Reply::error(400, format!("read error: {e}")))?;
        if n == 0 {
            return Err(Reply::error(400, "the body is shorter than Content-Length"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(content_length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request { method: method.to_string(), path: path.to_string(), query: query.to_string(), body })
}

async fn route(shared: &Shared, request: Request) -> Reply {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["workers"]) => Reply::ok(workers_json(shared)),
        ("GET", ["events"]) => match query_u64(&request.query, "since") {
            Ok(since) => Reply::ok(events_json(shared, since.unwrap_or(0))),
            Err(reply) => reply,
        },
        ("POST", ["workers", id, "commands"]) => match percent_decode(id) {
            Some(worker_id) => command(shared, &worker_id, &request.body).await,
            None => Reply::error(400, "bad percent-encoding in the worker id"),
        },
        (_, ["workers"] | ["events"] | ["workers", _, "commands"]) => Reply::error(405, "method not allowed"),
        _ => Reply::error(404, "no such endpoint; try GET /workers, GET /events?since=0, POST /workers/{id}/commands"),
    }
}

async fn command(shared: &Shared, worker_id: &str, body: &[u8]) -> Reply {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Reply::error(400, "the body must be a JSON object {\"type\", \"params\", \"timeoutMs\"}");
    };
    let Some(kind) = request.get("type").and_then(Value::as_str) else {
        return Reply::error(400, "missing string `type`");
    };
    let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
    let timeout_ms = match request.get("timeoutMs") {
        None => DEFAULT_COMMAND_TIMEOUT_MS,
        Some(value) => match value.as_u64() {
            Some(ms) => ms.min(MAX_COMMAND_TIMEOUT_MS),
            None => return Reply::error(400, "`timeoutMs` must be a non-negative integer"),
        },
    };
    let timeout = Duration::from_millis(timeout_ms);
    let outcome = match request.get("id") {
        None => shared.command(worker_id, kind, params, timeout).await,
        Some(Value::String(id)) => shared.command_with_id(worker_id, id, kind, params, timeout).await,
        Some(_) => return Reply::error(400, "`id` must be a string"),
    };
    match outcome {
        Ok(result) => {
            let mut frame = json!({ "type": "result" });
            if let (Value::Object(frame), Ok(Value::Object(fields))) = (&mut frame, serde_json::to_value(&result)) {
                frame.extend(fields);
            }
            Reply::ok(frame)
        }
        Err(error @ OrchestratorError::UnknownWorker(_)) => Reply::error(404, error.to_string()),
        Err(error @ OrchestratorError::Timeout) => Reply::error(504, error.to_string()),
        Err(error) => Reply::error(503, error.to_string()),
    }
}

fn workers_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let workers: Vec<Value> = shared
        .workers()
        .into_iter()
        .map(|w| {
            json!({
                "workerId": w.worker_id,
                "connection": w.connection,
                "register": w.register,
                "lastHeartbeat": w.last_heartbeat,
                "lastHeartbeatAgoMs": w.last_heartbeat_at.map(|at| millis(now - at)),
                "connectedForMs": millis(now - w.connected_at),
                "registeredForMs": millis(now - w.registered_at),
            })
        })
        .collect();
    Value::Array(workers)
}

fn events_json(shared: &Shared, since: u64) -> Value {
    let (events, next_seq) = shared.events_since(since, MAX_EVENTS_PER_RESPONSE);
    let mut budget = EVENT_RESPONSE_BUDGET_BYTES;
    let mut listed = Vec::with_capacity(events.len());
    let mut next = next_seq;
    for timed in events {
        let size = match &timed.event {
            Event::Frame { text, .. } => text.len(),
            _ => 64,
        };
        if !listed.is_empty() && size > budget {
            next = timed.seq;
            break;
        }
        budget = budget.saturating_sub(size);
        next = timed.seq + 1;
        listed.push(event_json(shared, &timed));
    }
    if listed.is_empty() {
        next = next_seq;
    }
    json!({ "events": listed, "next": next })
}

fn event_json(shared: &Shared, timed: &TimedEvent) -> Value {
    let event = match &timed.event {
        Event::Upgrade { authorized, token_in_url } => {
            json!({ "kind": "upgrade", "authorized": authorized, "tokenInUrl": token_in_url })
        }
        Event::Registered { connection, worker_id, register } => {
            json!({ "kind": "registered", "connection": connection, "workerId": worker_id, "register": register })
        }
        Event::Heartbeat { connection, worker_id, heartbeat } => {
            json!({ "kind": "heartbeat", "connection": connection, "workerId": worker_id, "heartbeat": heartbeat })
        }
        Event::Frame { connection, text } => json!({ "kind": "frame", "connection": connection, "text": text }),
        Event::Binary { connection, bytes } => {
            json!({ "kind": "binary", "connection": connection, "len": bytes.len() })
        }
        Event::Disconnected { connection } => json!({ "kind": "disconnected", "connection": connection }),
    };
    let at_ms = millis(timed.at.saturating_duration_since(shared.started_at));
    json!({ "seq": timed.seq, "atMs": at_ms, "summary": print_summary(&timed.event), "event": event })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn query_u64(query: &str, key: &str) -> Result<Option<u64>, Reply> {
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && name == key
        {
            return value.parse().map(Some).map_err(|_| Reply::error(400, format!("`{key}` must be an integer")));
        }
    }
    Ok(None)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("w-1").as_deref(), Some("w-1"));
        assert_eq!(percent_decode("pi%20kitchen").as_deref(), Some("pi kitchen"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }

    #[test]
    fn reads_query_integers() {
        assert_eq!(query_u64("since=5", "since").ok().flatten(), Some(5));
        assert_eq!(query_u64("a=1&since=7", "since").ok().flatten(), Some(7));
        assert_eq!(query_u64("", "since").ok().flatten(), None);
        assert!(query_u64("since=x", "since").is_err());
    }
}
