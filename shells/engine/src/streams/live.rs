//! The open streams, by channel: their byte pipes (an attached exec or a TCP socket)
//! and where each is in its life (flowing, being closed, ending), so that every stream
//! ends exactly once, through [`LiveStreams::poll_read`], and only once the processes
//! it started are gone ([`session`](super::session)).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use cropscode_core::{StreamRead, StreamWrite};
use cropscode_engine_api::{Upgraded, with_timeout};
use futures_lite::{AsyncRead, AsyncWrite};

use super::session::{self, ExecHandle};

/// How long ending a stream may take before the worker lets go of it anyway.
const CLOSE_LIMIT: Duration = Duration::from_secs(15);
/// How long the exit code of an ended exec is waited for.
const EXIT_CODE_LIMIT: Duration = Duration::from_secs(5);

/// The bytes of one stream.
pub(super) enum Pipe {
    /// A terminal: the attached exec.
    Exec(Upgraded),
    /// A display relay.
    Tcp(async_net::TcpStream),
}

impl Pipe {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        match self {
            Pipe::Exec(io) => Pin::new(io).poll_read(cx, buf),
            Pipe::Tcp(io) => Pin::new(io).poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self {
            Pipe::Exec(io) => Pin::new(io).poll_write(cx, data),
            Pipe::Tcp(io) => Pin::new(io).poll_write(cx, data),
        }
    }
}

/// Where a stream is.
pub(super) enum Phase {
    Flowing,
    /// Being ended: the closer signals the processes (terminal) or has shut the socket.
    Closing(smol::Task<()>),
    /// Output ended; the exit code is being read and the session's leftover
    /// processes ended. The end is reported once both are done.
    Ending {
        exit_code: smol::Task<Option<i32>>,
        cleanup: Option<smol::Task<()>>,
    },
}

pub(super) struct Live {
    pub session_id: String,
    pub pipe: Option<Pipe>,
    pub exec: Option<ExecHandle>,
    pub phase: Phase,
}

/// The open streams, by channel. Shared by every clone of the engine.
#[derive(Clone, Default)]
pub(crate) struct LiveStreams {
    live: Arc<Mutex<HashMap<u32, Live>>>,
}

impl LiveStreams {
    pub(super) fn insert(&self, channel: u32, live: Live) {
        self.lock().insert(channel, live);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The terminal with `session_id`: its exec, for resizing.
    pub(super) fn exec_of(&self, session_id: &str) -> Option<ExecHandle> {
        self.lock().values().find(|live| live.session_id == session_id).and_then(|live| live.exec.clone())
    }

    /// Output of the stream on `channel`, then exactly one end.
    pub(crate) fn poll_read(&self, channel: u32, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<StreamRead> {
        let mut table = self.lock();
        let Some(live) = table.get_mut(&channel) else { return Poll::Ready(StreamRead::End { exit_code: None }) };
        loop {
            match &mut live.phase {
                Phase::Flowing | Phase::Closing(_) => {
                    let read = match live.pipe.as_mut() {
                        Some(pipe) => pipe.poll_read(cx, buf),
                        None => Poll::Ready(Ok(0)),
                    };
                    match read {
                        Poll::Ready(Ok(n)) if n > 0 => return Poll::Ready(StreamRead::Data(n)),
                        Poll::Ready(result) => {
                            if let Err(error) = result {
                                tracing::debug!(channel, %error, "stream read failed; ending it");
                            }
                            live.pipe = None;
                            let cleanup = match std::mem::replace(&mut live.phase, Phase::Flowing) {
                                // Still ending the session's processes: let it finish.
                                Phase::Closing(closer) => Some(closer),
                                // The shell is gone; whatever it left behind goes too.
                                _ => live.exec.clone().map(|exec| smol::spawn(session::reap(exec))),
                            };
                            live.phase = Phase::Ending { exit_code: exit_code(live.exec.clone()), cleanup };
                        }
                        Poll::Pending => {
                            // A closer that finished (or gave up) ends the stream even if the
                            // engine keeps the connection open.
                            let Phase::Closing(closer) = &mut live.phase else { return Poll::Pending };
                            if Pin::new(closer).poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                            live.pipe = None;
                            live.phase = Phase::Ending { exit_code: exit_code(live.exec.clone()), cleanup: None };
                        }
                    }
                }
                Phase::Ending { exit_code, cleanup } => {
                    if let Some(task) = cleanup {
                        if Pin::new(task).poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        *cleanup = None;
                    }
                    let Poll::Ready(exit_code) = Pin::new(exit_code).poll(cx) else { return Poll::Pending };
                    table.remove(&channel);
                    return Poll::Ready(StreamRead::End { exit_code });
                }
            }
        }
    }

    /// Input for the stream on `channel`.
    pub(crate) fn poll_write(&self, channel: u32, cx: &mut Context<'_>, data: &[u8]) -> Poll<StreamWrite> {
        let mut table = self.lock();
        let Some(live) = table.get_mut(&channel) else { return Poll::Ready(StreamWrite::Closed) };
        let Some(pipe) = live.pipe.as_mut().filter(|_| matches!(live.phase, Phase::Flowing)) else {
            return Poll::Ready(StreamWrite::Closed);
        };
        match pipe.poll_write(cx, data) {
            Poll::Ready(Ok(0)) => Poll::Ready(StreamWrite::Closed),
            Poll::Ready(Ok(n)) => Poll::Ready(StreamWrite::Written(n)),
            Poll::Ready(Err(error)) => {
                tracing::debug!(channel, %error, "stream write failed");
                Poll::Ready(StreamWrite::Closed)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Starts ending the stream on `channel`; its end follows through `poll_read`.
    pub(crate) fn close(&self, channel: u32) {
        let mut table = self.lock();
        let Some(live) = table.get_mut(&channel) else { return };
        if !matches!(live.phase, Phase::Flowing) {
            return;
        }
        let closer = match (&live.exec, live.pipe.as_mut()) {
            (Some(exec), _) => smol::spawn(session::end(exec.clone())),
            (None, Some(Pipe::Tcp(socket))) => {
                let _ = socket.shutdown(std::net::Shutdown::Both);
                smol::spawn(async {})
            }
            (None, _) => smol::spawn(async {}),
        };
        tracing::debug!(channel, session = %live.session_id, "ending stream");
        live.phase = Phase::Closing(closer);
    }

    /// Ends every stream and waits (bounded) until their processes are gone.
    pub(crate) async fn shutdown(&self) {
        // Whatever was under way is replaced by a complete ending of each terminal.
        let execs: Vec<ExecHandle> = {
            let mut table = self.lock();
            table.drain().filter_map(|(_, live)| live.exec).collect()
        };
        let tasks: Vec<smol::Task<()>> = execs.into_iter().map(|exec| smol::spawn(session::end(exec))).collect();
        let all = async {
            for task in tasks {
                task.await;
            }
        };
        let limit = async {
            smol::Timer::after(CLOSE_LIMIT).await;
        };
        futures_lite::future::or(all, limit).await;
    }
}

/// Reads the exit code of an ended terminal's exec (none for a display).
fn exit_code(exec: Option<ExecHandle>) -> smol::Task<Option<i32>> {
    smol::spawn(async move {
        let exec = exec?;
        let code = with_timeout("exec exit code", EXIT_CODE_LIMIT, exec.client.exec_exit_code(&exec.exec_id));
        match code.await {
            Ok(code) => Some(i32::try_from(code).unwrap_or(i32::MIN)),
            Err(error) => {
                tracing::debug!(exec = %exec.exec_id, %error, "no exit code for an ended terminal");
                None
            }
        }
    })
}
