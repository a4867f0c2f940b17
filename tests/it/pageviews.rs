//! examples/pageviews: the page-view counter race. 2,000 requests from 200 concurrent
//! keep-alive clients per variant, on the embedded store and on a real redis-server: INCR,
//! the lock, WATCH/MULTI/EXEC and the queue (read-then-write, one job at a time) count every
//! view; read-then-write from concurrent requests loses some.
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;

use crate::http::{connect, read_response};
use crate::store_libs::{Backend, Env};

const REQUESTS: usize = 2000;
const CLIENTS: usize = 200;
const _: () = assert!(
    REQUESTS % CLIENTS == 0,
    "every client sends as many requests"
);

/// Four workers as in the example; every client may wait in the queue at once, and long
/// enough, so that no request is shed: a 503 fails the test.
const CONFIG: &str = "[pool]\nmax_children = 4\nqueue_size = 1024\nqueue_timeout = \"120s\"\n\n[log]\naccess = false\n";

/// `REQUESTS` GETs of `path` from `CLIENTS` threads, each on one keep-alive connection.
/// Returns the replies that were not 200, with their bodies.
fn hammer(addr: SocketAddr, path: &str) -> Vec<String> {
    let start = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let n = REQUESTS / CLIENTS;
            let (path, start) = (path.to_string(), start.clone());
            std::thread::spawn(move || {
                let stream = connect(addr);
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                start.wait();
                let mut failed = Vec::new();
                for _ in 0..n {
                    w.write_all(
                        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
                    )
                    .unwrap();
                    let resp = read_response(&mut r, false);
                    if resp.status != 200 {
                        failed.push(format!("{} {}", resp.status, resp.text()));
                    }
                }
                failed
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

fn count(env: &Env, variant: &str) -> u64 {
    let path = format!("/{variant}.php");
    let addr = env.server.addr;
    let reset = crate::http::get(addr, &format!("{path}?reset=1"));
    assert_eq!((reset.status, reset.text().trim()), (200, "0"), "{variant}");
    let failed = hammer(addr, &path);
    assert!(
        failed.is_empty(),
        "{:?} {variant}: {} of {REQUESTS} requests failed, e.g. {:?}\nisola stderr:\n{}",
        env.backend,
        failed.len(),
        &failed[..failed.len().min(3)],
        env.server.stderr()
    );
    if variant == "queue" {
        // Every view is recorded; Isola's queue counts them after (web requests first).
        let t = std::time::Instant::now();
        while crate::http::get(addr, "/queue.php?pending=1").text().trim() != "0" {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(120),
                "{:?}: the queue did not drain\n{}",
                env.backend,
                env.server.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let read = crate::http::get(addr, &format!("{path}?read=1"));
    assert_eq!(read.status, 200, "{variant}: {}", read.text());
    read.text().trim().parse().unwrap()
}

fn race(backend: Backend) {
    let docroot = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pageviews/public");
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pageviews/jobs/count-view.php");
    let config = format!(
        "{CONFIG}\n[[queue]]\nname = \"pageviews\"\nscript = \"{}\"\n",
        job.display()
    );
    let env = Env::serve(backend, &docroot, &config, None);
    let mut counted = Vec::new();
    for variant in ["incr", "lock", "watch", "queue", "naive"] {
        counted.push((variant, count(&env, variant)));
    }
    let exact: Vec<_> = counted.iter().filter(|(v, _)| *v != "naive").collect();
    assert!(
        exact.iter().all(|(_, n)| *n == REQUESTS as u64),
        "{backend:?}: {counted:?}"
    );
    // The naive variant's losses need no help: while one worker waits for its GET's reply,
    // others read the same value (2,000 requests on 4 workers lose hundreds).
    let naive = counted.last().unwrap().1;
    assert!(
        naive < REQUESTS as u64,
        "{backend:?}: the naive counter lost nothing: {counted:?}"
    );
    env.stop();
}

#[test]
fn embedded() {
    race(Backend::Embedded);
}

#[test]
fn redis() {
    race(Backend::Redis);
}
