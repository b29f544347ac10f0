//! End-to-end latency of `container.list` and `container.exec` from the local
//! orchestrator through a real worker (release build) to each engine, next to the same
//! call made directly on the engine socket with cropscode-engine-api's client (a kept-alive
//! pooled connection, as the worker uses), the two timed in alternation. Prints median and
//! p99 of each, the ratio and the milliseconds the worker adds. A benchmark, not a test:
//! it asserts nothing about the figures.
//! Target: the worker adds under 1 ms to a list.
//!
//! ```text
//! sudo tests/env/prepare.sh        # once: Docker, Podman, test images
//! cargo run --release -p cropscode-tests --example bench_engine_latency [-- docker|podman]
//! ```
//! It builds the release `cropscode` binary first, and removes the container it creates.

use std::time::{Duration, Instant};

use cropscode_engine_api::{ExecLimits, ExecSpec, ListContainers};
use cropscode_tests::*;
use serde_json::json;

const LIST_ROUNDS: usize = 300;
const EXEC_ROUNDS: usize = 100;
const WARMUP: usize = 10;

fn main() {
    let bin = cropscode_release_bin();
    for which in EngineName::from_args() {
        bench(which, bin);
    }
}

struct Figures {
    median: Duration,
    p99: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Figures { median: at(0.5), p99: at(0.99) }
}

/// Times `direct` and `worker` in alternation, so that load from elsewhere on the machine
/// falls on both alike: (direct, worker).
fn time_pair(rounds: usize, mut direct: impl FnMut(), mut worker: impl FnMut()) -> (Figures, Figures) {
    for _ in 0..WARMUP {
        direct();
        worker();
    }
    let mut direct_samples = Vec::with_capacity(rounds);
    let mut worker_samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        direct();
        direct_samples.push(start.elapsed());
        let start = Instant::now();
        worker();
        worker_samples.push(start.elapsed());
    }
    (figures(direct_samples), figures(worker_samples))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(what: &str, direct: &Figures, worker: &Figures) {
    println!(
        "  {what:<16} direct {:>8.3} / {:>8.3} ms   worker {:>8.3} / {:>8.3} ms   ratio {:>5.2}x   added {:>+7.3} ms (median) {:>+7.3} ms (p99)",
        ms(direct.median),
        ms(direct.p99),
        ms(worker.median),
        ms(worker.p99),
        ms(worker.median) / ms(direct.median),
        ms(worker.median) - ms(direct.median),
        ms(worker.p99) - ms(direct.p99),
    );
}

fn bench(which: EngineName, bin: &std::path::Path) {
    let t = EngineRun::start_with(which, "bench", |spec| spec.bin(bin).env("LOG_LEVEL", "info"));
    let tenant = t.tenant("bench");
    let id = t.create_running("bench", &tenant);
    let engine_total = block_on(t.client.list_containers(&ListContainers { all: true, ..Default::default() }))
        .map(|c| c.len())
        .unwrap_or(0);
    println!(
        "{} ({} containers on the engine; median / p99 over {LIST_ROUNDS} lists, {EXEC_ROUNDS} execs)",
        which.as_str(),
        engine_total
    );

    // The list the worker makes for `container.list`: this worker's containers of one tenant.
    let filter = ListContainers {
        all: true,
        labels: vec![
            "cropscode.managed=true".into(),
            format!("cropscode.worker={}", t.worker_id),
            format!("cropscode.tenant={tenant}"),
        ],
        ..Default::default()
    };
    let (direct_list, worker_list) = time_pair(
        LIST_ROUNDS,
        || {
            let found = block_on(t.client.list_containers(&filter)).expect("direct list");
            assert_eq!(found.len(), 1);
        },
        || {
            let listed = t.ok("container.list", json!({ "tenant": tenant }));
            assert_eq!(listed["containers"].as_array().map(Vec::len), Some(1));
        },
    );
    row("container.list", &direct_list, &worker_list);

    let spec = ExecSpec { cmd: vec!["true".into()], ..Default::default() };
    let (direct_exec, worker_exec) = time_pair(
        EXEC_ROUNDS,
        || {
            let out = block_on(t.client.exec(&id, &spec, ExecLimits::default())).expect("direct exec");
            assert_eq!(out.exit_code, 0);
        },
        || {
            let out = t.ok("container.exec", json!({ "containerId": id, "command": ["true"] }));
            assert_eq!(out["exitCode"], 0);
        },
    );
    row("container.exec", &direct_exec, &worker_exec);
}
