//! STUB (being written): the async driver.

/// Drives a session (stub).
pub async fn run() {}
