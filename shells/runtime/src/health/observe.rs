//! Thin wrappers that let [`Health`] see what the loop's boundaries do, without the
//! core knowing: each delegates every call and records a figure on the way.

use std::sync::Arc;
use std::task::{Context, Poll};

use cropscode_core::policy::SecurityFloor;
use cropscode_core::protocol::{Command, Heartbeat};
use cropscode_core::stream::StreamId;
use cropscode_core::{Channel, Connector, Engine, StreamRead, StreamWrite, SystemProbe};

use super::Health;
use crate::transport::{ConnectFuture, WsConnector, WsTransport};

/// The WebSocket connector, recording each attempt's outcome.
#[derive(Debug)]
pub struct ObservedConnector {
    inner: WsConnector,
    health: Arc<Health>,
}

impl ObservedConnector {
    /// `inner`, reporting to `health`.
    pub fn new(inner: WsConnector, health: Arc<Health>) -> Self {
        ObservedConnector { inner, health }
    }

    /// The wrapped connector.
    pub fn inner(&self) -> &WsConnector {
        &self.inner
    }
}

impl Connector for ObservedConnector {
    type Transport = WsTransport;
    type Connect<'a> = ConnectFuture<'a>;

    fn connect(&self) -> ConnectFuture<'_> {
        let attempt = self.inner.connect();
        Box::pin(async move {
            let outcome = attempt.await;
            self.health.connect_result(outcome.as_ref().map(|_| ()).map_err(ToString::to_string));
            outcome
        })
    }
}

/// An engine whose streams and running-container count are recorded.
#[derive(Debug)]
pub struct ObservedEngine<E> {
    inner: E,
    health: Arc<Health>,
}

impl<E> ObservedEngine<E> {
    /// `inner`, reporting to `health`.
    pub fn new(inner: E, health: Arc<Health>) -> Self {
        ObservedEngine { inner, health }
    }

    /// The wrapped engine.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Engine> Engine for ObservedEngine<E> {
    type Execution<'a>
        = E::Execution<'a>
    where
        Self: 'a;

    fn execute(&self, command: Command) -> Self::Execution<'_> {
        self.inner.execute(command)
    }

    fn open_stream(&self, stream: StreamId, command: Command) -> Self::Execution<'_> {
        self.inner.open_stream(stream, command)
    }

    fn poll_stream_read(&self, channel: Channel, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<StreamRead> {
        let read = self.inner.poll_stream_read(channel, cx, buf);
        match read {
            Poll::Ready(StreamRead::Data(n)) => self.health.stream_bytes(n, 0),
            Poll::Ready(StreamRead::End { .. }) => self.health.stream_ended(channel),
            Poll::Pending => {}
        }
        read
    }

    fn poll_stream_write(&self, channel: Channel, cx: &mut Context<'_>, data: &[u8]) -> Poll<StreamWrite> {
        let wrote = self.inner.poll_stream_write(channel, cx, data);
        if let Poll::Ready(StreamWrite::Written(n)) = wrote {
            self.health.stream_bytes(0, n);
        }
        wrote
    }

    fn close_stream(&self, channel: Channel) {
        self.inner.close_stream(channel)
    }

    fn set_floor(&mut self, floor: SecurityFloor) {
        self.inner.set_floor(floor)
    }

    fn registered(&self, worker_id: &str) {
        self.inner.registered(worker_id)
    }

    fn containers_running(&self) -> Option<u32> {
        let running = self.inner.containers_running();
        if let Some(running) = running {
            self.health.containers_counted(running);
        }
        running
    }
}

/// A system probe whose heartbeat figures are recorded.
#[derive(Debug)]
pub struct ObservedProbe<P> {
    inner: P,
    health: Arc<Health>,
}

impl<P> ObservedProbe<P> {
    /// `inner`, reporting to `health`.
    pub fn new(inner: P, health: Arc<Health>) -> Self {
        ObservedProbe { inner, health }
    }
}

impl<P: SystemProbe> SystemProbe for ObservedProbe<P> {
    fn heartbeat(&mut self) -> Heartbeat {
        let figures = self.inner.heartbeat();
        self.health.heartbeat_taken(&figures);
        figures
    }
}
