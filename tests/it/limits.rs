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

/// A request whose body nothing reads (a 404, 405, 413...) still gets its answer, and the
/// connection serves the next request: closing with unread bytes would make the kernel
/// reset the connection and lose the answer.
#[test]
fn an_early_answer_to_a_request_with_a_body_reaches_the_client() {
    use crate::http::{connect, read_response};
    use std::io::BufReader;
    let s = Server::with_config("[server]\nmax_body_size = \"1M\"\n[log]\naccess = false\n");
    let body = vec![b'x'; 3 << 20];
    for (method, target, want) in [
        ("POST", "/missing.php", 404),
        ("POST", "/style.css", 405),
        ("PUT", "/.env", 404),
        ("POST", "/hello.php", 413),
    ] {
        let mut c = connect(s.addr);
        let len = if want == 413 { body.len() } else { 1 << 20 };
        write!(
            c,
            "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"
        )
        .unwrap();
        // The answer is sent before the body arrives, as for a client on a slow uplink.
        std::thread::sleep(Duration::from_millis(100));
        c.write_all(&body[..len])
            .unwrap_or_else(|e| panic!("{method} {target}: body refused: {e}"));
        c.write_all(b"GET /hello.php HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap_or_else(|e| panic!("{method} {target}: connection closed: {e}"));
        let mut r = BufReader::new(c);
        assert_eq!(
            read_response(&mut r, false).status,
            want,
            "{method} {target}"
        );
        let next = read_response(&mut r, false);
        assert_eq!(next.status, 200, "after {method} {target}");
        assert!(
            next.text().starts_with("hello from"),
            "after {method} {target}"
        );
    }
}
