//! Shared by the worker engine's tests: the engine client's test support (the test
//! engines, one test per engine, cleanup by run label), plus a worker on a test engine
//! ([`worker`]), a socket proxy that makes an engine go away ([`proxy`]) and a log
//! capture ([`logs`]).

#![allow(dead_code)]

// One copy of the engine fixtures for both crates' tests.
#[path = "../../../engine-api/tests/common/mod.rs"]
mod engines;

pub mod logs;
pub mod proxy;
pub mod worker;

pub use engines::*;
