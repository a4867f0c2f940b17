//! A real `redis-server` on a private unix socket, for tests that run Isola against Redis
//! or share one store between several Isola nodes.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RealRedis {
    child: Child,
    pub sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl RealRedis {
    pub fn start() -> RealRedis {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("redis.sock");
        let child = spawn(dir.path(), &sock);
        RealRedis {
            child,
            sock,
            _dir: dir,
        }
    }

    /// Stops the server (an outage, as seen by its clients) and starts a new, empty one on
    /// the same socket.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
        self.child = spawn(self._dir.path(), &self.sock);
    }

    /// Stops the server; [`RealRedis::restart`] brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `[store] url` pointing at this server.
    pub fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Runs one command in database `db` (where Isola keeps its own keys: 15).
    pub fn cmd_in(&self, db: u16, line: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("SELECT {db}\r\n{line}\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        // The SELECT's +OK, then a reply of one line (the only kind tests ask for).
        while !(got.starts_with(b"+OK\r\n") && got.len() > 5 && got.ends_with(b"\r\n")) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "redis closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got[5..]).into_owned()
    }
}

fn spawn(dir: &Path, sock: &Path) -> Child {
    let child = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(sock)
        .args([
            "--unixsocketperm",
            "777",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is not installed: run `scripts/setup --test`");
    let t = Instant::now();
    while !sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
