//! Command dispatch: from an [`Event::Execute`](crate::session::Event::Execute)
//! to the [`Engine`], and back as `(id, Step)` for the session's
//! [`Input::CommandProgress`](crate::session::Input::CommandProgress) and
//! [`Input::CommandResult`](crate::session::Input::CommandResult).
//!
//! The engine routes by [`Command::name`]; this layer only pairs each step of
//! an execution with its command id and guarantees that every execution ends
//! with exactly one `Done`. Policy checks (security floor, ownership) sit in
//! front of the engine.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_lite::Stream;
use futures_util::FutureExt;
use serde_json::Value;

use crate::protocol::{Command, ErrorCode, WireError};
use crate::traits::{Engine, Step};

/// One command in flight: its id and its execution, yielding `(id, step)`
/// until (and including) its `Done`.
pub struct Running<S> {
    id: String,
    execution: Pin<Box<S>>,
    done: bool,
}

impl<S: Stream<Item = Step>> Running<S> {
    /// Tags `execution` with the command `id`.
    pub fn new(id: String, execution: S) -> Self {
        Running { id, execution: Box::pin(execution), done: false }
    }
}

impl<S: Stream<Item = Step>> Stream for Running<S> {
    type Item = (String, Step);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let step = match self.execution.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(step)) => step,
            // An engine bug must not leave the orchestrator waiting forever.
            Poll::Ready(None) => {
                Step::Done(Err(WireError::new(ErrorCode::Internal, "the engine ended the command without a result")))
            }
        };
        if matches!(step, Step::Done(_)) {
            self.done = true;
        }
        Poll::Ready(Some((self.id.clone(), step)))
    }
}

/// Starts `command` on `engine`, tagged with `id`.
pub fn dispatch<E: Engine>(engine: &E, id: String, command: Command) -> Running<E::Execution<'_>> {
    tracing::debug!(id = %id, command = command.name(), "executing command");
    Running::new(id, engine.execute(command))
}

/// The stream of a command that reports no progress: its future's outcome as one `Done`.
pub type OnceStep<F> = futures_util::stream::Once<futures_util::future::Map<F, fn(Result<Value, WireError>) -> Step>>;

/// Turns a future of an outcome into an execution (for engines without progress).
pub fn once<F: Future<Output = Result<Value, WireError>>>(outcome: F) -> OnceStep<F> {
    futures_util::stream::once(outcome.map(Step::Done as fn(Result<Value, WireError>) -> Step))
}

/// An engine that refuses every command with `engine_unavailable`: what the
/// worker runs with when no container engine is reachable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEngine;

impl Engine for NoEngine {
    type Execution<'a> = futures_lite::stream::Once<Step>;

    fn execute(&self, command: Command) -> Self::Execution<'_> {
        futures_lite::stream::once(Step::Done(Err(WireError::new(
            ErrorCode::EngineUnavailable,
            format!("`{}` needs a container engine, and this worker has none configured", command.name()),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::commands::COMMAND_NAMES;
    use alloc::vec::Vec;
    use futures_lite::StreamExt;
    use futures_lite::future::block_on;

    fn some_command() -> Command {
        let name = COMMAND_NAMES
            .iter()
            .find(|name| Command::decode(name, serde_json::json!({})).is_ok())
            .expect("some command takes empty params");
        Command::decode(name, serde_json::json!({})).unwrap()
    }

    #[test]
    fn no_engine_answers_engine_unavailable_with_the_id() {
        let command = some_command();
        let name = command.name();
        let steps: Vec<_> = block_on(dispatch(&NoEngine, "c-1".into(), command).collect());
        assert_eq!(steps.len(), 1);
        let (id, Step::Done(Err(error))) = &steps[0] else { panic!("expected a failed Done, got {steps:?}") };
        assert_eq!(id, "c-1");
        assert_eq!(error.code, ErrorCode::EngineUnavailable);
        assert!(error.message.contains(name), "{}", error.message);
    }

    #[test]
    fn progress_then_done_and_nothing_after() {
        let steps = futures_lite::stream::iter([
            Step::Progress(serde_json::json!({"n": 1})),
            Step::Done(Ok(Value::Null)),
            Step::Progress(serde_json::json!({"n": 2})),
        ]);
        let got: Vec<_> = block_on(Running::new("c-2".into(), steps).collect());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(got[1].1, Step::Done(Ok(_))));
    }

    #[test]
    fn an_execution_without_done_is_answered_internal() {
        let got: Vec<_> = block_on(Running::new("c-3".into(), futures_lite::stream::empty::<Step>()).collect());
        assert!(matches!(&got[..], [(_, Step::Done(Err(e)))] if e.code == ErrorCode::Internal), "{got:?}");
    }

    #[test]
    fn once_wraps_a_future() {
        let got: Vec<_> = block_on(once(async { Ok(Value::Bool(true)) }).collect());
        assert_eq!(got, [Step::Done(Ok(Value::Bool(true)))]);
    }
}
