#![allow(clippy::unwrap_used)]
//! Hostile and broken clients: oversized lengths, malformed input, commands sent in pieces,
//! a thousand idle connections. Each gets a clear error or simply waits; the store and its
//! other clients are unaffected.

use std::time::Duration;

mod common;

use isola_store::{StoreConfig, StoreHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn start() -> (common::Running, std::path::PathBuf, StoreHandle) {
    let run = common::start(StoreConfig::default()).await;
    let (sock, handle) = (run.sock.clone(), run.handle.clone());
    (run, sock, handle)
}

/// Sends `req`, returns what arrives until the server goes quiet or closes.
async fn exchange(s: &mut UnixStream, req: &[u8]) -> Vec<u8> {
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// A well-behaved client still gets correct answers.
async fn healthy(sock: &std::path::Path) {
    let mut c = UnixStream::connect(sock).await.unwrap();
    assert_eq!(
        exchange(&mut c, b"SET ok yes\r\nGET ok\r\n").await,
        b"+OK\r\n$3\r\nyes\r\n"
    );
}

#[tokio::test]
async fn oversized_lengths_are_errors_not_allocations() {
    let (_d, sock, _) = start().await;
    for (req, want) in [
        (
            &b"*1\r\n$1073741824\r\n"[..],
            &b"-ERR Protocol error: invalid bulk length\r\n"[..],
        ),
        (
            b"*2000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-7\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
    ] {
        let mut c = UnixStream::connect(&sock).await.unwrap();
        // The error, then the connection is closed, as Redis does.
        assert_eq!(exchange(&mut c, req).await, want, "{req:?}");
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).await.unwrap_or(0), 0);
    }
    healthy(&sock).await;
}

#[tokio::test]
async fn malformed_input_gets_protocol_errors() {
    let (_d, sock, _) = start().await;
    for req in [
        &b"*2\r\n$3\r\nGET\r\n:x\r\n"[..],
        b"*x\r\n",
        b"\"unbalanced\r\n",
    ] {
        let mut c = UnixStream::connect(&sock).await.unwrap();
        let got = exchange(&mut c, req).await;
        assert!(
            got.starts_with(b"-ERR Protocol error"),
            "{req:?} -> {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    healthy(&sock).await;
}

#[tokio::test]
async fn a_command_sent_in_pieces_waits_without_blocking_others() {
    let (_d, sock, _) = start().await;
    let mut slow = UnixStream::connect(&sock).await.unwrap();
    slow.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nslow")
        .await
        .unwrap();
    // Half a command pending: everybody else goes on.
    healthy(&sock).await;
    let mut other = UnixStream::connect(&sock).await.unwrap();
    assert_eq!(exchange(&mut other, b"GET slow\r\n").await, b"$-1\r\n");
    // The rest arrives, byte by byte: the command runs once it is whole.
    for b in b"\r\n$5\r\nvalue\r\n" {
        slow.write_all(&[*b]).await.unwrap();
    }
    assert_eq!(exchange(&mut slow, b"").await, b"+OK\r\n");
    assert_eq!(
        exchange(&mut other, b"GET slow\r\n").await,
        b"$5\r\nvalue\r\n"
    );
}

#[tokio::test]
async fn a_thousand_idle_connections_change_nothing_for_the_others() {
    // Both ends of every connection live in this process.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let soft = hard.min(8192);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let n = 1000.min((soft as usize).saturating_sub(100) / 2);
    let (_d, sock, handle) = start().await;
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(UnixStream::connect(&sock).await.unwrap());
    }
    healthy(&sock).await;
    let t = std::time::Instant::now();
    while handle.stats().await.unwrap().connected_clients < n {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not every connection was accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(idle);
    let t = std::time::Instant::now();
    while handle.stats().await.unwrap().connected_clients > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "closed connections were not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    healthy(&sock).await;
}
