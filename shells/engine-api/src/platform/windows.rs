//! Windows: Docker Desktop listens on `\\.\pipe\docker_engine`, Podman machine on
//! `\\.\pipe\podman-machine-default` (see [`crate::discovery`]).
//!
//! Compiled (cross/platforms.sh builds and tests it for windows-gnu, under Wine), not yet
//! run against a real engine: the pipe is opened as a file and driven on smol's blocking
//! pool. A synchronous pipe handle serialises its I/O, so a pending read delays the next
//! write on the same connection; the pool opens a fresh connection when the idle one is
//! not ready, which keeps requests moving. Overlapped I/O is the follow-up when Windows
//! becomes a tested platform.

use std::fs::{File, OpenOptions};
use std::io;
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;

pub(crate) type Stream = smol::Unblock<File>;

/// `ERROR_PIPE_BUSY`: every instance of the pipe is serving another client right now.
const ERROR_PIPE_BUSY: i32 = 231;
/// How long a busy pipe is retried before the engine counts as unavailable.
const BUSY_WAIT: Duration = Duration::from_secs(2);

pub(crate) async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
    match endpoint {
        Endpoint::NamedPipe(path) => {
            let path = path.clone();
            let file = smol::unblock(move || open_pipe(&path)).await?;
            Ok(smol::Unblock::new(file))
        }
        Endpoint::Unix(_) => {
            Err(io::Error::new(io::ErrorKind::Unsupported, "unix engine sockets are not supported on Windows"))
        }
    }
}

/// Opens the client end of a pipe. A server that has all its instances in use answers
/// `ERROR_PIPE_BUSY` until one is free (what `WaitNamedPipe` waits for): retried briefly,
/// as the engines' own clients do.
fn open_pipe(path: &std::path::Path) -> io::Result<File> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match OpenOptions::new().read(true).write(true).open(path) {
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}
