//! `DATA_DIR/worker.sock`: the running worker's live state for `cropscode status`.
//!
//! A unix stream socket, mode 0600 in the (already private) data directory, so only
//! the worker's own user can connect. A client connects and reads one JSON object,
//! [`Health::snapshot`], then end of file; it sends nothing. The socket is removed
//! when the worker stops (a stale one left by a crash is replaced at the next start;
//! one a live worker answers on is left alone and this worker serves none).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_net::unix::UnixListener;
use futures_lite::{AsyncWriteExt, FutureExt};

use super::Health;

/// The socket's name in the data directory.
pub const STATUS_SOCKET_FILE: &str = "worker.sock";

/// A bound status socket, removed when dropped.
#[derive(Debug)]
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusSocket {
    /// Binds `data_dir/worker.sock` (mode 0600). Fails when another live worker
    /// answers there.
    pub fn bind(data_dir: &Path) -> io::Result<StatusSocket> {
        let path = data_dir.join(STATUS_SOCKET_FILE);
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "another worker answers on it"));
        }
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(StatusSocket { listener: UnixListener::try_from(listener)?, path })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers every connection with a snapshot, taken after `before` (e.g. an
    /// engine check), until the future is dropped.
    pub async fn serve<F: Future<Output = ()>>(&self, health: Arc<Health>, before: impl Fn() -> F) {
        loop {
            let mut stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "accepting a status connection failed");
                    smol::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            before().await;
            let mut text = health.snapshot().to_string();
            text.push('\n');
            // One client at a time is plenty; a stuck one gets two seconds.
            let _ = async { stream.write_all(text.as_bytes()).await.and(stream.flush().await) }
                .or(async {
                    smol::Timer::after(Duration::from_secs(2)).await;
                    Ok(())
                })
                .await;
        }
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
