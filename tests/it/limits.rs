//! Hostile clients against the front's limits: slow heads, huge heads, idle connections.
use crate::harness::Server;
use crate::http::get;
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn slowloris_cannot_starve_real_clients() {
    let s = Server::with_config(
        "[server]\nheader_read_timeout = \"2s\"\n[pool]\nmax_children = 2\n[log]\naccess = false\n",
    );
    let addr = s.addr;
    // 200 connections that send a request head one byte every 300 ms and never finish it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conns: Vec<_> = (0..50)
                    .filter_map(|_| std::net::TcpStream::connect(addr).ok())
                    .collect();
                let opened = conns.len();
                let head = b"GET /hello.php HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let mut i = 0;
                let t = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && t.elapsed() < Duration::from_secs(8)
                {
                    let byte = [head.get(i).copied().unwrap_or(b'a')];
                    conns.retain_mut(|c| c.write_all(&byte).is_ok());
                    i += 1;
                    std::thread::sleep(Duration::from_millis(300));
                }
                // Writes fail once the server has cut a connection (header_read_timeout).
                (opened, conns.len())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..10 {
        let t = Instant::now();
        let r = get(addr, "/hello.php");
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a real client waited {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (opened, still_open) = trickle
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(a, b), (o, s)| (a + o, b + s));
    assert_eq!(opened, 200, "the slow clients got their connections");
    assert_eq!(
        still_open, 0,
        "every slow connection was cut by header_read_timeout"
    );
    // The slow connections were cut: the server holds few sockets now.
    std::thread::sleep(Duration::from_millis(300));
    let fds = crate::harness::fd_count(s.pid());
    assert!(
        fds < 60,
        "server still holds {fds} fds after the slow clients timed out"
    );
    assert_eq!(get(addr, "/hello.php").status, 200);
}
