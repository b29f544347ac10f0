//! The async driver: one [`Session`] over a [`Connector`], an [`Engine`], a
//! [`Clock`] and a [`SystemProbe`], until shutdown.
//!
//! [`run`] spawns nothing and owns no runtime. Each turn of its loop drains
//! the session (frames to the transport, events to their handlers), then
//! waits for whichever comes first: shutdown, the pending connection attempt,
//! a command's progress or result, a received frame, output of a live stream
//! (read only where the session grants a window), input written to one, or
//! the session's next deadline. Commands run concurrently in a `SelectAll` of
//! executions that lives across connections, so a command keeps running while
//! the worker reconnects and its result is held until it can be sent.
//!
//! Fairness: the sources that can be ready again and again (command steps,
//! received frames, stream reads, stream writes) are polled in a rotating
//! order, so none starves the others; and when the session still has stream
//! output after spending its turn's budget, the wait does not block: it takes
//! whatever else is ready, then starts a new turn.

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use crate::dispatch::{Running, dispatch};
use crate::protocol::Channel;
use crate::session::{Event, Input, Output, Session};
use crate::time::{Instant, with_timeout};
use crate::traits::{
    Clock, Connector, Engine, Frame, Step, StreamRead, StreamWrite, SystemProbe, Transport, TransportError,
};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use futures_util::stream::{SelectAll, Stream};

/// How long the goodbye `Close` frame may take to send on shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most stream output read from the engine at once.
const READ_CHUNK: usize = 32 * 1024;

/// Extra reads of a stream whose output is ready at once, after the one that woke the loop.
const READ_ON_MAX: usize = 8;

/// What ended a wait.
enum Wake<T> {
    Shutdown,
    Connected(Result<T, TransportError>),
    Stepped((String, Step)),
    Received(Result<Frame, TransportError>),
    /// Stream output (in the scratch buffer) or its end.
    Read(Channel, StreamRead),
    Wrote(Channel, StreamWrite),
    Timer,
    /// Nothing was ready, but the session has stream output left for a new turn.
    Turn,
}

/// Drives `session` until `shutdown` completes, then sends `Close(1000)` if
/// connected and returns. `on_event` sees every [`Event`] before it is acted on.
///
/// A send that takes longer than the session's `liveness_timeout` counts as a
/// broken connection, so a stalled socket cannot stall the worker.
pub async fn run<C: Connector, E: Engine, K: Clock, P: SystemProbe>(
    session: &mut Session,
    connector: &C,
    engine: &E,
    clock: &K,
    probe: &mut P,
    on_event: &mut dyn FnMut(&Event),
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = pin!(shutdown);
    let mut connecting = pin!(Option::<C::Connect<'_>>::None);
    let mut transport: Option<C::Transport> = None;
    let mut running = SelectAll::new();
    let send_timeout = session.config().liveness_timeout;
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut rotation = 0usize;

    loop {
        // Drain: frames first, then events (answering one may queue more
        // frames), until the session names its next deadline.
        let deadline = loop {
            match session.poll_output() {
                Output::Transmit(frame) => {
                    let Some(link) = transport.as_mut() else {
                        tracing::trace!("dropping a frame queued without a connection");
                        continue;
                    };
                    if let Err(error) = send(link, frame, clock, send_timeout).await {
                        session.handle_input(clock.now(), Input::Disconnected(&error));
                        transport = None;
                    }
                }
                Output::Event(event) => {
                    on_event(&event);
                    match event {
                        Event::Connect => {
                            transport = None;
                            connecting.set(Some(connector.connect()));
                        }
                        Event::Disconnect { .. } => transport = None,
                        Event::Execute { id, command } => running.push(dispatch(engine, id, command)),
                        Event::OpenStream { id, stream, command } => {
                            tracing::debug!(id = %id, channel = stream.channel.get(), session = %stream.session_id, "opening a stream");
                            running.push(Running::new(id, engine.open_stream(stream, command)));
                        }
                        Event::CloseStream { channel } => engine.close_stream(channel),
                        // Before any command of this registration: it runs under this id.
                        Event::Registered { worker_id, .. } => engine.registered(&worker_id),
                        Event::HeartbeatDue => {
                            let mut figures = probe.heartbeat();
                            if let Some(running) = engine.containers_running() {
                                figures.containers_running = running;
                            }
                            session.handle_input(clock.now(), Input::Heartbeat(figures));
                        }
                        _ => {}
                    }
                }
                Output::Timeout(deadline) => break deadline,
            }
        };
        if !session.state().is_connected() {
            // E.g. a Close frame: the session has let go of the connection.
            transport = None;
        }
        // A deadline that passed while frames kept arriving is served before waiting again.
        let now = clock.now();
        if deadline <= now {
            session.handle_input(now, Input::Timeout);
            continue;
        }

        let wake = {
            let backlog = session.has_stream_backlog();
            let reads: Vec<(Channel, usize)> = session.stream_reads().collect();
            let writes: Vec<(Channel, &[u8])> = session.stream_writes().collect();
            let scratch = &mut scratch[..];
            rotation = rotation.wrapping_add(1);
            let mut sleep = pin!((deadline != Instant::NEVER).then(|| clock.sleep_until(deadline)));
            let mut recv = pin!(transport.as_mut().map(|link| link.recv()));
            poll_fn(|cx| {
                if shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Shutdown);
                }
                if let Some(connect) = connecting.as_mut().as_pin_mut()
                    && let Poll::Ready(result) = connect.poll(cx)
                {
                    return Poll::Ready(Wake::Connected(result));
                }
                for source in 0..4 {
                    match (rotation + source) % 4 {
                        0 => {
                            if !running.is_empty()
                                && let Poll::Ready(Some(done)) = core::pin::Pin::new(&mut running).poll_next(cx)
                            {
                                return Poll::Ready(Wake::Stepped(done));
                            }
                        }
                        1 => {
                            if let Some(recv) = recv.as_mut().as_pin_mut()
                                && let Poll::Ready(result) = recv.poll(cx)
                            {
                                return Poll::Ready(Wake::Received(result));
                            }
                        }
                        2 => {
                            for k in 0..reads.len() {
                                let (channel, max) = reads[(rotation + k) % reads.len()];
                                let buf = &mut scratch[..max.min(READ_CHUNK)];
                                if let Poll::Ready(read) = engine.poll_stream_read(channel, cx, buf) {
                                    return Poll::Ready(Wake::Read(channel, read));
                                }
                            }
                        }
                        _ => {
                            for k in 0..writes.len() {
                                let (channel, data) = writes[(rotation + k) % writes.len()];
                                if let Poll::Ready(wrote) = engine.poll_stream_write(channel, cx, data) {
                                    return Poll::Ready(Wake::Wrote(channel, wrote));
                                }
                            }
                        }
                    }
                }
                if let Some(sleep) = sleep.as_mut().as_pin_mut()
                    && sleep.poll(cx).is_ready()
                {
                    return Poll::Ready(Wake::Timer);
                }
                if backlog {
                    return Poll::Ready(Wake::Turn);
                }
                Poll::Pending
            })
            .await
        };

        let now = clock.now();
        match wake {
            Wake::Shutdown => {
                tracing::info!("shutting down");
                // Nothing may be left running in the containers.
                for channel in session.streams().engine_channels() {
                    engine.close_stream(channel);
                }
                if let Some(link) = transport.as_mut().filter(|_| session.state().is_connected()) {
                    let close = Frame::Close { code: 1000, reason: "worker shutting down".into() };
                    if let Err(error) = send(link, close, clock, CLOSE_TIMEOUT).await {
                        tracing::debug!(%error, "could not send the close frame");
                    }
                }
                return;
            }
            Wake::Connected(result) => {
                connecting.set(None);
                match result {
                    Ok(link) => {
                        transport = Some(link);
                        session.handle_input(now, Input::Connected);
                    }
                    Err(error) => session.handle_input(now, Input::ConnectFailed(&error)),
                }
            }
            Wake::Stepped((id, Step::Progress(progress))) => {
                session.handle_input(now, Input::CommandProgress { id, progress })
            }
            Wake::Stepped((id, Step::Done(outcome))) => {
                match &outcome {
                    Ok(_) => tracing::debug!(id = %id, "command succeeded"),
                    Err(error) => tracing::info!(id = %id, %error, "command failed"),
                }
                session.handle_input(now, Input::CommandResult { id, outcome })
            }
            Wake::Received(Ok(frame)) => session.handle_input(now, Input::Frame(frame)),
            Wake::Received(Err(error)) => {
                transport = None;
                session.handle_input(now, Input::Disconnected(&error));
            }
            Wake::Read(channel, StreamRead::Data(n)) => {
                session.handle_input(now, Input::StreamData { channel, data: &scratch[..n.min(READ_CHUNK)] });
                read_on(session, engine, channel, &mut scratch, now);
            }
            Wake::Read(channel, StreamRead::End { exit_code }) => {
                session.handle_input(now, Input::StreamEnd { channel, exit_code })
            }
            Wake::Wrote(channel, StreamWrite::Written(n)) => {
                session.handle_input(now, Input::StreamWritten { channel, written: n })
            }
            Wake::Wrote(channel, StreamWrite::Closed) => {
                session.handle_input(now, Input::StreamInputClosed { channel })
            }
            Wake::Timer | Wake::Turn => session.handle_input(now, Input::Timeout),
        }
    }
}

/// Takes more output of `channel` that is ready at once (as far as its window
/// allows, at most a few reads), so output leaves in full frames and a fast
/// stream does not cost a loop turn per read. What is not ready waits for the
/// next turn, which polls every stream with the real waker again.
fn read_on<E: Engine>(session: &mut Session, engine: &E, channel: Channel, scratch: &mut [u8], now: Instant) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..READ_ON_MAX {
        let Some((_, max)) = session.stream_reads().find(|(c, _)| *c == channel) else { return };
        let buf = &mut scratch[..max.min(READ_CHUNK)];
        match engine.poll_stream_read(channel, &mut cx, buf) {
            Poll::Ready(StreamRead::Data(n)) => {
                session.handle_input(now, Input::StreamData { channel, data: &buf[..n.min(buf.len())] })
            }
            Poll::Ready(StreamRead::End { exit_code }) => {
                return session.handle_input(now, Input::StreamEnd { channel, exit_code });
            }
            Poll::Pending => return,
        }
    }
}

/// Sends one frame, giving up after `timeout`. The timer is armed only when
/// the frame cannot be sent at once.
async fn send<T: Transport, K: Clock>(
    transport: &mut T,
    frame: Frame,
    clock: &K,
    timeout: Duration,
) -> Result<(), TransportError> {
    let sleep = || clock.sleep_until(clock.now() + timeout);
    with_timeout(sleep, transport.send(frame)).await.unwrap_or(Err(TransportError::Timeout))
}
