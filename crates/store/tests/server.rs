#![allow(clippy::unwrap_used)]
//! Server lifecycle and limits, against the embedded store only (no redis-server needed).

use std::time::Duration;

mod common;

use isola_store::{Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

async fn roundtrip<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S, req: &[u8]) -> Vec<u8> {
    s.write_all(req).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn serves_unix_and_tcp_reports_figures_and_cleans_up() {
    let run = common::start(StoreConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..StoreConfig::default()
    })
    .await;
    let (sock, addr, handle) = (run.sock.clone(), run.tcp.unwrap(), run.handle.clone());

    let mut u = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(roundtrip(&mut u, b"SET a 1\r\n").await, b"+OK\r\n");
    let mut t = TcpStream::connect(addr).await.unwrap();
    assert_eq!(roundtrip(&mut t, b"GET a\r\n").await, b"$1\r\n1\r\n");
    assert_eq!(
        roundtrip(&mut t, b"SELECT 3\r\nSET b 2 EX 100\r\n")
            .await
            .len(),
        10
    );
    let info = roundtrip(&mut u, b"INFO server\r\n").await;
    assert!(String::from_utf8_lossy(&info).contains("redis_version:7.0.15\r\n"));

    let stats = handle.stats().await.unwrap();
    assert_eq!(stats.keys[0], 1);
    assert_eq!(stats.keys[3], 1);
    assert_eq!(stats.expires[3], 1);
    assert_eq!(stats.connected_clients, 2);
    assert!(stats.commands_processed >= 4);
    assert!(stats.used_memory > 0);

    run.stop().await;
    assert!(!sock.exists(), "socket file removed on shutdown");
    // Open connections were closed.
    let mut buf = [0u8; 8];
    assert_eq!(u.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn bounded_bulk_length_and_client_count() {
    let run = common::start(StoreConfig {
        max_bulk_len: 16,
        max_clients: 1,
        ..StoreConfig::default()
    })
    .await;
    let sock = run.sock.clone();
    let mut a = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(
        roundtrip(&mut a, b"*2\r\n$4\r\nECHO\r\n$17\r\n").await,
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    let mut b = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"PING\r\n").await, b"+PONG\r\n");
    let mut c = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(
        roundtrip(&mut c, b"PING\r\n").await,
        b"-ERR max number of clients reached\r\n"
    );
    run.stop().await;
}

#[tokio::test]
async fn no_listener_is_an_error() {
    let err = Store::bind(StoreConfig::default()).await.unwrap_err();
    assert_eq!(err.to_string(), "store has no listener configured");
}

/// Regression: requests that arrived while a batch was running were left unparsed until the
/// client sent more bytes.
#[tokio::test]
async fn requests_read_during_a_blocked_batch_are_answered() {
    let run = common::start(StoreConfig::default()).await;
    let sock = run.sock.clone();
    let mut a = UnixStream::connect(&sock).await.unwrap();
    a.write_all(b"BLPOP q 0\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.write_all(b"PING\r\nECHO hi\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut b = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"RPUSH q v\r\n").await, b":1\r\n");
    let want: &[u8] = b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n+PONG\r\n$2\r\nhi\r\n";
    let mut got = Vec::new();
    while got.len() < want.len() {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), a.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, want);
    run.stop().await;
}

#[tokio::test]
async fn untouched_keys_expire_actively() {
    let run = common::start(StoreConfig::default()).await;
    let (sock, handle) = (run.sock.clone(), run.handle.clone());
    let mut a = UnixStream::connect(&sock).await.unwrap();
    let mut req = Vec::new();
    for i in 0..100 {
        req.extend_from_slice(format!("SET k{i} v PX 30\r\n").as_bytes());
    }
    a.write_all(&req).await.unwrap();
    let mut got = 0;
    while got < 500 {
        let mut buf = [0u8; 1024];
        got += a.read(&mut buf).await.unwrap();
    }
    assert_eq!(handle.stats().await.unwrap().keys[0], 100);
    let mut left = usize::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = handle.stats().await.unwrap();
        left = s.keys[0];
        if left == 0 {
            assert_eq!(s.expired_keys, 100);
            break;
        }
    }
    assert_eq!(left, 0, "keys were not expired without being read");
    run.stop().await;
}
