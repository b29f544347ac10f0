//! Reconnect timing: the exact schedule, the reset rule, auth failures at the cap.

mod common;

use std::time::Duration;

use common::*;
use cropscode_core::session::{DisconnectReason, Event, SessionConfig, State};
use cropscode_core::{Frame, TransportError};

fn d(s: u64) -> (Duration, bool) {
    (Duration::from_secs(s), false)
}

#[test]
fn first_event_is_connect_at_once() {
    let mut t = TestSession::at(exact_config(), secs(7));
    assert_eq!(t.state(), State::Connecting);
    let events = t.take_events();
    assert!(matches!(events.as_slice(), [Event::Connect]), "{events:?}");
    assert_eq!(t.deadline(), None, "connecting waits for the connector");
}

#[test]
fn failed_connects_follow_the_exact_schedule() {
    let mut t = TestSession::new(exact_config());
    let mut connects = vec![t.now];
    for _ in 0..8 {
        t.connect_failed(io_error());
        assert!(matches!(t.state(), State::Disconnected { .. }));
        connects.push(t.until_connect());
    }
    let gaps: Vec<u64> = connects.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(t.delays(), [d(1), d(2), d(4), d(8), d(16), d(30), d(30), d(30)]);
    let attempts: Vec<u32> = t
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::BackingOff { attempt, .. } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn accept_and_drop_advances_the_schedule_one_attempt_per_step() {
    let mut t = TestSession::new(exact_config());
    let mut connects = vec![t.now];
    for _ in 0..7 {
        t.connect_and_register();
        t.disconnected(TransportError::Closed { code: 1000, reason: String::new() });
        connects.push(t.until_connect());
    }
    let gaps: Vec<u64> = connects.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(t.event_times(|e| matches!(e, Event::Connect)).len(), 8, "exactly one attempt per step");
}

/// Builds up two failures, then stays registered for `live` before the connection drops.
fn delay_after_living(live: Duration) -> Duration {
    let mut t = TestSession::new(exact_config());
    t.peer_answers_pings = true;
    t.connect_failed(io_error());
    t.until_connect();
    t.connect_failed(io_error());
    t.until_connect();
    t.connect_and_register();
    let registered_at = t.now;
    t.run_until(registered_at + live);
    assert_eq!(t.state(), State::Registered);
    t.disconnected(io_error());
    t.delays().last().unwrap().0
}

#[test]
fn backoff_resets_only_after_staying_registered_for_stable_after() {
    assert_eq!(delay_after_living(Duration::from_secs(60)), Duration::from_secs(1));
    assert_eq!(delay_after_living(Duration::from_secs(600)), Duration::from_secs(1));
    assert_eq!(delay_after_living(Duration::from_millis(59_999)), Duration::from_secs(4));
    assert_eq!(delay_after_living(Duration::ZERO), Duration::from_secs(4));
}

#[test]
fn stable_after_is_configurable() {
    let mut config = exact_config();
    config.stable_after = Duration::from_secs(5);
    let mut t = TestSession::new(config);
    t.connect_failed(io_error());
    t.until_connect();
    t.connect_and_register();
    t.run_until(t.now + Duration::from_secs(5));
    t.disconnected(io_error());
    assert_eq!(t.delays(), [d(1), d(1)]);
}

#[test]
fn auth_failure_waits_for_the_cap() {
    let mut t = TestSession::new(exact_config());
    t.connect_failed(TransportError::Auth { status: 401 });
    assert_eq!(t.state(), State::Disconnected { retry_at: secs(30) });
    t.until_connect();
    t.connect_failed(TransportError::Auth { status: 403 });
    t.until_connect();
    // Once at the cap, other failures stay there until a stable connection.
    t.connect_failed(io_error());
    let auth = (Duration::from_secs(30), true);
    assert_eq!(t.delays(), [auth, auth, d(30)]);
}

#[test]
fn auth_at_the_cap_ignores_jitter() {
    let mut config = SessionConfig::default();
    config.backoff.seed = 42;
    let mut t = TestSession::new(config);
    for _ in 0..5 {
        t.connect_failed(TransportError::Auth { status: 401 });
        t.until_connect();
    }
    assert!(t.delays().iter().all(|&(delay, auth)| auth && delay == Duration::from_secs(30)));
}

#[test]
fn policy_close_codes_count_as_auth() {
    let mut t = TestSession::new(exact_config());
    t.connected();
    t.frame(Frame::Close { code: 1008, reason: "bad token".into() });
    assert_eq!(t.state(), State::Disconnected { retry_at: secs(30) });
    assert_eq!(t.delays(), [(Duration::from_secs(30), true)]);
}

#[test]
fn rejected_registration_drops_and_waits_for_the_cap() {
    let mut t = TestSession::new(exact_config());
    t.connected();
    t.take();
    t.text(r#"{"type":"worker.rejected","error":{"code":"forbidden","message":"token revoked"}}"#);
    let events = t.take_events();
    match events.as_slice() {
        [Event::Disconnect { reason: DisconnectReason::Rejected(e) }, Event::BackingOff { delay, auth: true, .. }] => {
            assert_eq!(e.message, "token revoked");
            assert_eq!(*delay, Duration::from_secs(30));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.state(), State::Disconnected { retry_at: secs(30) });
}

#[test]
fn insecure_url_and_tls_are_retried_at_the_cap() {
    for error in [TransportError::InsecureUrl("ws://example.com".into()), TransportError::Tls("unknown issuer".into())]
    {
        let mut t = TestSession::new(exact_config());
        t.connect_failed(error);
        assert_eq!(t.delays(), [(Duration::from_secs(30), false)]);
    }
}

#[test]
fn full_jitter_keeps_each_delay_within_its_step() {
    for seed in 0..32 {
        let mut config = SessionConfig::default();
        config.backoff.seed = seed;
        let mut t = TestSession::new(config);
        for _ in 0..8 {
            t.connect_failed(io_error());
            t.until_connect();
        }
        for ((delay, _), cap) in t.delays().into_iter().zip([1, 2, 4, 8, 16, 30, 30, 30]) {
            assert!(delay <= Duration::from_secs(cap), "seed {seed}: {delay:?} > {cap}s");
        }
    }
}

#[test]
fn worker_id_from_the_ack_is_sent_on_the_next_registration() {
    let mut t = TestSession::new(exact_config());
    t.connected();
    let first = t.take_texts();
    assert_eq!(first[0]["type"], "worker.register");
    assert!(first[0].get("workerId").is_none());
    assert_eq!(first[0]["name"], "pi-kitchen");
    t.registered("w-42");
    assert_eq!(t.session.worker_id(), Some("w-42"));
    assert!(t.take_events().iter().any(|e| matches!(e, Event::Registered { worker_id, .. } if worker_id == "w-42")));
    t.disconnected(io_error());
    t.until_connect();
    let mut changed = register();
    changed.container_engines = vec!["docker".into()];
    t.session.set_register(changed);
    t.take();
    t.connected();
    let second = t.take_texts();
    assert_eq!(second[0]["workerId"], "w-42");
    assert_eq!(second[0]["containerEngines"][0], "docker");
}

#[test]
fn the_gateway_named_in_the_ack_reaches_the_shell() {
    let mut t = TestSession::new(exact_config());
    t.connected();
    t.take_texts();
    t.text(r#"{"type": "worker.registered", "workerId": "w-7", "gateway": {"url": "https://gw.example/health"}}"#);
    let events = t.take_events();
    let gateway = events.iter().find_map(|e| match e {
        Event::Registered { gateway, .. } => Some(gateway.clone()),
        _ => None,
    });
    assert_eq!(gateway.flatten().map(|g| g.url).as_deref(), Some("https://gw.example/health"));
}
