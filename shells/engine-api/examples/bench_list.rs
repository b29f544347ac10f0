//! Latency of `GET /containers/json` through the client (kept-alive pooled connection)
//! next to the same request made raw: a fresh unix socket connection per request with a
//! hand-written HTTP/1.1 request, read to the end, and a raw kept-alive connection.
//! Prints figures; asserts nothing.
//!
//! ```text
//! cargo run --release -p cropscode-engine-api --example bench_list [-- SOCKET...]
//! ```
//! Without arguments it benchmarks the engines in /run/cropscode-test/engines.env
//! (written by tests/env/prepare.sh).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use cropscode_engine_api::{Endpoint, EngineClient, ListContainers};

const ROUNDS: usize = 300;
const WARMUP: usize = 20;
const PATH: &str = "/v1.41/containers/json?all=1";

fn main() {
    let mut sockets: Vec<String> = std::env::args().skip(1).collect();
    if sockets.is_empty() {
        let env = std::fs::read_to_string("/run/cropscode-test/engines.env")
            .expect("no sockets given and /run/cropscode-test/engines.env missing: run tests/env/prepare.sh");
        sockets = env
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter(|l| l.contains("_SOCK="))
            .filter_map(|l| l.split_once('=').map(|(_, v)| v.to_owned()))
            .collect();
    }
    for socket in sockets {
        smol::block_on(bench(&socket));
    }
}

async fn bench(socket: &str) {
    let (client, version) = match EngineClient::connect(Endpoint::Unix(socket.into())).await {
        Ok(found) => found,
        Err(e) => {
            println!("{socket}: {e}");
            return;
        }
    };
    let all = ListContainers { all: true, ..Default::default() };
    let count = client.list_containers(&all).await.map(|c| c.len()).unwrap_or(0);
    println!("{} {} at {socket} ({count} containers, {ROUNDS} rounds)", version.kind, version.version);

    let mut through_client = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let start = Instant::now();
        client.list_containers(&all).await.expect("list");
        if i >= WARMUP {
            through_client.push(start.elapsed());
        }
    }

    let mut raw_fresh = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let start = Instant::now();
        raw_request_fresh(socket);
        if i >= WARMUP {
            raw_fresh.push(start.elapsed());
        }
    }

    let mut raw_kept = Vec::with_capacity(ROUNDS);
    let stream = UnixStream::connect(socket).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    for i in 0..WARMUP + ROUNDS {
        let start = Instant::now();
        raw_request_kept(&mut writer, &mut reader);
        if i >= WARMUP {
            raw_kept.push(start.elapsed());
        }
    }

    let c = stats(&mut through_client);
    let f = stats(&mut raw_fresh);
    let k = stats(&mut raw_kept);
    println!("  {:<38} {:>10} {:>10}", "", "median", "p90");
    println!("  {:<38} {:>10.3?} {:>10.3?}", "client (pooled keep-alive, typed)", c.0, c.1);
    println!("  {:<38} {:>10.3?} {:>10.3?}", "raw request, new connection each", f.0, f.1);
    println!("  {:<38} {:>10.3?} {:>10.3?}", "raw request, kept-alive connection", k.0, k.1);
    println!(
        "  client / raw new connection: {:.2}x   client / raw kept-alive: {:.2}x   connections opened by the client: {}",
        c.0.as_secs_f64() / f.0.as_secs_f64(),
        c.0.as_secs_f64() / k.0.as_secs_f64(),
        client.connections_opened()
    );
}

fn stats(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10])
}

fn raw_request_fresh(socket: &str) {
    let mut stream = UnixStream::connect(socket).expect("connect");
    write!(stream, "GET {PATH} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

/// One request on a kept-alive connection; reads a Content-Length or chunked body.
fn raw_request_kept(writer: &mut UnixStream, reader: &mut BufReader<UnixStream>) {
    write!(writer, "GET {PATH} HTTP/1.1\r\nHost: docker\r\n\r\n").expect("write");
    let mut line = String::new();
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if header.starts_with("transfer-encoding:") && header.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length.expect("content-length")];
        reader.read_exact(&mut body).expect("body");
    }
}
