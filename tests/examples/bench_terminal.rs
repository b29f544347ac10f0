//! Terminal throughput and keystroke latency through a real worker (release
//! build), next to the engine's own path measured in the same run. Prints
//! figures only; asserts nothing about them.
//!
//! - **Throughput**: `cat` of a 128 MiB file in a busybox container, through a
//!   `terminal.open` session (a TTY set to raw, so the bytes pass unchanged)
//!   to the local orchestrator, next to the engine's CLI read by this process:
//!   `docker exec -i … cat` (or `podman --remote exec -i`; pipes, no TTY) and
//!   `exec -t` (a TTY, like a terminal), and next to an exec with a TTY
//!   attached directly on the engine socket — the engine's own TTY ceiling.
//! - **Keystroke round trip**: one byte sent in a binary frame until its echo
//!   arrives, through the worker, next to the same on an exec attached
//!   directly on the engine socket (cropscode-engine-api's client); the difference
//!   is what the worker (and the local orchestrator) add.
//!
//! Targets: throughput at least the CLI's; added round trip under 1 ms on loopback.
//!
//! ```text
//! sudo tests/env/prepare.sh        # once: Docker, Podman, test images
//! cargo run --release -p cropscode-tests --example bench_terminal [-- docker|podman]
//! ```

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cropscode_core::protocol::binary::{Channel, StreamFrame, StreamKind};
use cropscode_engine_api::ExecSpec;
use cropscode_tests::orchestrator::Event;
use cropscode_tests::*;
use serde_json::json;
use smol::io::{AsyncReadExt, AsyncWriteExt};

const FILE_BYTES: usize = 128 * 1024 * 1024;
const KEYSTROKES: usize = 300;
const WARMUP: usize = 20;

fn main() {
    let bin = cropscode_release_bin();
    for which in EngineName::from_args() {
        bench(which, bin);
    }
}

/// Output frames of one channel, as they reach the orchestrator: (when, payload).
fn channel_feed(t: &EngineRun, channel: u32) -> mpsc::Receiver<(Instant, Vec<u8>)> {
    let feed = t.orchestrator.subscribe();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(timed) = feed.recv_blocking() {
            let Event::Binary { bytes, .. } = timed.event else { continue };
            let Ok(frame) = StreamFrame::decode(&bytes, 1 << 20) else { continue };
            if frame.channel.get() == channel
                && frame.kind == StreamKind::Data
                && tx.send((timed.at, frame.payload.to_vec())).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Reads the feed until `marker` shows up; returns the bytes and frames read and when the
/// marker arrived.
fn read_until(feed: &mpsc::Receiver<(Instant, Vec<u8>)>, marker: &[u8]) -> (usize, usize, Instant) {
    let (mut total, mut frames) = (0, 0);
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let (at, payload) = feed.recv_timeout(Duration::from_secs(120)).expect("terminal output");
        total += payload.len();
        frames += 1;
        tail.extend_from_slice(&payload);
        if tail.windows(marker.len()).any(|w| w == marker) {
            return (total, frames, at);
        }
        let keep = tail.len().saturating_sub(marker.len());
        tail.drain(..keep);
    }
}

fn send(t: &EngineRun, channel: u32, offset: &mut u64, bytes: &[u8]) {
    let frame = StreamFrame { kind: StreamKind::Data, channel: Channel::new(channel), offset: *offset, payload: bytes };
    block_on(t.orchestrator.send_binary(&t.worker_id, frame.encode())).expect("send input");
    *offset += bytes.len() as u64;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e6
}

fn bench(which: EngineName, bin: &std::path::Path) {
    let t = EngineRun::start_with(which, "bench_terminal", |spec| spec.bin(bin).env("LOG_LEVEL", "info"));
    let tenant = t.tenant("bench");
    let id = t.create_running("bench", &tenant);
    let make = format!("head -c {FILE_BYTES} /dev/urandom > /tmp/big");
    t.ok("container.exec", json!({ "containerId": id, "command": ["sh", "-c", make] }));

    // Through the worker.
    let opened = t.ok("terminal.open", json!({ "containerId": id, "env": {"PS1": "prompt> "} }));
    let channel = opened["channel"].as_u64().expect("channel") as u32;
    let feed = channel_feed(&t, channel);
    let mut offset = 0u64;
    read_until(&feed, b"prompt> ");
    send(&t, channel, &mut offset, b"stty raw -echo; echo READY-$((1+1))\r");
    read_until(&feed, b"READY-2");
    let started = Instant::now();
    send(&t, channel, &mut offset, b"cat /tmp/big; echo DONE-$((2+2))\r");
    let (through_worker, frames, arrived) = read_until(&feed, b"DONE-4");
    let worker_time = arrived - started;

    // The engine's CLI, same container, same file: pipes, then a TTY.
    let (through_cli, cli_time) = cli_cat(&t, which, &id, "-i", "cat /tmp/big");
    let (through_cli_tty, cli_tty_time) = cli_cat(&t, which, &id, "-t", "stty raw; cat /tmp/big");

    // An exec with a TTY attached directly on the engine socket.
    let (through_direct, direct_time) = block_on(async {
        let cmd = vec!["sh".into(), "-c".into(), "stty raw; cat /tmp/big".into()];
        let spec = ExecSpec { cmd, tty: true, attach_stdin: true, ..ExecSpec::default() };
        let exec = t.client.create_exec(&id, &spec).await.expect("exec");
        let started = Instant::now();
        let mut io = t.client.attach_exec(&exec, true).await.expect("attach");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        (total, started.elapsed())
    });

    // Keystroke round trips through the worker: the TTY echoes each byte.
    send(&t, channel, &mut offset, b"stty -raw echo; cat > /dev/null\r");
    std::thread::sleep(Duration::from_millis(300));
    while feed.try_recv().is_ok() {}
    let mut worker_rtt = Vec::new();
    for n in 0..WARMUP + KEYSTROKES {
        let key = [b'a' + (n % 26) as u8];
        let sent = Instant::now();
        send(&t, channel, &mut offset, &key);
        loop {
            let (at, payload) = feed.recv_timeout(Duration::from_secs(10)).expect("the echo");
            if payload.contains(&key[0]) {
                if n >= WARMUP {
                    worker_rtt.push(at - sent);
                }
                break;
            }
        }
    }
    t.ok("terminal.close", json!({ "sessionId": opened["sessionId"] }));

    // The same on an exec attached directly on the engine socket.
    let direct_rtt = block_on(async {
        let spec = ExecSpec { cmd: vec!["cat".into()], tty: true, attach_stdin: true, ..ExecSpec::default() };
        let exec = t.client.create_exec(&id, &spec).await.expect("exec");
        let mut io = t.client.attach_exec(&exec, true).await.expect("attach");
        let mut samples = Vec::new();
        let mut echo = [0u8; 64];
        for n in 0..WARMUP + KEYSTROKES {
            let key = [b'a' + (n % 26) as u8];
            let sent = Instant::now();
            io.write_all(&key).await.expect("write");
            loop {
                let got = io.read(&mut echo).await.expect("read");
                if echo[..got].contains(&key[0]) {
                    break;
                }
            }
            if n >= WARMUP {
                samples.push(sent.elapsed());
            }
        }
        let _ = io.write_all(&[4]).await; // ^D ends cat
        samples
    });

    let worker_median = median(worker_rtt);
    let direct_median = median(direct_rtt);
    println!("{} — terminal", which.as_str());
    println!(
        "  throughput  through the worker {:8.1} MB/s ({through_worker} bytes in {worker_time:.2?}; {frames} frames, {} bytes each on average)",
        mb_per_s(through_worker, worker_time),
        through_worker / frames.max(1)
    );
    println!(
        "              {} exec -i cat {:8.1} MB/s ({through_cli} bytes in {cli_time:.2?}; pipes, no TTY)",
        which.as_str(),
        mb_per_s(through_cli, cli_time)
    );
    println!(
        "              {} exec -t cat {:8.1} MB/s ({through_cli_tty} bytes in {cli_tty_time:.2?}; a TTY)",
        which.as_str(),
        mb_per_s(through_cli_tty, cli_tty_time)
    );
    println!(
        "              direct TTY attach {:8.1} MB/s ({through_direct} bytes in {direct_time:.2?}; engine socket, no worker)",
        mb_per_s(through_direct, direct_time)
    );
    println!(
        "  keystroke   through the worker {worker_median:>9.3?} median, direct attach {direct_median:>9.3?}, added {:>9.3?}",
        worker_median.saturating_sub(direct_median)
    );
}

/// `<engine CLI> exec <flag> <id> sh -c <script>`, its stdout read to the end here: (bytes, time).
fn cli_cat(t: &EngineRun, which: EngineName, id: &str, flag: &str, script: &str) -> (usize, Duration) {
    let mut cli: Vec<String> = match which {
        EngineName::Docker => vec!["docker".into()],
        EngineName::Podman => {
            let url = format!("unix://{}", t.engines.socket(which).display());
            vec!["podman".into(), "--remote".into(), "--url".into(), url]
        }
    };
    cli.extend(["exec".into(), flag.into(), id.into(), "sh".into(), "-c".into(), script.into()]);
    let started = Instant::now();
    let mut child = Command::new(&cli[0])
        .args(&cli[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the engine's CLI");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    let _ = child.wait();
    (total, started.elapsed())
}
