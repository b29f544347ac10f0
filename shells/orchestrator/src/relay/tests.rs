//! The relay driven by hand: one browser socket, a made-up worker, made-up instants.

use super::*;

/// A binary frame for the worker: channel, offset, payload.
type InputFrame = (u32, u64, Vec<u8>);

/// A relay with one browser socket, driven by hand with made-up instants.
struct Bench {
    relay: Relay,
    socket: u64,
    now: Instant,
    _wake: async_channel::Receiver<()>,
}

impl Bench {
    fn new() -> Bench {
        let mut relay = Relay::new();
        let (tx, rx) = async_channel::bounded(1);
        let socket = relay.add_socket(tx);
        Bench { relay, socket, now: Instant::now(), _wake: rx }
    }

    fn browser(&mut self, message: Value) {
        self.relay.browser_text(self.socket, &message.to_string(), self.now);
    }

    /// Everything the socket would be sent now.
    fn sent_to_browser(&mut self) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let batch = self.relay.poll_socket(self.socket, 1 << 30);
            if batch.is_empty() {
                return all;
            }
            all.extend(batch.iter().map(|m| serde_json::from_str::<Value>(m).unwrap()));
        }
    }

    /// The frames for workers: text frames as JSON, binary ones as (channel, offset, payload).
    fn sent_to_worker(&mut self) -> (Vec<Value>, Vec<InputFrame>) {
        let (mut texts, mut binaries) = (Vec::new(), Vec::new());
        while let Some(frame) = self.relay.pop_outbox() {
            assert_eq!(frame.worker_id, "w-1");
            match frame.message {
                Message::Text(text) => texts.push(serde_json::from_str(text.as_str()).unwrap()),
                Message::Binary(bytes) => {
                    let f = StreamFrame::decode(&bytes, usize::MAX).unwrap();
                    binaries.push((f.channel.get(), f.offset, f.payload.to_vec()));
                }
                _ => unreachable!(),
            }
        }
        (texts, binaries)
    }

    fn answer(&mut self, connection: u64, command: &Value, result: Value) {
        let id = command["id"].as_str().unwrap();
        assert!(self.relay.worker_result(connection, id, Ok(&result), self.now));
    }

    fn output(&mut self, channel: u32, offset: u64, bytes: &[u8]) {
        let frame =
            StreamFrame { kind: StreamKind::Data, channel: Channel::new(channel), offset, payload: bytes }.encode();
        self.relay.worker_output("w-1", &frame);
    }

    /// Opens `t-1` on connection 1 as session `t-s` on channel 7.
    fn open(&mut self) {
        self.browser(json!({ "op": "open", "term": "t-1", "worker": "w-1", "containerId": "c", "cols": 90 }));
        let (texts, _) = self.sent_to_worker();
        assert_eq!(texts[0]["type"], "terminal.open");
        assert_eq!(
            texts[0]["params"],
            json!({ "containerId": "c", "cols": 90, "rows": 24, "command": ["/bin/sh"], "env": {} })
        );
        let answer = json!({ "sessionId": "t-s", "channel": 7, "resumed": false, "offset": 0, "lostBytes": 0 });
        self.answer(1, &texts[0], answer);
        let opened = self.sent_to_browser();
        assert_eq!(opened[0]["op"], "opened");
        assert_eq!((opened[0]["offset"].as_u64(), opened[0]["inputOffset"].as_u64()), (Some(0), Some(0)));
    }
}

fn data(messages: &[Value]) -> Vec<(u64, Vec<u8>)> {
    messages
        .iter()
        .filter(|m| m["op"] == "data")
        .map(|m| (m["offset"].as_u64().unwrap(), decode(m["data"].as_str().unwrap())))
        .collect()
}

fn decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digits: Vec<u32> =
        text.bytes().filter(|&c| c != b'=').map(|c| ALPHABET.iter().position(|&a| a == c).unwrap() as u32).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0, |n, (i, d)| n | (d << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn output_reaches_the_browser_once_and_in_order() {
    let mut b = Bench::new();
    b.open();
    b.output(7, 0, b"hello ");
    b.output(7, 3, b"lo world"); // a re-sent prefix
    b.output(8, 0, b"not ours");
    assert_eq!(data(&b.sent_to_browser()), vec![(0, b"hello ".to_vec()), (6, b"world".to_vec())]);
    assert!(b.sent_to_browser().is_empty());
    assert_eq!(base64(b"#!/bin/sh\n"), "IyEvYmluL3NoCg==");
}

#[test]
fn an_attach_replays_from_its_offset_or_says_how_much_is_lost() {
    let mut b = Bench::new();
    b.open();
    let chunk = vec![b'x'; 32 * 1024];
    let total = OUTPUT_BUFFER_BYTES as u64 + 3 * chunk.len() as u64;
    let mut offset = 0;
    while offset < total {
        b.output(7, offset, &chunk);
        offset += chunk.len() as u64;
    }
    b.relay.remove_socket(b.socket, b.now);
    let (tx, rx) = async_channel::bounded(1);
    b.socket = b.relay.add_socket(tx);
    b._wake = rx;
    b.browser(json!({ "op": "attach", "term": "t-1", "offset": 10 }));
    let messages = b.sent_to_browser();
    assert_eq!((messages[0]["op"].as_str(), messages[0]["offset"].as_u64()), (Some("opened"), Some(10)));
    let held_from = total - OUTPUT_BUFFER_BYTES as u64;
    assert_eq!(messages[1], json!({ "op": "lost", "term": "t-1", "offset": 10, "lostBytes": held_from - 10 }));
    let replayed = data(&messages);
    assert_eq!(replayed[0].0, held_from);
    assert_eq!(replayed.iter().map(|(_, d)| d.len() as u64).sum::<u64>(), OUTPUT_BUFFER_BYTES as u64);

    b.browser(json!({ "op": "attach", "term": "t-1", "offset": total + 1 }));
    assert_eq!(b.sent_to_browser()[0]["code"], "invalid_request");
    b.browser(json!({ "op": "attach", "term": "t-404", "offset": 0 }));
    assert_eq!(b.sent_to_browser()[0]["code"], "not_found");
}

#[test]
fn input_keeps_its_offsets_drops_repeats_and_refuses_gaps() {
    let mut b = Bench::new();
    b.open();
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 0, "data": "ls" }));
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 1, "data": "s -l\r" }));
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 0, "data": "ls" }));
    assert_eq!(b.sent_to_worker().1, vec![(7, 0, b"ls".to_vec()), (7, 2, b" -l\r".to_vec())]);
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 9, "data": "x" }));
    let refused = b.sent_to_browser();
    assert_eq!(refused[0]["code"], "invalid_request", "{refused:?}");
    assert!(b.sent_to_worker().1.is_empty());
    b.browser(json!({ "op": "resize", "term": "t-1", "cols": 120, "rows": 40 }));
    let (texts, _) = b.sent_to_worker();
    assert_eq!(texts[0]["params"], json!({ "sessionId": "t-s", "cols": 120, "rows": 40 }));
}

#[test]
fn a_dropped_worker_connection_is_reattached_at_the_received_offset() {
    let mut b = Bench::new();
    b.open();
    b.output(7, 0, b"abc");
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 0, "data": "ls\r" }));
    b.sent_to_browser();
    b.sent_to_worker();

    b.relay.connection_closed(1, b.now);
    assert_eq!(b.sent_to_browser()[0]["op"], "reattaching");
    b.browser(json!({ "op": "resize", "term": "t-1", "cols": 50, "rows": 10 }));
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 3, "data": "pwd\r" }));
    assert!(b.sent_to_worker().0.is_empty(), "nothing is sent while the worker is away");

    b.relay.worker_registered("w-1", 2, b.now);
    let (texts, _) = b.sent_to_worker();
    assert_eq!(texts[0]["type"], "terminal.open");
    assert_eq!(texts[0]["params"], json!({ "containerId": "c", "sessionId": "t-s", "offset": 3 }));
    // The worker lost 5 bytes meanwhile (its replay buffer) and answers on the same channel.
    let answer = json!({ "sessionId": "t-s", "channel": 7, "resumed": true, "offset": 8, "lostBytes": 5 });
    b.answer(2, &texts[0], answer);
    b.output(7, 8, b"def");
    let messages = b.sent_to_browser();
    assert_eq!(messages[0]["op"], "opened");
    assert_eq!((messages[0]["resumed"].as_bool(), messages[0]["inputOffset"].as_u64()), (Some(true), Some(7)));
    assert_eq!(messages[1], json!({ "op": "lost", "term": "t-1", "offset": 3, "lostBytes": 5 }));
    assert_eq!(data(&messages), vec![(8, b"def".to_vec())]);
    let (texts, binaries) = b.sent_to_worker();
    assert_eq!(binaries, vec![(7, 0, b"ls\rpwd\r".to_vec())], "kept input is re-sent; the worker drops repeats");
    assert_eq!(texts[0]["params"], json!({ "sessionId": "t-s", "cols": 50, "rows": 10 }));

    // A worker that lost the session: the terminal ends as `lost`.
    b.relay.connection_closed(2, b.now);
    b.relay.worker_registered("w-1", 3, b.now);
    let (texts, _) = b.sent_to_worker();
    let id = texts[0]["id"].as_str().unwrap();
    assert!(b.relay.worker_result(3, id, Err(("not_found", "no terminal session")), b.now));
    let messages = b.sent_to_browser();
    assert_eq!(messages.last().unwrap()["reason"], "lost", "{messages:?}");
}

#[test]
fn the_end_follows_the_last_byte_and_the_terminal_is_then_gone() {
    let mut b = Bench::new();
    b.open();
    b.output(7, 0, b"bye");
    let end = StreamFrame {
        kind: StreamKind::End,
        channel: Channel::new(7),
        offset: 3,
        payload: br#"{"reason":"exited","exitCode":3}"#,
    };
    b.relay.worker_output("w-1", &end.encode());
    let messages = b.sent_to_browser();
    assert_eq!(data(&messages), vec![(0, b"bye".to_vec())]);
    assert_eq!(messages[1], json!({ "op": "end", "term": "t-1", "reason": "exited", "exitCode": 3 }));
    b.browser(json!({ "op": "input", "term": "t-1", "offset": 0, "data": "x" }));
    assert_eq!(b.sent_to_browser()[0]["code"], "not_found");
}

#[test]
fn a_terminal_alone_past_the_idle_timeout_is_closed() {
    let mut b = Bench::new();
    b.open();
    b.relay.remove_socket(b.socket, b.now);
    b.relay.tick(b.now + IDLE_TIMEOUT);
    let (texts, _) = b.sent_to_worker();
    assert_eq!(
        (texts[0]["type"].as_str(), &texts[0]["params"]),
        (Some("terminal.close"), &json!({ "sessionId": "t-s" }))
    );
    assert!(b.relay.terminals.is_empty());
}
