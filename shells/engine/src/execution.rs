//! One command's execution as core sees it: a stream of `Step`s, the progress its work
//! reported (image pulls and builds) and then its outcome.
//!
//! ```text
//!  work ──ProgressSink::report──► queue ──► Execution::poll_next ──► Step::Progress…, Step::Done
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use cropscode_core::Step;
use cropscode_core::protocol::WireError;
use cropscode_core::protocol::commands::ImageProgress;
use futures_lite::Stream;
use serde_json::Value;

/// A command's work: its outcome, with progress reported on the side.
pub(crate) type Work<'a> = Pin<Box<dyn Future<Output = Result<Value, WireError>> + 'a>>;

/// One command's execution: the progress its work reported, then its outcome.
pub struct Execution<'a> {
    progress: ProgressSink,
    outcome: Option<Work<'a>>,
    finished: Option<Result<Value, WireError>>,
}

impl<'a> Execution<'a> {
    /// The execution of `work`, which reports its progress to `progress`.
    pub(crate) fn new(progress: ProgressSink, work: Work<'a>) -> Self {
        Execution { progress, outcome: Some(work), finished: None }
    }
}

impl Stream for Execution<'_> {
    type Item = Step;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Step>> {
        loop {
            if let Some(progress) = self.progress.pop() {
                return Poll::Ready(Some(Step::Progress(progress)));
            }
            if let Some(outcome) = self.finished.take() {
                return Poll::Ready(Some(Step::Done(outcome)));
            }
            let Some(work) = self.outcome.as_mut() else { return Poll::Ready(None) };
            match work.as_mut().poll(cx) {
                Poll::Ready(outcome) => {
                    self.outcome = None;
                    self.finished = Some(outcome);
                }
                // Progress pushed during this poll is handed out before waiting again.
                Poll::Pending if self.progress.is_empty() => return Poll::Pending,
                Poll::Pending => {}
            }
        }
    }
}

/// Where a command's work reports progress; drained by its [`Execution`] after every poll.
#[derive(Clone, Default)]
pub(crate) struct ProgressSink(Arc<Mutex<VecDeque<Value>>>);

impl ProgressSink {
    pub(crate) fn report(&self, progress: &ImageProgress) {
        if let Ok(value) = serde_json::to_value(progress)
            && let Ok(mut queue) = self.0.lock()
        {
            queue.push_back(value);
        }
    }

    fn pop(&self) -> Option<Value> {
        self.0.lock().ok().and_then(|mut queue| queue.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.0.lock().map(|queue| queue.is_empty()).unwrap_or(true)
    }
}
