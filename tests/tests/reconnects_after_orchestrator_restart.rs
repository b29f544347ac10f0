//! When the orchestrator goes away, the worker retries on the documented schedule
//! (1 s, 2 s, 4 s, … without jitter) and re-registers once it is back.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use cropscode_tests::orchestrator::{Orchestrator, OrchestratorConfig};
use cropscode_tests::*;

fn bind_retrying(addr: std::net::SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cannot re-bind {addr}: {e}"),
        }
    }
}

#[test]
fn retries_follow_the_backoff_schedule_then_reregister() {
    let orchestrator = start_orchestrator();
    let addr = orchestrator.ws_addr();
    let worker = WorkerSpec::new(orchestrator.ws_url()).spawn();
    let first = wait_registered(&orchestrator, None, Duration::from_secs(30)).expect("registered");

    // The orchestrator dies. A bare TCP listener takes its port and drops every
    // connection, so each attempt of the worker is seen and fails at once.
    let stopped_at = Instant::now();
    block_on(orchestrator.stop());
    let listener = bind_retrying(addr);
    listener.set_nonblocking(true).expect("nonblocking");
    let mut attempts = Vec::new();
    let window = Duration::from_millis(7_500);
    while stopped_at.elapsed() < window {
        match listener.accept() {
            Ok((stream, _)) => {
                attempts.push(stopped_at.elapsed());
                drop(stream);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    drop(listener);
    assert_eq!(attempts.len(), 3, "attempts at ~1s, ~3s, ~7s after the drop; saw {attempts:?}");
    let gaps = [attempts[0], attempts[1] - attempts[0], attempts[2] - attempts[1]];
    for (gap, expected) in gaps.iter().zip([1u64, 2, 4]) {
        let expected = Duration::from_secs(expected);
        assert!(
            *gap >= expected - Duration::from_millis(100) && *gap <= expected + Duration::from_millis(900),
            "backoff gaps {gaps:?} do not follow 1s, 2s, 4s"
        );
    }

    // The orchestrator comes back on the same address: the next attempt (8 s later) registers.
    let config = OrchestratorConfig { ws_addr: addr, ..OrchestratorConfig::with_token(TEST_TOKEN) };
    let revived = block_on(Orchestrator::start(config)).expect("restart on the same address");
    let again = wait_registered(&revived, None, Duration::from_secs(15)).expect("re-registered after restart");
    assert_eq!(again.register.worker_id.as_deref(), Some(first.worker_id.as_str()), "same worker id");
    worker.assert_token_absent();
}
