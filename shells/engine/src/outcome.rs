//! How a command's work ends when it fails: [`Failure`], either an engine error (its code
//! decides, and it tells whether the engine is gone) or a protocol error the worker
//! decided. Every command module returns an [`Outcome`]; the worker turns it into the
//! wire error the orchestrator sees.

use cropscode_core::protocol::{ErrorCode, WireError};
use cropscode_engine_api::EngineError;

/// Why a command failed: an engine error (its code decides, and it tells whether the
/// engine is gone) or a protocol error decided by the worker.
#[derive(Debug)]
pub(crate) enum Failure {
    Engine(EngineError),
    Wire(WireError),
}

impl Failure {
    pub(crate) fn wire(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure::Wire(WireError::new(code, message))
    }

    pub(crate) fn into_wire(self) -> WireError {
        match self {
            Failure::Engine(error) => error.to_wire(),
            Failure::Wire(error) => error,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Failure {
        Failure::Engine(error)
    }
}

impl From<WireError> for Failure {
    fn from(error: WireError) -> Failure {
        Failure::Wire(error)
    }
}

pub(crate) type Outcome<T> = Result<T, Failure>;
