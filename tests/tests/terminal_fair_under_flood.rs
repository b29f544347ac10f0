//! Many terminals share the socket: while one floods output as fast as the
//! container can write it, the others keep answering keystrokes promptly,
//! heartbeats keep their 1 s pace, and commands are answered without waiting
//! for the flood.

mod streams;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cropscode_tests::orchestrator::Event;
use cropscode_tests::*;
use serde_json::json;
use streams::*;

const WAIT: Duration = Duration::from_secs(30);
const QUIET: usize = 3;
const ROUNDS: usize = 15;

/// Records when heartbeats arrive, from the live feed: the flood pushes older
/// events out of the orchestrator's bounded log.
fn watch_heartbeats(t: &EngineRun) -> Arc<Mutex<Vec<Instant>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let feed = t.orchestrator.subscribe();
    let record = seen.clone();
    std::thread::spawn(move || {
        while let Ok(timed) = feed.recv_blocking() {
            if matches!(timed.event, Event::Heartbeat { .. }) {
                record.lock().unwrap().push(timed.at);
            }
        }
    });
    seen
}

fn fairness(t: &EngineRun) {
    let heartbeats = watch_heartbeats(t);
    let tenant = t.tenant("flood");
    let id = t.create_running("flood", &tenant);
    let orchestrator: &'static _ = Box::leak(Box::new(t.orchestrator.clone()));
    let open = || {
        let mut term =
            Stream::open_terminal(orchestrator, &t.worker_id, json!({ "containerId": id, "env": {"PS1": "prompt> "} }));
        term.wait_for("prompt> ", WAIT);
        term
    };
    let mut quiet: Vec<Stream> = (0..QUIET).map(|_| open()).collect();
    let mut flood = open();
    flood.skip_past_events();
    flood.send(b"yes 0123456789abcdefghijklmnopqrstuvwxyz\r");
    // Let the flood get going.
    flood.wait_until("a flood", WAIT, |s| s.output.len() > 4 * 1024 * 1024);
    let flood_started = Instant::now();

    // Keystroke round trips in the quiet sessions, while the flood runs.
    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        for (k, term) in quiet.iter_mut().enumerate() {
            let started = Instant::now();
            term.run(&format!("echo r{k}-{round}-$((1+{round}))"), &format!("r{k}-{round}-{}", round + 1));
            latencies.push(started.elapsed());
        }
    }
    // A command is answered without waiting behind the flood.
    let started = Instant::now();
    t.ok("container.list", json!({ "tenant": tenant }));
    let command_latency = started.elapsed();
    let flooded_for = flood_started.elapsed();
    if flooded_for < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_secs(4) - flooded_for);
    }
    let flood_window = (flood_started, Instant::now());

    // The flood really ran all along: the worker kept sending it.
    let flood_frames = t
        .orchestrator
        .events_since(0)
        .into_iter()
        .filter(|e| e.at > flood_window.0 && matches!(e.event, Event::Binary { .. }))
        .count();
    let closed = t.ok("terminal.close", json!({ "sessionId": flood.session_id }));
    assert_eq!(closed["sessionId"], flood.session_id.as_str());

    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let worst = latencies[latencies.len() - 1];
    eprintln!(
        "{}: keystroke round trip under flood: median {median:?}, worst {worst:?}; command {command_latency:?}; {flood_frames} flood frames",
        t.which.as_str()
    );
    assert!(flood_frames > 100, "the flood was not flowing ({flood_frames} frames)");
    assert!(median < Duration::from_millis(250), "median round trip {median:?} under a flood");
    assert!(worst < Duration::from_secs(2), "worst round trip {worst:?} under a flood");
    assert!(command_latency < Duration::from_secs(1), "container.list took {command_latency:?} under a flood");

    // Heartbeats kept their pace (interval 1 s) during the flood.
    let beats: Vec<Instant> = heartbeats
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|at| *at >= flood_window.0 && *at <= flood_window.1)
        .collect();
    assert!(beats.len() >= 3, "only {} heartbeats in {:?} of flood", beats.len(), flood_window.1 - flood_window.0);
    let longest = beats.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(longest < Duration::from_millis(1600), "a {longest:?} gap between heartbeats during the flood");
}

engine_tests!(fairness, |spec| spec.env("HEARTBEAT_INTERVAL", "1s"));
