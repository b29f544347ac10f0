//! Helpers shared by the stream tests (`terminal_*`, `display_*`,
//! `background_exec_*`): a stream's two directions as the orchestrator sees
//! them — binary frames sent with `send_binary`, output collected from the
//! orchestrator's `Binary` events and checked for contiguous offsets.
#![allow(dead_code)] // each test file uses a different part

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cropscode_core::protocol::binary::{Channel, StreamFrame, StreamKind};
use cropscode_tests::orchestrator::{CommandAnswer, Event, Orchestrator};
use cropscode_tests::{COMMAND_TIMEOUT, block_on};
use serde_json::{Value, json};

/// A command id no orchestrator of this process used before: a restarted
/// orchestrator numbers its own ids from `c-1` again, which the worker would
/// rightly take for re-sends of the first orchestrator's commands.
pub fn unique_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("s-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn command(orchestrator: &Orchestrator, worker_id: &str, kind: &str, params: Value) -> CommandAnswer {
    let sent = params.to_string();
    block_on(orchestrator.command_with_id(worker_id, &unique_id(), kind, params, COMMAND_TIMEOUT))
        .unwrap_or_else(|e| panic!("{kind} {sent}: no result ({e:?})"))
}

/// Sends a command through `orchestrator` (with a [`unique_id`]) and returns its successful result.
pub fn ok(orchestrator: &Orchestrator, worker_id: &str, kind: &str, params: Value) -> Value {
    let sent = params.to_string();
    let answer = command(orchestrator, worker_id, kind, params);
    match answer.outcome() {
        Ok(value) => value.clone(),
        Err(e) => panic!("{kind} {sent} failed: {} {}", e.code, e.message),
    }
}

/// Sends a command that must fail; returns its error code and message.
pub fn fails(orchestrator: &Orchestrator, worker_id: &str, kind: &str, params: Value) -> (String, String) {
    let sent = params.to_string();
    let answer = command(orchestrator, worker_id, kind, params);
    match answer.outcome() {
        Ok(value) => panic!("{kind} {sent} succeeded with {value}"),
        Err(e) => (e.code.as_str().to_string(), e.message.clone()),
    }
}

/// One terminal or display as the orchestrator sees it.
pub struct Stream<'a> {
    pub orchestrator: &'a Orchestrator,
    pub worker_id: String,
    pub session_id: String,
    pub channel: u32,
    /// Event log position read up to.
    cursor: u64,
    /// Output received, starting at output offset `base`.
    pub output: Vec<u8>,
    pub base: u64,
    /// Next input offset.
    pub input_offset: u64,
    /// The end frame: total output and its JSON payload.
    pub end: Option<(u64, Value)>,
    /// Frames received, with when.
    pub frames: Vec<(Instant, usize)>,
}

impl<'a> Stream<'a> {
    /// A view of the stream of an open (or re-attach) result, reading output from `offset`.
    pub fn attach(orchestrator: &'a Orchestrator, worker_id: &str, result: &Value) -> Stream<'a> {
        let offset = result["offset"].as_u64().unwrap_or(0);
        Stream {
            orchestrator,
            worker_id: worker_id.to_string(),
            session_id: result["sessionId"].as_str().expect("sessionId").to_string(),
            channel: result["channel"].as_u64().expect("channel") as u32,
            cursor: 0,
            output: Vec::new(),
            base: offset,
            input_offset: 0,
            end: None,
            frames: Vec::new(),
        }
    }

    /// Opens a terminal with `params` and attaches to it.
    pub fn open_terminal(orchestrator: &'a Orchestrator, worker_id: &str, params: Value) -> Stream<'a> {
        let result = ok(orchestrator, worker_id, "terminal.open", params);
        assert_eq!(result["resumed"], false, "{result}");
        assert_eq!(result["offset"], 0, "{result}");
        Stream::attach(orchestrator, worker_id, &result)
    }

    /// Skips every event logged so far (e.g. frames of an earlier attachment);
    /// only while no output of this stream is on its way.
    pub fn skip_past_events(&mut self) {
        self.cursor = self.orchestrator.events().last().map_or(0, |e| e.seq + 1);
    }

    /// The output offset after the last byte received.
    pub fn offset(&self) -> u64 {
        self.base + self.output.len() as u64
    }

    /// Sends input as one binary frame at the next input offset.
    pub fn send(&mut self, bytes: &[u8]) {
        self.send_at(self.input_offset, bytes);
        self.input_offset += bytes.len() as u64;
    }

    /// Sends input as one binary frame at `offset` (re-sends included).
    pub fn send_at(&self, offset: u64, bytes: &[u8]) {
        for (i, piece) in bytes.chunks(60 * 1024).enumerate() {
            let at = offset + (i * 60 * 1024) as u64;
            let frame =
                StreamFrame { kind: StreamKind::Data, channel: Channel::new(self.channel), offset: at, payload: piece };
            block_on(self.orchestrator.send_binary(&self.worker_id, frame.encode())).expect("send input");
        }
    }

    /// Takes the frames of this channel that arrived since the last call; output
    /// offsets must continue exactly where the previous frame ended.
    pub fn poll(&mut self) {
        let events = self.orchestrator.events_since(self.cursor);
        if let Some(first) = events.first() {
            // The local orchestrator keeps a bounded event log: a reader that falls too far
            // behind finds its next events gone. That is the harness's limit, not a lost byte.
            assert!(
                self.cursor == 0 || first.seq == self.cursor,
                "the test fell behind the orchestrator's event log: events {}..{} were dropped before it read them",
                self.cursor,
                first.seq
            );
        }
        for timed in events {
            self.cursor = timed.seq + 1;
            let Event::Binary { bytes, .. } = timed.event else { continue };
            let frame = StreamFrame::decode(&bytes, 1 << 20).expect("a valid binary frame");
            if frame.channel.get() != self.channel {
                continue;
            }
            match frame.kind {
                StreamKind::Data => {
                    assert!(self.end.is_none(), "data after the end frame");
                    assert_eq!(frame.offset, self.offset(), "output offsets are contiguous (no byte lost or repeated)");
                    self.output.extend_from_slice(frame.payload);
                    self.frames.push((timed.at, frame.payload.len()));
                }
                _ => {
                    assert_eq!(frame.offset, self.offset(), "the end frame follows the last byte");
                    let payload = serde_json::from_slice(frame.payload).expect("end payload is JSON");
                    self.end = Some((frame.offset, payload));
                }
            }
        }
    }

    /// The output so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Polls every stream of `streams` until `done` holds for each (so none falls
    /// behind the orchestrator's bounded event log while another is waited for).
    pub fn wait_all(streams: &mut [Stream<'_>], what: &str, timeout: Duration, done: impl Fn(&Stream) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            for stream in streams.iter_mut() {
                stream.poll();
            }
            if streams.iter().all(&done) {
                return;
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for {what} on every stream");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls until `done(self)`; panics with the output after `timeout`.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, done: impl Fn(&Stream) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if done(self) {
                return;
            }
            if Instant::now() >= deadline {
                let text = self.text();
                let tail: String = text.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
                panic!("waited {timeout:?} for {what}; output ends with:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the output contains `needle` after output position `from` (a byte index into `output`).
    pub fn wait_for_after(&mut self, from: usize, needle: &str, timeout: Duration) -> usize {
        self.wait_until(&format!("{needle:?}"), timeout, |s| {
            find(&s.output[from.min(s.output.len())..], needle).is_some()
        });
        from + find(&self.output[from..], needle).expect("found") + needle.len()
    }

    /// Waits until the output contains `needle` anywhere.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> usize {
        self.wait_for_after(0, needle, timeout)
    }

    /// Types `command` and a return, and waits for `marker` printed after it.
    pub fn run(&mut self, command: &str, marker: &str) -> String {
        let from = self.output.len();
        self.send(format!("{command}\r").as_bytes());
        let end = self.wait_for_after(from, marker, Duration::from_secs(30));
        String::from_utf8_lossy(&self.output[from..end]).into_owned()
    }

    /// Waits for the end frame.
    pub fn wait_end(&mut self, timeout: Duration) -> Value {
        self.wait_until("the end frame", timeout, |s| s.end.is_some());
        self.end.clone().map(|(_, v)| v).unwrap_or(Value::Null)
    }
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack.windows(needle.len().max(1)).position(|w| w == needle)
}

/// The processes in container `id` (`ps` output), through the worker.
pub fn ps(orchestrator: &Orchestrator, worker_id: &str, id: &str) -> String {
    let out = ok(
        orchestrator,
        worker_id,
        "container.exec",
        json!({ "containerId": id, "command": ["ps", "-o", "pid,args"] }),
    );
    out["stdout"].as_str().unwrap_or_default().to_string()
}

/// The pid of the `cropscode worker` process running with `home` as its HOME.
pub fn worker_pid(home: &std::path::Path) -> Option<u32> {
    let wanted = format!("HOME={}", home.display());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("cropscode") {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Resident memory of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
