//! A unix-socket proxy in front of a test engine, to make "the engine" go away and come
//! back without stopping the shared daemon: stopping closes the listener and every
//! connection and removes the socket file; starting listens again on the same path.

use std::path::{Path, PathBuf};

use async_net::unix::{UnixListener, UnixStream};
use futures_lite::{AsyncWriteExt, future, io};

pub struct EngineProxy {
    pub path: PathBuf,
    upstream: PathBuf,
    task: Option<smol::Task<()>>,
}

impl EngineProxy {
    pub fn start(path: &Path, upstream: &Path) -> EngineProxy {
        let mut proxy = EngineProxy { path: path.to_owned(), upstream: upstream.to_owned(), task: None };
        proxy.resume();
        proxy
    }

    /// Listens again (after [`stop`](Self::stop)).
    pub fn resume(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind proxy socket");
        let upstream = self.upstream.clone();
        self.task = Some(smol::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                // Held here, so stopping the proxy drops (closes) every connection.
                connections.push(smol::spawn(async move {
                    let Ok(server) = UnixStream::connect(&upstream).await else { return };
                    let (client_read, mut client_write) = io::split(client);
                    let (server_read, mut server_write) = io::split(server);
                    let up = async {
                        let _ = io::copy(client_read, &mut server_write).await;
                        let _ = server_write.close().await;
                    };
                    let down = async {
                        let _ = io::copy(server_read, &mut client_write).await;
                        let _ = client_write.close().await;
                    };
                    future::zip(up, down).await;
                }));
            }
        }));
    }

    /// Stops listening and closes every connection.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.cancel().await;
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
