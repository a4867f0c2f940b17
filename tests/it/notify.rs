//! The service manager's readiness protocol: what `isola serve` sends to `$NOTIFY_SOCKET`
//! (systemd `Type=notify`) from start to stop, and that PHP never sees the socket.
use crate::harness::Server;
use crate::http::get;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The service manager's end: a datagram socket the server is told about.
struct Manager {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl Manager {
    fn bind() -> Manager {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Manager {
            sock,
            path: path.to_str().unwrap().to_string(),
            _dir: dir,
        }
    }

    /// An abstract socket (`@name`: no file, as systemd uses in containers).
    fn bind_abstract() -> Manager {
        use std::os::linux::net::SocketAddrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = format!("isola-test-{}-{}", std::process::id(), dir.path().display());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Manager {
            sock,
            path: format!("@{name}"),
            _dir: dir,
        }
    }

    /// The next datagram, or None after the read timeout.
    fn next(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The next datagram that is not a watchdog ping.
    fn next_state(&self) -> Option<String> {
        std::iter::from_fn(|| self.next()).find(|m| m != "WATCHDOG=1")
    }
}

fn signal(s: &Server, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid() as i32), sig).unwrap();
}

fn lines(m: &str) -> Vec<&str> {
    m.lines().collect()
}

#[test]
fn notify_socket_hears_ready_reloading_watchdog_and_stopping() {
    let m = Manager::bind();
    let conf = tempfile::tempdir().unwrap();
    let cfg = conf.path().join("isola.toml");
    std::fs::write(&cfg, "[pool]\nmax_children = 1\n").unwrap();
    let s = Server::start_with_env(
        &["--config", cfg.to_str().unwrap()],
        &[("NOTIFY_SOCKET", &m.path), ("WATCHDOG_USEC", "300000")],
    );

    // The first datagram is READY=1, and by then the port serves.
    let ready = m.next().expect("a datagram after start");
    assert_eq!(lines(&ready)[0], "READY=1", "{ready:?}");
    assert!(ready.contains("\nSTATUS=serving "), "{ready:?}");
    assert_eq!(get(s.addr, "/hello.php").status, 200);

    // PHP workers inherit neither the socket nor the watchdog settings.
    std::fs::write(
        s.docroot.join("notify_env.php"),
        "<?php echo json_encode([getenv('NOTIFY_SOCKET'), getenv('WATCHDOG_USEC'), getenv('PATH') !== false]);",
    )
    .unwrap();
    assert_eq!(get(s.addr, "/notify_env.php").text(), "[false,false,true]");

    // Pings every 150 ms (half of WATCHDOG_USEC): at least 4 in a second, and no state line.
    let t = Instant::now();
    let mut pings = 0;
    while t.elapsed() < Duration::from_secs(1) {
        assert_eq!(m.next().as_deref(), Some("WATCHDOG=1"));
        pings += 1;
    }
    assert!((4..=9).contains(&pings), "{pings} pings in a second");

    // A reload is framed by RELOADING=1 (with the monotonic clock) and READY=1.
    std::fs::write(&cfg, "[pool]\nmax_children = 2\n").unwrap();
    signal(&s, nix::sys::signal::Signal::SIGHUP);
    let reloading = m.next_state().expect("RELOADING=1 after SIGHUP");
    let l = lines(&reloading);
    assert_eq!(l[0], "RELOADING=1", "{reloading:?}");
    let usec: u64 = l[1]
        .strip_prefix("MONOTONIC_USEC=")
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    let again = m.next_state().expect("READY=1 after the reload");
    assert_eq!(lines(&again)[0], "READY=1", "{again:?}");
    assert!(again.contains("(reloaded)"), "{again:?}");

    // A refused reload still ends with READY=1, saying it was refused.
    std::fs::write(&cfg, "[pool\n").unwrap();
    signal(&s, nix::sys::signal::Signal::SIGHUP);
    let reloading = m.next_state().expect("RELOADING=1 after SIGHUP");
    assert_eq!(lines(&reloading)[0], "RELOADING=1", "{reloading:?}");
    let again = m.next_state().expect("READY=1 after the refused reload");
    assert_eq!(lines(&again)[0], "READY=1", "{again:?}");
    assert!(again.contains("reload refused"), "{again:?}");
    assert_eq!(get(s.addr, "/hello.php").status, 200);

    // SIGTERM: STOPPING=1, and nothing but pings before it.
    assert!(s.stop().success());
    let stopping = m.next_state().expect("STOPPING=1 after SIGTERM");
    assert_eq!(lines(&stopping)[0], "STOPPING=1", "{stopping:?}");
}

#[test]
fn without_watchdog_usec_there_are_no_pings_abstract_socket() {
    let m = Manager::bind_abstract();
    let s = Server::start_with_env(&[], &[("NOTIFY_SOCKET", &m.path)]);
    assert_eq!(lines(&m.next().unwrap())[0], "READY=1");
    m.sock
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    assert_eq!(m.next(), None, "a datagram nobody asked for");
    assert!(s.stop().success());
    assert_eq!(lines(&m.next().unwrap())[0], "STOPPING=1");
}

#[test]
fn watchdog_pid_of_another_process_means_no_pings() {
    let m = Manager::bind();
    let s = Server::start_with_env(
        &[],
        &[
            ("NOTIFY_SOCKET", &m.path),
            ("WATCHDOG_USEC", "100000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    assert_eq!(lines(&m.next().unwrap())[0], "READY=1");
    m.sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert_eq!(m.next(), None, "pings meant for pid 1");
    assert!(s.stop().success());
}
