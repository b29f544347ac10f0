//! Idle bytes on the wire per worker per day: computed from the protocol, then
//! measured with the real worker binary against the local orchestrator over TLS.
//!
//! ```sh
//! cargo run -p cropscode-tests --example idle_bandwidth               # 120 s measured
//! cargo run -p cropscode-tests --example idle_bandwidth -- --seconds 600
//! cargo run -p cropscode-tests --example idle_bandwidth -- --seconds 0   # computed figures only
//! ```
//!
//! **Computed.** An idle registered worker sends a `worker.heartbeat` every
//! `HEARTBEAT_INTERVAL` (10 s), encoded here with `cropscode_core::protocol` from
//! realistic figures, and a WebSocket ping after `ping_interval` (15 s) without
//! receiving anything. The orchestrator answers pings (pong) but not heartbeats,
//! so an idle worker receives only pongs: the heartbeats never suppress a ping.
//! Each WebSocket frame is one TLS 1.3 record here (the transport flushes each
//! frame); a record adds 22 bytes (5 header, 1 inner content type, 16 AEAD tag
//! with AES-GCM or ChaCha20-Poly1305). Client frames are masked (2–14 byte
//! header, 4 of them the mask), server frames are not.
//!
//! **Measured.** A byte-counting TCP proxy sits between the real `cropscode
//! worker` (debug build, environment as `WorkerSpec` sets it) and a TLS
//! orchestrator; after registration and a settling second, the TCP payload bytes
//! (TLS records, so the TLS overhead is included; TCP/IP headers and ACKs are
//! not) are counted both ways for `--seconds`, and extrapolated to a day.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cropscode_core::protocol::{Heartbeat, Outgoing, encode};
use cropscode_tests::orchestrator::{Event, Orchestrator, OrchestratorConfig, TlsIdentity};
use cropscode_tests::*;

const DAY: f64 = 86_400.0;
const HEARTBEAT_INTERVAL: f64 = 10.0;
const PING_INTERVAL: f64 = 15.0;
/// TLS 1.3 record: 5-byte header, 1-byte inner content type, 16-byte AEAD tag.
const TLS_RECORD: usize = 22;

/// A WebSocket frame's header: 2 bytes, +2 or +8 for the length, +4 for the client's mask.
fn ws_header(payload: usize, masked: bool) -> usize {
    let len = match payload {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + len + if masked { 4 } else { 0 }
}

fn main() -> ExitCode {
    let mut seconds = 120u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--seconds", Some(s)) => seconds = s,
            _ => {
                eprintln!("usage: idle_bandwidth [--seconds N]");
                return ExitCode::from(2);
            }
        }
    }
    let heartbeat = Heartbeat {
        cpu_usage: 3.2,
        memory_free: 1_932_735_283,
        disk_total: Some(31_914_983_424),
        disk_free: Some(17_179_869_184),
        containers_running: 2,
        ..Heartbeat::default()
    };
    let computed = computed(&heartbeat);
    if seconds == 0 {
        return ExitCode::SUCCESS;
    }
    match measure(Duration::from_secs(seconds)) {
        Ok(measured) => {
            println!();
            println!("| per worker per day | sent (worker → orchestrator) | received | total |");
            println!("|---|---|---|---|");
            let row = |name: &str, (up, down): (f64, f64)| {
                println!("| {name} | {} | {} | {} |", kib(up), kib(down), kib(up + down));
            };
            row("computed (TLS records)", computed);
            row(&format!("measured ({seconds} s, TCP payload)"), measured);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idle_bandwidth: measurement failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.0} KiB ({:.2} MiB)", bytes / 1024.0, bytes / 1024.0 / 1024.0)
}

/// Prints the computed figures; returns (sent, received) bytes per day.
fn computed(heartbeat: &Heartbeat) -> (f64, f64) {
    let json = encode(&Outgoing::Heartbeat(heartbeat.clone()));
    let hb_ws = json.len() + ws_header(json.len(), true);
    let hb_tls = hb_ws + TLS_RECORD;
    let ping_ws = ws_header(0, true);
    let ping_tls = ping_ws + TLS_RECORD;
    let pong_ws = ws_header(0, false);
    let pong_tls = pong_ws + TLS_RECORD;
    let heartbeats = DAY / HEARTBEAT_INTERVAL;
    let pings = DAY / PING_INTERVAL;
    println!("computed from the protocol (defaults: heartbeat every 10 s, ping after 15 s without receiving):");
    println!("  heartbeat JSON ({} bytes): {json}", json.len());
    println!(
        "  heartbeat: {} JSON + {} WebSocket (masked) + {TLS_RECORD} TLS = {hb_tls} bytes, {heartbeats:.0}/day",
        json.len(),
        hb_ws - json.len()
    );
    println!("  ping: {ping_ws} WebSocket (masked, empty) + {TLS_RECORD} TLS = {ping_tls} bytes, {pings:.0}/day");
    println!("  pong: {pong_ws} WebSocket + {TLS_RECORD} TLS = {pong_tls} bytes, {pings:.0}/day");
    println!("  the orchestrator answers no heartbeat, so only pongs are received and every 15 s a ping goes out");
    let up = heartbeats * hb_tls as f64 + pings * ping_tls as f64;
    let down = pings * pong_tls as f64;
    println!(
        "  per day: sent {} ({} of it heartbeats), received {}; total {}",
        kib(up),
        kib(heartbeats * hb_tls as f64),
        kib(down),
        kib(up + down)
    );
    // Below TLS, for the record: every segment carries 52 bytes of IPv4 + TCP (with
    // timestamps); a heartbeat is ACKed by a bare segment; a ping's pong carries
    // the ACK and is ACKed in turn.
    let segments = heartbeats * 2.0 + pings * 3.0;
    println!(
        "  with TCP/IPv4 headers (52 bytes a segment, {segments:.0} segments incl. ACKs): about {}",
        kib(up + down + segments * 52.0)
    );
    (up, down)
}

struct Counters {
    up: AtomicU64,
    down: AtomicU64,
}

/// Copies `from` → `to`, counting bytes, until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, count: Arc<Counters>, up: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let counter = if up { &count.up } else { &count.down };
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A loopback proxy to `target` counting TCP payload bytes; returns its address.
fn proxy(target: SocketAddr, count: Arc<Counters>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else { continue };
            let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => continue,
            };
            let (a, b) = (count.clone(), count.clone());
            std::thread::spawn(move || pump(client, server, a, true));
            std::thread::spawn(move || pump(s2, c2, b, false));
        }
    });
    Ok(addr)
}

/// Runs the real worker idle for `window`; returns (sent, received) bytes per day.
fn measure(window: Duration) -> Result<(f64, f64), String> {
    println!();
    println!("measuring: building and starting the worker (debug build) against a TLS orchestrator …");
    let ca = TestCa::new();
    let dir = TempDir::new("idle-bandwidth");
    let ca_file = ca.write_ca(dir.path());
    let config = OrchestratorConfig {
        tls: Some(TlsIdentity { cert_chain_pem: ca.cert_pem.clone(), key_pem: ca.key_pem.clone() }),
        ..OrchestratorConfig::with_token(TEST_TOKEN)
    };
    let orchestrator = block_on(Orchestrator::start(config)).map_err(|e| format!("start the orchestrator: {e}"))?;
    let count = Arc::new(Counters { up: AtomicU64::new(0), down: AtomicU64::new(0) });
    let addr = proxy(orchestrator.ws_addr(), count.clone()).map_err(|e| format!("start the proxy: {e}"))?;
    let url = format!("wss://localhost:{}/worker", addr.port());
    let mut worker =
        WorkerSpec::new(url).env("ORCHESTRATOR_CA_FILE", ca_file.to_string_lossy()).env("LOG_LEVEL", "info").spawn();
    let registered = wait_registered(&orchestrator, None, Duration::from_secs(120))
        .ok_or_else(|| format!("the worker did not register:\n{}", worker.logs()))?;
    std::thread::sleep(Duration::from_secs(1));
    let (up0, down0) = (count.up.load(Ordering::Relaxed), count.down.load(Ordering::Relaxed));
    let started = Instant::now();
    println!(
        "registered as {}; connection set up in {up0} bytes sent, {down0} received; idle for {window:?} …",
        registered.worker_id
    );
    std::thread::sleep(window);
    let elapsed = started.elapsed().as_secs_f64();
    let (up, down) = (count.up.load(Ordering::Relaxed) - up0, count.down.load(Ordering::Relaxed) - down0);
    let heartbeats: Vec<Heartbeat> = orchestrator
        .events()
        .into_iter()
        .filter_map(|t| match t.event {
            Event::Heartbeat { heartbeat, .. } => Some(heartbeat),
            _ => None,
        })
        .collect();
    let connections = orchestrator.events().into_iter().filter(|t| matches!(t.event, Event::Registered { .. })).count();
    worker.stop();
    if connections != 1 {
        return Err(format!("the worker registered {connections} times during the window; not idle"));
    }
    if let Some(last) = heartbeats.last() {
        let json = encode(&Outgoing::Heartbeat(last.clone()));
        println!("  the worker's last heartbeat ({} bytes): {json}", json.len());
    }
    println!("  {elapsed:.1} s idle: sent {up} bytes, received {down} bytes ({} heartbeats in all)", heartbeats.len());
    println!(
        "  per hour: sent {:.0} bytes, received {:.0} bytes",
        up as f64 * 3600.0 / elapsed,
        down as f64 * 3600.0 / elapsed
    );
    Ok((up as f64 * DAY / elapsed, down as f64 * DAY / elapsed))
}
