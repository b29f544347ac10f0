//! Why a command or a raw send failed: the one error type of the public API.

use std::fmt;

/// Why a command or a raw send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// No registered worker with this id is connected.
    UnknownWorker(String),
    /// The worker's connection closed before the frame could be written.
    Disconnected,
    /// No `result` arrived within the time limit.
    Timeout,
    /// [`Orchestrator::stop`](crate::Orchestrator::stop) was called.
    Stopped,
}

impl fmt::Display for OrchestratorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrchestratorError::UnknownWorker(id) => write!(f, "no connected worker with id `{id}`"),
            OrchestratorError::Disconnected => f.write_str("the worker's connection closed"),
            OrchestratorError::Timeout => f.write_str("timed out waiting for the command's result"),
            OrchestratorError::Stopped => f.write_str("the orchestrator was stopped"),
        }
    }
}

impl std::error::Error for OrchestratorError {}
