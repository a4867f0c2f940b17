#![allow(clippy::unwrap_used)]
//! The client against the embedded store over a real unix socket.

use std::time::Duration;

use isola_store::{Store, StoreConfig};
use isola_store_client::{ClientError, Conn, Endpoint, Value};

const T: Duration = Duration::from_secs(5);

async fn start(pass: Option<&str>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let store = Store::bind(StoreConfig {
        unix_socket: Some(sock.clone()),
        requirepass: pass.map(str::to_string),
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    tokio::spawn(store.run(std::future::pending()));
    (dir, sock)
}

#[tokio::test]
async fn commands_pipelines_and_blocking_waits() {
    let (_d, sock) = start(None).await;
    let ep = Endpoint::parse(&format!("unix://{}?db=2", sock.display())).unwrap();
    let mut c = Conn::connect(&ep, T).await.unwrap();
    assert_eq!(
        c.ok(&["SET", "k", "a\r\nb"]).await.unwrap(),
        Value::Simple("OK".into())
    );
    let r = c
        .pipeline(&[
            &["GET", "k"][..],
            &["INCR", "n"],
            &["LRANGE", "none", "0", "-1"],
            &["GET", "x"],
        ])
        .await
        .unwrap();
    assert_eq!(
        r,
        vec![
            Value::Bulk("a\r\nb".into()),
            Value::Int(1),
            Value::Array(vec![]),
            Value::Nil
        ]
    );
    assert!(
        matches!(c.ok(&["INCR", "k"]).await, Err(ClientError::Server(e)) if e.starts_with("ERR"))
    );
    // The URL's database was selected.
    let mut other = Conn::connect(
        &Endpoint::parse(&format!("unix://{}", sock.display())).unwrap(),
        T,
    )
    .await
    .unwrap();
    assert_eq!(other.cmd(&["GET", "k"]).await.unwrap(), Value::Nil);

    // A blocking pop waits beyond the reply timeout when told to, and wakes on a push.
    let mut waiter = Conn::connect(&ep, Duration::from_millis(200))
        .await
        .unwrap();
    let wait = tokio::spawn(async move {
        waiter
            .cmd_wait(
                &["BLMOVE", "q", "p", "LEFT", "RIGHT", "2"],
                Duration::from_secs(2),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.ok(&["RPUSH", "q", "job"]).await.unwrap();
    assert_eq!(wait.await.unwrap().unwrap(), Value::Bulk("job".into()));
}

#[tokio::test]
async fn authentication_and_timeouts() {
    let (_d, sock) = start(Some("pw")).await;
    let good = Endpoint::parse(&format!("unix://{}?password=pw", sock.display())).unwrap();
    let mut c = Conn::connect(&good, T).await.unwrap();
    assert_eq!(
        c.cmd(&["PING"]).await.unwrap(),
        Value::Simple("PONG".into())
    );
    let bad = Endpoint::parse(&format!("unix://{}?password=no", sock.display())).unwrap();
    assert!(matches!(
        Conn::connect(&bad, T).await,
        Err(ClientError::Server(_))
    ));
    let mut quick = Conn::connect(&good, Duration::from_millis(100))
        .await
        .unwrap();
    let r = quick.cmd(&["BLPOP", "nothing", "1"]).await;
    assert!(matches!(r, Err(ClientError::Timeout(_))), "{r:?}");
}
