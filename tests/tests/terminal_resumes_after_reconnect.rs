//! The WebSocket drops mid-session (the orchestrator dies and comes back on the
//! same address): the shell keeps running in the worker, and re-attaching with
//! the last offset received resumes its output with no byte lost or repeated.
//! When more than the replay buffer (1 MiB) was produced while detached, the
//! re-attach reports exactly how many bytes were lost and resumes after them.

mod streams;

use std::time::{Duration, Instant};

use cropscode_tests::orchestrator::{Orchestrator, OrchestratorConfig};
use cropscode_tests::*;
use serde_json::json;
use streams::*;

const WAIT: Duration = Duration::from_secs(60);
const LINES: usize = 2000;

/// Kills the orchestrator and starts a new one on its address; waits for the worker to register again.
fn restart_orchestrator(t: &mut EngineRun) {
    let addr = t.orchestrator.ws_addr();
    block_on(t.orchestrator.stop());
    let config = OrchestratorConfig { ws_addr: addr, ..OrchestratorConfig::with_token(TEST_TOKEN) };
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        match block_on(Orchestrator::start(config.clone())) {
            Ok(o) => break o,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot restart the orchestrator on {addr}: {e}"),
        }
    };
    t.orchestrator = fresh;
    wait_registered(&t.orchestrator, None, Duration::from_secs(30)).expect("the worker registers again");
}

fn leak(orchestrator: &Orchestrator) -> &'static Orchestrator {
    Box::leak(Box::new(orchestrator.clone()))
}

fn resume(t: &mut EngineRun) {
    let tenant = t.tenant("resume");
    let id = t.create_running("resume", &tenant);
    let params = json!({ "containerId": id, "tenant": tenant, "env": {"PS1": "prompt> "} });
    let mut before = Stream::open_terminal(leak(&t.orchestrator), &t.worker_id, params);
    before.wait_for("prompt> ", WAIT);

    // Numbered lines, slowly enough that the drop lands in the middle.
    let script =
        format!("i=0; while [ $i -lt {LINES} ]; do echo line-$i; i=$((i+1)); usleep 2000; done; echo DONE-$((1+1))");
    before.send(format!("{script}\r").as_bytes());
    before.wait_for("line-300\r\n", WAIT);
    restart_orchestrator(t);
    before.poll(); // everything the old orchestrator received
    let received = before.offset();
    assert!(!before.text().contains("DONE-2"), "the drop came too late to test anything");

    let session = before.session_id.clone();
    let reattach = json!({ "containerId": id, "tenant": tenant, "sessionId": session, "offset": received });
    let result = ok(&t.orchestrator, &t.worker_id, "terminal.open", reattach);
    assert_eq!(
        result,
        json!({ "sessionId": session, "channel": before.channel, "resumed": true, "offset": received, "lostBytes": 0 })
    );
    let mut after = Stream::attach(leak(&t.orchestrator), &t.worker_id, &result);
    after.wait_for("DONE-2", WAIT);

    let mut whole = before.output.clone();
    whole.extend_from_slice(&after.output);
    let text = String::from_utf8_lossy(&whole);
    let numbers: Vec<usize> =
        text.split("\r\n").filter_map(|line| line.strip_prefix("line-")).filter_map(|n| n.parse().ok()).collect();
    assert_eq!(numbers, (0..LINES).collect::<Vec<_>>(), "every line exactly once, in order");

    // The input side resumes too: the next input offset is what was accepted before.
    after.input_offset = before.input_offset;
    after.run("echo again-$((3*3))", "again-9");

    // Detached while more than the replay buffer is produced: the loss is reported.
    after.send(b"sleep 2; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo BIG-$((2+2))\r");
    let input_offset = after.input_offset;
    after.poll();
    restart_orchestrator(t);
    after.poll();
    let received = after.offset();
    // Wait for the output to be produced while nobody is attached.
    std::thread::sleep(Duration::from_secs(6));
    let reattach = json!({ "containerId": id, "sessionId": session, "offset": received });
    let result = ok(&t.orchestrator, &t.worker_id, "terminal.open", reattach);
    let lost = result["lostBytes"].as_u64().expect("lostBytes");
    assert!(lost > 0, "3 MB while detached cannot fit 1 MiB: {result}");
    assert_eq!(result["offset"].as_u64(), Some(received + lost), "{result}");
    let mut last = Stream::attach(leak(&t.orchestrator), &t.worker_id, &result);
    last.input_offset = input_offset;
    last.wait_for("BIG-4", WAIT);
    assert!(last.output.len() <= 1024 * 1024 + 4096, "at most the replay buffer is replayed: {}", last.output.len());
    assert!(last.text().contains("xxxxxxxx"), "the newest output is kept");
    last.run("echo still-$((4*4))", "still-16");
}

#[test]
fn docker() {
    let mut run = EngineRun::start(EngineName::Docker, "resume");
    resume(&mut run);
}

#[test]
fn podman() {
    let mut run = EngineRun::start(EngineName::Podman, "resume");
    resume(&mut run);
}
