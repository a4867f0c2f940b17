//! A store on a unix socket in a private folder, run on the test's runtime until stopped.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use isola_store::{Store, StoreConfig, StoreError, StoreHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Running {
    pub sock: PathBuf,
    pub handle: StoreHandle,
    pub tcp: Option<std::net::SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), StoreError>>,
    _dir: tempfile::TempDir,
}

/// Starts a store with `config` listening on `s.sock` in a fresh folder.
pub async fn start(config: StoreConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let store = Store::bind(StoreConfig {
        unix_socket: Some(sock.clone()),
        ..config
    })
    .await
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = store.handle();
    let tcp = store.tcp_addr();
    let task = tokio::spawn(store.run(async {
        let _ = stopped.await;
    }));
    Running {
        sock,
        handle,
        tcp,
        stop,
        task,
        _dir: dir,
    }
}

impl Running {
    /// Stops the store and waits for it (the socket file is removed).
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
