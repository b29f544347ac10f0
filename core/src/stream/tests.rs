//! The stream registry driven by hand: made-up instants, byte strings for the
//! engine's output, and decoded frames for what the orchestrator would see.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::protocol::Limits;

const MAX_FRAME: usize = Limits::DEFAULT.max_binary_frame_bytes as usize;

fn config() -> StreamConfig {
    StreamConfig {
        replay_bytes: 64,
        unsent_window: 16,
        input_bytes: 8,
        frame_payload: 4,
        turn_budget: 12,
        idle_timeout: Duration::from_secs(600),
        max_sessions: 3,
        id_seed: 0xab,
    }
}

fn t(secs: u64) -> Instant {
    Instant::from_millis(secs * 1000)
}

/// A registry with one open, attached terminal on channel 1.
fn with_terminal() -> (Streams, StreamId) {
    let mut streams = Streams::new(config(), MAX_FRAME);
    let id = streams.open(StreamType::Terminal, "dev", Some("acme"), "c-1").unwrap();
    streams.open_finished(t(0), id.channel, Ok(Value::Null), true).unwrap();
    (streams, id)
}

/// A decoded output frame: (kind, channel, offset, payload).
type Sent = (StreamKind, Channel, u64, Vec<u8>);

const fn ch(n: u32) -> Channel {
    Channel::new(n)
}

fn drain(streams: &mut Streams) -> Vec<Sent> {
    let mut out = Vec::new();
    loop {
        while let Some(bytes) = streams.poll_frame() {
            let f = StreamFrame::decode(&bytes, MAX_FRAME).unwrap();
            out.push((f.kind, f.channel, f.offset, f.payload.to_vec()));
        }
        if !streams.has_backlog() {
            return out;
        }
        streams.new_turn();
    }
}

fn data_of(frames: &[Sent], channel: Channel) -> Vec<u8> {
    frames.iter().filter(|f| f.0 == StreamKind::Data && f.1 == channel).flat_map(|f| f.3.clone()).collect()
}

fn reattach_request(session_id: &str, offset: u64) -> TerminalOpen {
    let value =
        serde_json::json!({ "containerId": "dev", "tenant": "acme", "sessionId": session_id, "offset": offset });
    serde_json::from_value(value).unwrap()
}

#[test]
fn channels_and_session_ids_are_allocated_and_bounded() {
    let mut streams = Streams::new(config(), MAX_FRAME);
    let a = streams.open(StreamType::Terminal, "dev", None, "c-1").unwrap();
    let b = streams.open(StreamType::Display, "dev", None, "c-2").unwrap();
    assert_eq!((a.channel, a.session_id.as_str()), (ch(1), "t-ab-1"));
    assert_eq!((b.channel, b.session_id.as_str()), (ch(2), "d-ab-2"));
    assert_eq!(streams.opening("c-2"), Some(ch(2)));
    streams.open(StreamType::Terminal, "dev", None, "c-3").unwrap();
    let busy = streams.open(StreamType::Terminal, "dev", None, "c-4").unwrap_err();
    assert_eq!(busy.code, ErrorCode::Busy);

    let failed = WireError::new(ErrorCode::NotFound, "no such container");
    assert_eq!(streams.open_finished(t(0), ch(2), Err(failed.clone()), true), Err(failed));
    assert!(streams.info(ch(2)).is_none(), "a failed open is forgotten");
    let result = streams.open_finished(t(0), ch(1), Ok(Value::Null), true).unwrap();
    assert_eq!(
        result,
        serde_json::json!({"sessionId": "t-ab-1", "channel": 1, "resumed": false, "offset": 0, "lostBytes": 0})
    );
    let next = streams.open(StreamType::Terminal, "dev", None, "c-5").unwrap();
    assert_eq!(next.channel, ch(4), "channels are never reused");
}

#[test]
fn output_flows_in_offset_frames_and_the_window_stops_reading() {
    let (mut streams, id) = with_terminal();
    assert_eq!(streams.reads().collect::<Vec<_>>(), [(id.channel, 16)]);
    streams.on_data(id.channel, b"0123456789");
    assert_eq!(streams.reads().collect::<Vec<_>>(), [(id.channel, 6)], "10 unsent of a 16-byte window");
    streams.on_data(id.channel, b"abcdef");
    assert_eq!(streams.reads().count(), 0, "window full: the engine is not read");

    let frames = drain(&mut streams);
    let offsets: Vec<u64> = frames.iter().map(|f| f.2).collect();
    assert_eq!(offsets, [0, 4, 8, 12], "frames of at most frame_payload bytes, by offset");
    assert_eq!(data_of(&frames, id.channel), b"0123456789abcdef");
    assert_eq!(streams.reads().collect::<Vec<_>>(), [(id.channel, 16)], "sent: the window is open again");
}

#[test]
fn a_detached_stream_reads_on_and_reattaching_resumes_exactly() {
    let (mut streams, id) = with_terminal();
    streams.on_data(id.channel, b"hello ");
    let first = drain(&mut streams);
    assert_eq!(data_of(&first, id.channel), b"hello ");
    streams.on_data(id.channel, b"wor");
    // Two bytes of "wor" reach the orchestrator before the connection drops.
    let partial = streams.poll_frame().unwrap();
    assert_eq!(StreamFrame::decode(&partial, MAX_FRAME).unwrap().payload, b"wor");

    streams.detach_all(t(5));
    assert!(streams.poll_frame().is_none(), "nothing is sent while detached");
    assert_eq!(streams.reads().collect::<Vec<_>>(), [(id.channel, usize::MAX)], "detached: read freely");
    streams.on_data(id.channel, b"ld\n$ ");

    // The orchestrator had received 8 bytes ("hello wo").
    let result = streams.reattach(&reattach_request(&id.session_id, 8)).unwrap();
    assert_eq!(result["resumed"], true);
    assert_eq!(result["offset"], 8);
    assert_eq!(result["lostBytes"], 0);
    let resumed = drain(&mut streams);
    assert_eq!(resumed[0].2, 8);
    assert_eq!(data_of(&resumed, id.channel), b"rld\n$ ");
}

#[test]
fn reattaching_after_the_buffer_wrapped_reports_the_loss() {
    let (mut streams, id) = with_terminal();
    streams.detach_all(t(1));
    for _ in 0..10 {
        streams.on_data(id.channel, &[b'x'; 10]);
    }
    streams.on_data(id.channel, b"tail");
    let info = streams.info(id.channel).unwrap();
    assert_eq!((info.output_start, info.output_end), (40, 104), "64 bytes kept");
    assert!(streams.buffered_bytes() <= 64);

    let result = streams.reattach(&reattach_request(&id.session_id, 10)).unwrap();
    assert_eq!((result["offset"].as_u64(), result["lostBytes"].as_u64()), (Some(40), Some(30)));
    let frames = drain(&mut streams);
    assert_eq!(frames[0].2, 40);
    let data = data_of(&frames, id.channel);
    assert_eq!(data.len(), 64);
    assert!(data.ends_with(b"tail"));
}

#[test]
fn reattach_is_refused_for_a_wrong_offset_container_or_id() {
    let (mut streams, id) = with_terminal();
    streams.on_data(id.channel, b"abc");
    let beyond = streams.reattach(&reattach_request(&id.session_id, 4)).unwrap_err();
    assert_eq!(beyond.code, ErrorCode::InvalidRequest);
    assert!(beyond.message.contains("`offset`"), "{}", beyond.message);
    let unknown = streams.reattach(&reattach_request("t-ab-99", 0)).unwrap_err();
    assert_eq!(unknown.code, ErrorCode::NotFound);
    let mut other = reattach_request(&id.session_id, 0);
    other.container_id = "prod".into();
    assert_eq!(streams.reattach(&other).unwrap_err(), unknown.clone().with_message_of(&id.session_id));
    let mut tenant = reattach_request(&id.session_id, 0);
    tenant.tenant = Some("evil".into());
    assert_eq!(streams.reattach(&tenant).unwrap_err().code, ErrorCode::NotFound);
}

trait SameCode {
    fn with_message_of(self, session_id: &str) -> WireError;
}

impl SameCode for WireError {
    /// The not_found of another session id, for comparing messages.
    fn with_message_of(self, session_id: &str) -> WireError {
        WireError::new(self.code, self.message.replace("t-ab-99", session_id))
    }
}

#[test]
fn streams_are_served_round_robin_within_a_turn_budget() {
    let mut streams = Streams::new(config(), MAX_FRAME);
    let mut ids = Vec::new();
    for n in 0..2 {
        let id = streams.open(StreamType::Terminal, "dev", None, &n.to_string()).unwrap();
        streams.open_finished(t(0), id.channel, Ok(Value::Null), true).unwrap();
        ids.push(id.channel);
    }
    streams.on_data(ids[0], &[b'f'; 16]); // floods
    streams.on_data(ids[1], b"ok");
    let mut turn = Vec::new();
    while let Some(bytes) = streams.poll_frame() {
        turn.push(StreamFrame::decode(&bytes, MAX_FRAME).unwrap().channel);
    }
    assert_eq!(turn, [ids[0], ids[1], ids[0], ids[0]], "the quiet stream is served in the first round");
    assert!(streams.has_backlog(), "14 of 18 bytes (the last frame may overshoot): the rest waits");
    streams.new_turn();
    let rest = drain(&mut streams);
    assert_eq!(rest.iter().map(|f| f.3.len()).sum::<usize>(), 4);
    assert!(!streams.has_backlog());
}

#[test]
fn an_ended_stream_sends_its_end_after_its_last_byte() {
    let (mut streams, id) = with_terminal();
    streams.on_data(id.channel, b"bye\n");
    streams.on_end(t(1), id.channel, Some(3));
    assert_eq!(streams.reads().count(), 0);
    let frames = drain(&mut streams);
    let (kind, channel, offset, payload) = frames.last().unwrap().clone();
    assert_eq!((kind, channel, offset), (StreamKind::End, id.channel, 4));
    let end: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(end, serde_json::json!({"reason": "exited", "exitCode": 3}));
    assert_eq!(data_of(&frames, id.channel), b"bye\n");
    assert!(streams.is_empty(), "delivered: forgotten");
}

#[test]
fn an_ended_detached_stream_can_be_reattached_until_its_idle_timeout() {
    let (mut streams, id) = with_terminal();
    streams.detach_all(t(10));
    streams.on_data(id.channel, b"done");
    streams.on_end(t(20), id.channel, Some(0));
    assert_eq!(streams.poll_timeout(), Some(t(610)), "the idle timer runs from the detach");
    let result = streams.reattach(&reattach_request(&id.session_id, 0)).unwrap();
    assert_eq!(result["resumed"], true);
    let frames = drain(&mut streams);
    assert_eq!(data_of(&frames, id.channel), b"done");
    assert_eq!(frames.last().unwrap().0, StreamKind::End);

    let (mut streams, id) = with_terminal();
    streams.detach_all(t(10));
    streams.on_end(t(20), id.channel, Some(0));
    streams.handle_timeout(t(610));
    assert!(streams.is_empty(), "nobody came back: forgotten, nothing to close");
    assert_eq!(streams.poll_action(), None);
}

#[test]
fn a_detached_terminal_is_closed_at_its_idle_timeout() {
    let (mut streams, id) = with_terminal();
    assert_eq!(streams.poll_timeout(), None, "attached: no idle timer");
    streams.detach_all(t(100));
    assert_eq!(streams.poll_timeout(), Some(t(700)));
    streams.handle_timeout(t(699));
    assert_eq!(streams.poll_action(), None);
    streams.handle_timeout(t(700));
    assert_eq!(streams.poll_action(), Some(StreamAction::Close { channel: id.channel }));
    assert_eq!(streams.poll_timeout(), None, "closing: waits for the engine");
    assert_eq!(streams.reads().collect::<Vec<_>>(), [(id.channel, usize::MAX)], "read on to the end");
    streams.on_end(t(701), id.channel, Some(129));
    assert!(streams.is_empty());
}

#[test]
fn reattaching_stops_the_idle_timer() {
    let (mut streams, id) = with_terminal();
    streams.detach_all(t(100));
    streams.reattach(&reattach_request(&id.session_id, 0)).unwrap();
    assert_eq!(streams.poll_timeout(), None);
    streams.detach_all(t(200));
    assert_eq!(streams.poll_timeout(), Some(t(800)), "a new detach starts a new timer");
}

#[test]
fn a_display_relay_is_closed_when_the_connection_drops() {
    let mut streams = Streams::new(config(), MAX_FRAME);
    let id = streams.open(StreamType::Display, "dev", None, "c-1").unwrap();
    let result = streams.open_finished(t(0), id.channel, Ok(Value::Null), true).unwrap();
    assert_eq!(result, serde_json::json!({"sessionId": "d-ab-1", "channel": 1}));
    streams.detach_all(t(1));
    assert_eq!(streams.poll_action(), Some(StreamAction::Close { channel: id.channel }));
    streams.on_end(t(2), id.channel, None);
    assert!(streams.is_empty());
}

#[test]
fn close_is_answered_at_the_end_with_the_exit_code() {
    let (mut streams, id) = with_terminal();
    assert_eq!(streams.request_close(StreamType::Terminal, &id.session_id, "c-9"), Ok(None));
    assert_eq!(streams.poll_action(), Some(StreamAction::Close { channel: id.channel }));
    assert_eq!(
        streams.request_close(StreamType::Terminal, &id.session_id, "c-10"),
        Ok(None),
        "a second close waits too"
    );
    assert_eq!(streams.poll_action(), None, "the engine is asked once");
    assert_eq!(
        streams.request_close(StreamType::Display, &id.session_id, "c-11").unwrap_err().code,
        ErrorCode::NotFound
    );
    streams.on_end(t(1), id.channel, Some(0));
    let answers: Vec<StreamAction> = core::iter::from_fn(|| streams.poll_action()).collect();
    let expected = serde_json::json!({"sessionId": id.session_id, "exitCode": 0});
    assert_eq!(
        answers,
        [
            StreamAction::Answer { id: "c-9".into(), outcome: Ok(expected.clone()) },
            StreamAction::Answer { id: "c-10".into(), outcome: Ok(expected) },
        ]
    );
    assert!(streams.is_empty());

    let (mut streams, id) = with_terminal();
    streams.detach_all(t(0));
    streams.on_end(t(1), id.channel, Some(2));
    let at_once = streams.request_close(StreamType::Terminal, &id.session_id, "c-12").unwrap();
    assert_eq!(at_once, Some(serde_json::json!({"sessionId": id.session_id, "exitCode": 2})));
    assert!(streams.is_empty());
}

#[test]
fn input_is_deduplicated_by_offset_and_bounded() {
    let (mut streams, id) = with_terminal();
    let frame = |offset: u64, payload: &'static [u8]| StreamFrame {
        kind: StreamKind::Data,
        channel: id.channel,
        offset,
        payload,
    };
    streams.input_frame(&frame(0, b"ls")).unwrap();
    streams.input_frame(&frame(0, b"ls")).unwrap();
    let result = streams.input_text(&id.session_id, b" -l\r").unwrap();
    assert_eq!(result, serde_json::json!({"sessionId": id.session_id, "acceptedBytes": 4}));
    assert_eq!(streams.writes().collect::<Vec<_>>(), [(id.channel, &b"ls -l\r"[..])]);
    let gap = streams.input_frame(&frame(9, b"x")).unwrap_err();
    assert_eq!(gap.code, ErrorCode::InvalidRequest);
    assert!(gap.message.contains("6"), "{}", gap.message);
    let full = streams.input_frame(&frame(6, b"abc")).unwrap_err();
    assert_eq!(full.code, ErrorCode::Busy);
    streams.on_written(id.channel, 6);
    assert_eq!(streams.writes().count(), 0);
    streams.input_frame(&frame(6, b"abc")).unwrap();
    let unknown = StreamFrame { kind: StreamKind::Data, channel: ch(77), offset: 0, payload: b"x" };
    assert_eq!(streams.input_frame(&unknown).unwrap_err().code, ErrorCode::NotFound);
    let end = StreamFrame { kind: StreamKind::End, channel: id.channel, offset: 0, payload: b"" };
    assert_eq!(streams.input_frame(&end).unwrap_err().code, ErrorCode::InvalidRequest);
    // The kind is judged before the channel: an `end` is refused alike on an unknown one.
    let end_unknown = StreamFrame { kind: StreamKind::End, channel: ch(77), offset: 0, payload: b"" };
    assert_eq!(streams.input_frame(&end_unknown).unwrap_err().code, ErrorCode::InvalidRequest);
}

#[test]
fn memory_stays_bounded_whatever_the_engine_produces() {
    let mut streams = Streams::new(StreamConfig { max_sessions: 8, ..config() }, MAX_FRAME);
    let mut channels = Vec::new();
    for n in 0..8 {
        let id = streams.open(StreamType::Terminal, "dev", None, &n.to_string()).unwrap();
        streams.open_finished(t(0), id.channel, Ok(Value::Null), n % 2 == 0).unwrap();
        channels.push(id.channel);
    }
    let chunk = vec![b'z'; 1000];
    for _ in 0..100 {
        // The driver reads only what the windows allow.
        let reads: Vec<(Channel, usize)> = streams.reads().collect();
        for (channel, max) in reads {
            streams.on_data(channel, &chunk[..max.min(chunk.len())]);
        }
        let bound = 8 * (config().replay_bytes + config().input_bytes);
        assert!(streams.buffered_bytes() <= bound, "{} > {bound}", streams.buffered_bytes());
    }
}
