//! An orchestrator that stops reading while a terminal floods: the worker stops
//! reading the terminal instead of queueing its output, so its memory stays
//! bounded (observed in `/proc/<pid>/status`), and once the orchestrator reads
//! again the output continues exactly where it stopped — nothing lost while
//! attached.

mod streams;

use std::time::{Duration, Instant};

use cropscode_tests::orchestrator::Behavior;
use cropscode_tests::*;
use serde_json::json;
use streams::*;

const WAIT: Duration = Duration::from_secs(30);
/// How far the worker's resident memory may grow while its reader stalls.
const GROWTH_BOUND_KIB: u64 = 24 * 1024;

fn slow_reader(t: &EngineRun) {
    let tenant = t.tenant("slow");
    let id = t.create_running("slow", &tenant);
    let pid = worker_pid(t.worker.home()).expect("the worker's pid");
    let orchestrator: &'static _ = Box::leak(Box::new(t.orchestrator.clone()));
    let mut terms: Vec<Stream> = (0..4)
        .map(|_| {
            let mut term = Stream::open_terminal(
                orchestrator,
                &t.worker_id,
                json!({ "containerId": id, "env": {"PS1": "prompt> "} }),
            );
            term.wait_for("prompt> ", WAIT);
            term
        })
        .collect();
    for term in &mut terms {
        term.send(b"yes 0123456789abcdefghijklmnopqrstuvwxyz\r");
    }
    Stream::wait_all(&mut terms, "a flood", WAIT, |s| s.output.len() > 2 * 1024 * 1024);
    let flowing = rss_kib(pid);

    // The orchestrator stops reading; four terminals keep writing as fast as they can.
    t.orchestrator.set_behavior(Behavior::HalfOpen);
    let stalled_at = Instant::now();
    let mut peak = 0;
    while stalled_at.elapsed() < Duration::from_secs(5) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    t.orchestrator.set_behavior(Behavior::Normal);
    eprintln!("{}: worker RSS while flowing {flowing} KiB, peak while stalled {peak} KiB", t.which.as_str());
    assert!(
        peak <= flowing + GROWTH_BOUND_KIB,
        "the worker grew from {flowing} KiB to {peak} KiB while its reader stalled"
    );

    // Reading again: every stream continues at the next offset (checked by `poll`), and keeps flowing.
    let resumed_from: Vec<usize> = terms.iter().map(|t| t.output.len()).collect();
    let channels: Vec<u32> = terms.iter().map(|t| t.channel).collect();
    Stream::wait_all(&mut terms, "more output", WAIT, |s| {
        let i = channels.iter().position(|c| *c == s.channel).unwrap();
        s.output.len() > resumed_from[i] + 1024 * 1024
    });
    for term in &terms {
        let closed = t.ok("terminal.close", json!({ "sessionId": term.session_id }));
        assert_eq!(closed["sessionId"], term.session_id.as_str());
    }
}

#[test]
fn docker() {
    slow_reader(&EngineRun::start(EngineName::Docker, "slow_reader"));
}

#[test]
fn podman() {
    slow_reader(&EngineRun::start(EngineName::Podman, "slow_reader"));
}
