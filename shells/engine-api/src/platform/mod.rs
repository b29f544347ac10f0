//! Opening a connection to an engine's [`Endpoint`](crate::Endpoint). One file per
//! platform: the rest of the client sees only `connect` and a futures-io stream.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::connect;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::connect;
