//! STUB (being written): reconnect backoff.
