//! Heartbeats, pings, the liveness deadline and the register timeout, on hand-made time.

mod common;

use std::time::Duration;

use common::*;
use cropscode_core::Frame;
use cropscode_core::session::{DisconnectReason, Event, Input, SessionConfig, State};

#[test]
fn heartbeat_right_after_registering_then_every_interval() {
    let mut t = TestSession::at(exact_config(), secs(3));
    t.peer_answers_pings = true;
    t.run_until(secs(5));
    t.connect_and_register();
    t.run_until(secs(65));
    assert_eq!(t.times_of("worker.heartbeat"), [5, 15, 25, 35, 45, 55, 65].map(secs));
    assert_eq!(t.state(), State::Registered);
}

#[test]
fn heartbeat_interval_is_configurable_and_keeps_its_cadence() {
    let mut config = exact_config();
    config.heartbeat_interval = Duration::from_millis(2_500);
    let mut t = TestSession::new(config);
    t.peer_answers_pings = true;
    t.connect_and_register();
    // Frames arriving in between do not shift the schedule.
    t.run_until(ms(3_100));
    t.frame(Frame::Pong(Vec::new()));
    t.run_until(ms(10_000));
    assert_eq!(t.times_of("worker.heartbeat"), [0, 2_500, 5_000, 7_500, 10_000].map(ms));
}

#[test]
fn late_wake_ups_do_not_burst_heartbeats() {
    let mut t = TestSession::new(exact_config());
    t.connect_and_register();
    t.take();
    // The caller oversleeps by 25 s (but stays within the liveness deadline).
    t.now = secs(35);
    t.frame(Frame::Pong(Vec::new()));
    t.session.handle_input(t.now, Input::Timeout);
    t.drain();
    assert_eq!(t.times_of("worker.heartbeat"), [secs(35)], "one heartbeat, not three");
    assert_eq!(t.deadline(), Some(secs(45)));
}

#[test]
fn heartbeats_need_an_answer_and_stop_when_not_registered() {
    let mut t = TestSession::new(exact_config());
    t.answer_heartbeats = false;
    t.connect_and_register();
    assert_eq!(t.event_times(|e| matches!(e, Event::HeartbeatDue)), [secs(0)]);
    assert!(t.times_of("worker.heartbeat").is_empty());
    t.disconnected(io_error());
    t.session.handle_input(t.now, Input::Heartbeat(Default::default()));
    assert!(t.next_transmit().is_none(), "no heartbeat without a registered connection");
}

#[test]
fn silence_brings_pings_then_a_liveness_disconnect_then_a_reconnect() {
    let mut t = TestSession::new(exact_config());
    t.connect_and_register();
    t.run_until(secs(45));
    assert_eq!(t.ping_times(), [secs(15), secs(30)]);
    let disconnects = t.event_times(|e| matches!(e, Event::Disconnect { reason: DisconnectReason::LivenessTimeout }));
    assert_eq!(disconnects, [secs(45)]);
    assert_eq!(t.state(), State::Disconnected { retry_at: secs(46) });
    assert_eq!(t.delays(), [(Duration::from_secs(1), false)]);
    assert_eq!(t.until_connect(), secs(46));
}

#[test]
fn anything_received_refreshes_liveness() {
    for frame in [
        Frame::Pong(Vec::new()),
        Frame::Ping(b"x".to_vec()),
        Frame::Text("garbage".into()),
        Frame::Binary(vec![1, 2, 3]),
    ] {
        let mut t = TestSession::new(exact_config());
        t.connect_and_register();
        t.run_until(secs(20));
        t.frame(frame.clone());
        t.run_until(secs(64));
        assert_eq!(t.state(), State::Registered, "{frame:?}");
        assert_eq!(t.ping_times(), [secs(15), secs(35), secs(50)], "{frame:?}");
        t.run_until(secs(65));
        assert!(matches!(t.state(), State::Disconnected { .. }), "{frame:?}");
    }
}

#[test]
fn a_peer_that_answers_pings_stays_connected() {
    let mut t = TestSession::new(exact_config());
    t.peer_answers_pings = true;
    t.connect_and_register();
    t.run_until(secs(600));
    assert_eq!(t.state(), State::Registered);
    assert_eq!(t.ping_times().len(), 40);
}

#[test]
fn liveness_applies_while_registering_too() {
    let mut config = exact_config();
    config.register_timeout = Duration::from_secs(120);
    let mut t = TestSession::new(config);
    t.connected();
    t.run_until(secs(45));
    assert_eq!(t.ping_times(), [secs(15), secs(30)]);
    assert_eq!(
        t.event_times(|e| matches!(e, Event::Disconnect { reason: DisconnectReason::LivenessTimeout })),
        [secs(45)]
    );
}

#[test]
fn register_timeout_drops_and_backs_off() {
    let mut t = TestSession::new(exact_config());
    t.connected();
    t.run_until(ms(14_999));
    assert_eq!(t.state(), State::Registering);
    t.run_until(secs(15));
    assert_eq!(
        t.event_times(|e| matches!(e, Event::Disconnect { reason: DisconnectReason::RegisterTimeout })),
        [secs(15)]
    );
    assert_eq!(t.state(), State::Disconnected { retry_at: secs(16) });
    assert!(t.ping_times().is_empty(), "no ping on a connection being dropped");
    // The next connection gets a fresh timeout and the next backoff step.
    t.until_connect();
    t.connected();
    t.run_until(secs(31));
    assert_eq!(t.delays(), [(Duration::from_secs(1), false), (Duration::from_secs(2), false)]);
}

#[test]
fn registering_in_time_cancels_the_register_timeout() {
    let mut t = TestSession::new(exact_config());
    t.peer_answers_pings = true;
    t.connected();
    t.run_until(secs(14));
    t.registered("w-1");
    t.run_until(secs(100));
    assert_eq!(t.state(), State::Registered);
    assert!(t.event_times(|e| matches!(e, Event::Disconnect { .. })).is_empty());
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let mut t = TestSession::new(exact_config());
    assert_eq!(t.deadline(), None);
    t.connected();
    assert_eq!(t.deadline(), Some(secs(15)), "register timeout and first ping");
    t.now = secs(2);
    t.registered("w-1");
    assert_eq!(t.deadline(), Some(secs(12)), "next heartbeat");
    t.disconnected(io_error());
    assert_eq!(t.deadline(), Some(secs(3)), "the retry");
}

#[test]
fn zero_durations_are_raised_to_a_millisecond() {
    let config = SessionConfig {
        heartbeat_interval: Duration::ZERO,
        ping_interval: Duration::ZERO,
        liveness_timeout: Duration::ZERO,
        register_timeout: Duration::ZERO,
        ..exact_config()
    };
    let mut t = TestSession::new(config);
    t.connected();
    let deadline = t.deadline().unwrap();
    assert!(deadline > t.now);
    t.step();
    assert!(matches!(t.state(), State::Disconnected { .. }));
}

#[test]
fn a_short_liveness_deadline_brings_the_pings_forward() {
    let mut config = exact_config();
    config.liveness_timeout = Duration::from_secs(3);
    let mut t = TestSession::new(config);
    t.peer_answers_pings = true;
    t.connect_and_register();
    t.run_until(secs(60));
    assert_eq!(t.state(), State::Registered, "an idle, answering peer stays connected");
    assert_eq!(t.ping_times()[..3], [secs(1), secs(2), secs(3)], "pings every third of the deadline");
}
