//! `cropscode status` really connects to the orchestrator (TCP + WebSocket
//! upgrade with the token) and tells "ok", "token refused" and "unreachable" apart.

mod common;
use common::*;

use cropscode_orchestrator::{Orchestrator, OrchestratorConfig};

fn orchestrator_line(run: &Run) -> String {
    run.stdout.lines().find(|l| l.starts_with("Orchestrator:")).expect("an Orchestrator line").to_owned()
}

#[test]
fn ok_refused_and_no_token() {
    let orchestrator = smol::block_on(Orchestrator::start(OrchestratorConfig::with_token(TOKEN))).unwrap();
    let url = orchestrator.ws_url();
    let home = Home::new("reach");

    let run = home.run(&["status", "--url", &url], &[("WORKER_TOKEN", TOKEN)]);
    run.assert_ok();
    assert!(orchestrator_line(&run).contains("ok"), "{}", run.stdout);

    let run = home.run(&["status", "--url", &url], &[("WORKER_TOKEN", "tok_wrong_123456")]);
    run.assert_ok();
    let line = orchestrator_line(&run);
    assert!(line.contains("auth refused") && line.contains("401"), "{line}");

    let run = home.run(&["status", "--url", &url], &[]);
    let line = orchestrator_line(&run);
    assert!(line.contains("no token is set"), "{line}");

    assert!(!run.all().contains(TOKEN));
}
