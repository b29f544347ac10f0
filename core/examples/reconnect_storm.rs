//! A reconnect storm at fleet scale, simulated with the core's real `Session`
//! and backoff under a simulated clock (see `core/tests/common/storm.rs` for the
//! model): N workers lose the orchestrator at t = 0, it is down for `--outage`
//! seconds, then it comes back.
//!
//! ```sh
//! cargo run -p cropscode-core --release --example reconnect_storm            # 1k/10k/100k, jitter 0 and 1
//! cargo run -p cropscode-core --release --example reconnect_storm -- --workers 10000 --jitter 1 --histogram
//! ```
//!
//! Options: `--workers N` (repeatable; default 1000, 10000, 100000), `--jitter F`
//! (repeatable; default 0 and 1), `--initial-ms MS` (the backoff's first delay,
//! 1000: to try another schedule, not the fleet's), `--outage SECS` (60), `--rtt-ms MS` (10),
//! `--service-ms MS` (2), `--capacity K` (upgrades accepted per 100 ms after the
//! return; default unlimited), `--seed S` (1), `--histogram` (per-second rows).
//!
//! Prints, per run: the attempts, the arrival rate's peak over mean per 100 ms
//! bucket over the outage and over the recovery (from the return until 99 % are
//! registered), the time until 99 % and 100 % are registered after the return,
//! and a sparkline of the arrival rate (one character per second, the fullest
//! 100 ms bucket of that second, scaled to the run's peak).

use std::process::ExitCode;
use std::time::{Duration, Instant as WallClock};

#[path = "../tests/common/storm.rs"]
mod storm;

use storm::{StormConfig, StormReport};

/// The target of docs/benchmarks.md: the recovery's peak over mean with jitter.
const TARGET_PEAK_OVER_MEAN: f64 = 3.0;

fn main() -> ExitCode {
    let mut base = StormConfig::default();
    let (mut workers, mut jitters, mut histogram) = (Vec::new(), Vec::new(), false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| match args.next().map(|v| v.parse::<f64>()) {
            Some(Ok(v)) if v >= 0.0 => Ok(v),
            _ => Err(format!("{name} needs a non-negative number")),
        };
        let parsed = match arg.as_str() {
            "--workers" => value("--workers").map(|v| workers.push(v as usize)),
            "--jitter" => value("--jitter").map(|v| jitters.push(v as f32)),
            "--initial-ms" => value("--initial-ms").map(|v| base.backoff_initial = Duration::from_millis(v as u64)),
            "--outage" => value("--outage").map(|v| base.outage = Duration::from_secs_f64(v)),
            "--rtt-ms" => value("--rtt-ms").map(|v| base.rtt = Duration::from_millis(v as u64)),
            "--service-ms" => value("--service-ms").map(|v| base.service = Duration::from_millis(v as u64)),
            "--capacity" => value("--capacity").map(|v| base.capacity = Some(v as u32)),
            "--seed" => value("--seed").map(|v| base.seed = v as u64),
            "--histogram" => {
                histogram = true;
                Ok(())
            }
            other => {
                Err(format!("unknown argument {other}; see the doc at the top of core/examples/reconnect_storm.rs"))
            }
        };
        if let Err(message) = parsed {
            eprintln!("reconnect_storm: {message}");
            return ExitCode::from(2);
        }
    }
    if workers.is_empty() {
        workers = vec![1000, 10_000, 100_000];
    }
    if jitters.is_empty() {
        jitters = vec![0.0, 1.0];
    }

    println!(
        "reconnect storm: backoff initial {:?}, outage {:?}, rtt {:?}, service {:?}, capacity {}, seed {}; 100 ms buckets",
        base.backoff_initial,
        base.outage,
        base.rtt,
        base.service,
        base.capacity.map_or("unlimited".into(), |k| format!("{k} upgrades/100 ms")),
        base.seed
    );
    let mut rows = Vec::new();
    for &n in &workers {
        for &jitter in &jitters {
            let config = StormConfig { workers: n, jitter, ..base.clone() };
            let started = WallClock::now();
            let report = storm::run(&config);
            let wall = started.elapsed();
            print_run(&report, wall, histogram);
            rows.push((report, wall));
        }
    }
    println!();
    println!(
        "| workers | jitter | attempts | outage peak / mean (per 100 ms) | recovery peak / mean (per 100 ms) | 99 % registered | 100 % | capacity 503s | sim time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut missed = false;
    for (report, wall) in &rows {
        let c = &report.config;
        let outage = report.outage_window();
        let recovery = report.recovery_window();
        let rec =
            recovery.map_or("—".into(), |w| format!("{} / {:.1} = **{:.2}**", w.peak, w.mean(), w.peak_over_mean()));
        if c.jitter > 0.0 && recovery.is_none_or(|w| w.peak_over_mean() > TARGET_PEAK_OVER_MEAN) {
            missed = true;
        }
        println!(
            "| {} | {} | {} | {} / {:.1} = {:.1} | {} | {} | {} | {} | {:.1} s |",
            c.workers,
            c.jitter,
            report.attempt_times.len(),
            outage.peak,
            outage.mean(),
            outage.peak_over_mean(),
            rec,
            secs(report.registered_after_return(0.99)),
            secs(report.registered_after_return(1.0)),
            report.refused_for_capacity,
            wall.as_secs_f64(),
        );
    }
    println!();
    println!(
        "target: recovery peak/mean <= {TARGET_PEAK_OVER_MEAN} with jitter: {}",
        if missed { "MISSED (see above)" } else { "met" }
    );
    ExitCode::SUCCESS
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn print_run(report: &StormReport, wall: Duration, histogram: bool) {
    let c = &report.config;
    let buckets = report.buckets();
    let ret = report.return_ms();
    println!();
    println!(
        "{} workers, jitter {}: {} attempts ({} during the outage), {} inputs in {:.2} s",
        c.workers,
        c.jitter,
        report.attempt_times.len(),
        report.attempt_times.iter().filter(|&&t| t < ret).count(),
        report.inputs,
        wall.as_secs_f64()
    );
    let registered = report.registered_times.len();
    if registered < c.workers {
        println!("  {} workers never registered again", c.workers - registered);
    }
    let peak = buckets.iter().copied().max().unwrap_or(0).max(1);
    let mut top: Vec<(usize, u64)> = buckets.iter().copied().enumerate().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> = top.iter().take(5).map(|(b, n)| format!("{:.1}s:{n}", *b as f64 / 10.0)).collect();
    println!("  fullest 100 ms buckets (start after t=0: attempts): {}", top.join("  "));
    const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let seconds: Vec<u64> = buckets.chunks(10).map(|s| s.iter().copied().max().unwrap_or(0)).collect();
    let line: String =
        seconds.iter().map(|&m| BARS[if m == 0 { 0 } else { (1 + m * 7 / peak) as usize }.min(8)]).collect();
    for (row, chunk) in line.chars().collect::<Vec<_>>().chunks(60).enumerate() {
        println!("  {:>4}s |{}|", row * 60, chunk.iter().collect::<String>());
    }
    if histogram {
        for (s, chunk) in buckets.chunks(10).enumerate() {
            let sum: u64 = chunk.iter().sum();
            let max = chunk.iter().copied().max().unwrap_or(0);
            if sum > 0 {
                let bar = "#".repeat((max * 50).div_ceil(peak) as usize);
                println!("  {s:>4}s  sum {sum:>7}  max/100ms {max:>7}  {bar}");
            }
        }
    }
}
