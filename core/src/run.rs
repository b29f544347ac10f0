//! The async driver: one [`Session`] over a [`Connector`], an [`Engine`], a
//! [`Clock`] and a [`SystemProbe`], until shutdown.
//!
//! [`run`] spawns nothing and owns no runtime. Each turn of its loop drains
//! the session (frames to the transport, events to their handlers), then
//! waits for whichever comes first: shutdown, the pending connection attempt,
//! a command's progress or result, a received frame, or the session's next deadline.
//! Commands run concurrently in a `SelectAll` of executions that lives across
//! connections, so a command keeps running while the worker reconnects and
//! its result is held until it can be sent.

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use crate::dispatch::dispatch;
use crate::session::{Event, Session};
use crate::traits::{Clock, Connector, Engine, Frame, Step, SystemProbe, Transport, TransportError};
use alloc::string::String;
use futures_util::stream::{SelectAll, Stream};

/// How long the goodbye `Close` frame may take to send on shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What ended a wait.
enum Wake<T> {
    Shutdown,
    Connected(Result<T, TransportError>),
    Stepped((String, Step)),
    Received(Result<Frame, TransportError>),
    Timer,
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

    loop {
        // Drain: frames first, then events; answering an event may queue more frames.
        loop {
            while let Some(frame) = session.poll_transmit() {
                let Some(link) = transport.as_mut() else {
                    tracing::trace!("dropping a frame queued without a connection");
                    continue;
                };
                if let Err(error) = send(link, frame, clock, send_timeout).await {
                    session.handle_disconnected(clock.now(), &error);
                    transport = None;
                }
            }
            let Some(event) = session.poll_event() else { break };
            on_event(&event);
            match event {
                Event::Connect => {
                    transport = None;
                    connecting.set(Some(connector.connect()));
                }
                Event::Disconnect { .. } => transport = None,
                Event::Execute { id, command } => running.push(dispatch(engine, id, command)),
                Event::HeartbeatDue => {
                    let figures = probe.heartbeat();
                    session.handle_heartbeat(clock.now(), figures);
                }
                _ => {}
            }
        }
        if !session.state().is_connected() {
            // E.g. a Close frame: the session has let go of the connection.
            transport = None;
        }
        // A deadline that passed while frames kept arriving is served before waiting again.
        let now = clock.now();
        if session.poll_timeout().is_some_and(|deadline| deadline <= now) {
            session.handle_timeout(now);
            continue;
        }

        let wake = {
            let deadline = session.poll_timeout();
            let mut sleep = pin!(deadline.map(|deadline| clock.sleep_until(deadline)));
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
                if !running.is_empty()
                    && let Poll::Ready(Some(done)) = core::pin::Pin::new(&mut running).poll_next(cx)
                {
                    return Poll::Ready(Wake::Stepped(done));
                }
                if let Some(recv) = recv.as_mut().as_pin_mut()
                    && let Poll::Ready(result) = recv.poll(cx)
                {
                    return Poll::Ready(Wake::Received(result));
                }
                if let Some(sleep) = sleep.as_mut().as_pin_mut()
                    && sleep.poll(cx).is_ready()
                {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await
        };

        let now = clock.now();
        match wake {
            Wake::Shutdown => {
                tracing::info!("shutting down");
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
                        session.handle_connected(now);
                    }
                    Err(error) => session.handle_connect_failed(now, &error),
                }
            }
            Wake::Stepped((id, Step::Progress(progress))) => session.handle_command_progress(now, id, progress),
            Wake::Stepped((id, Step::Done(outcome))) => {
                match &outcome {
                    Ok(_) => tracing::debug!(id = %id, "command succeeded"),
                    Err(error) => tracing::info!(id = %id, %error, "command failed"),
                }
                session.handle_command_result(now, id, outcome)
            }
            Wake::Received(Ok(frame)) => session.handle_frame(now, frame),
            Wake::Received(Err(error)) => {
                transport = None;
                session.handle_disconnected(now, &error);
            }
            Wake::Timer => session.handle_timeout(now),
        }
    }
}

/// Sends one frame, giving up after `timeout`.
async fn send<T: Transport, K: Clock>(
    transport: &mut T,
    frame: Frame,
    clock: &K,
    timeout: Duration,
) -> Result<(), TransportError> {
    let mut sending = pin!(transport.send(frame));
    let mut expired = pin!(clock.sleep_until(clock.now() + timeout));
    poll_fn(|cx| {
        if let Poll::Ready(result) = sending.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if expired.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(TransportError::Timeout));
        }
        Poll::Pending
    })
    .await
}
