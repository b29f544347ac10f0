//! Unix: the engines listen on unix sockets.

use std::io;

use crate::endpoint::Endpoint;

pub(crate) type Stream = async_net::unix::UnixStream;

pub(crate) async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
    match endpoint {
        Endpoint::Unix(path) => async_net::unix::UnixStream::connect(path).await,
        Endpoint::NamedPipe(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "named pipes exist only on Windows")),
    }
}
