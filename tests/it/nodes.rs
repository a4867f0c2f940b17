//! Several Isola nodes sharing one real `redis-server`, as behind a load balancer: sessions
//! cross nodes, the page-view counter stays exact under load spread on both, each queued
//! job runs once across all nodes, a scheduled tick runs on one
//! node, and jobs a killed node was running are recovered (by its own restart, or by
//! another node once its heartbeat expires).
use crate::harness::Server;
use crate::http::{get, request};
use crate::queue::Site;
use crate::redis::RealRedis;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn toml(redis: &RealRedis, node: &str, extra: &str) -> String {
    format!(
        "[store]\nurl = \"{}\"\nnode_id = \"{node}\"\n[pool]\nmax_children = 3\n\n[[queue]]\nname = \"jobs\"\nscript = \"JOBS/job.php\"\nconcurrency = 2\nreserve = 0\nbackoff = \"1s\"\n{extra}",
        redis.url()
    )
}

/// Starts a node on `site` with its own config file (the site holds one `isola.toml`, so
/// each node gets a copy named after it).
fn node(site: &Site, redis: &RealRedis, name: &str, extra: &str) -> (Server, std::net::SocketAddr) {
    let cfg = site.path().join(format!("{name}.toml"));
    let text = toml(redis, name, extra).replace("JOBS", site.jobs.path().to_str().unwrap());
    std::fs::write(&cfg, text).unwrap();
    let s = Server::start_in(
        site.path(),
        &["--config", cfg.to_str().unwrap(), "--admin", "127.0.0.1:0"],
        None,
    );
    let admin = s.admin_addr().unwrap();
    (s, admin)
}

const SESSION: &str = r#"<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
echo $_SESSION['n'];
"#;

#[test]
fn two_nodes_share_sessions_run_each_job_once_and_each_tick_once() {
    let redis = RealRedis::start();
    let site = Site::new();
    std::fs::write(site.path().join("session.php"), SESSION).unwrap();
    let tick = "[[schedule]]\nurl = \"/mark.php?v=tick\"\nevery = \"1s\"\n";
    let (a, _) = node(&site, &redis, "a", tick);
    let (b, _) = node(&site, &redis, "b", tick);

    // A session started on one node goes on on the other.
    let r = get(a.addr, "/session.php");
    let cookie = r.cookie();
    let hdr = format!("Cookie: {cookie}");
    for (i, addr) in [b.addr, a.addr, b.addr].into_iter().enumerate() {
        let r = request(addr, "GET", "/session.php", &[&hdr], b"");
        assert_eq!(r.text(), (i + 2).to_string());
    }

    // 300 jobs pushed through both nodes run exactly once in all.
    for (i, addr) in [a.addr, b.addr].into_iter().enumerate() {
        for j in 0..150 {
            let p = format!("j{}", i * 150 + j);
            assert_eq!(get(addr, &format!("/enqueue.php?p={p}")).status, 200);
        }
    }
    let done = site.wait_lines("done.log", 300, Duration::from_secs(60));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in &done {
        *seen
            .entry(l.split(' ').next().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 300, "{}", b.stderr());
    assert!(seen.values().all(|&n| n == 1), "a job ran twice: {seen:?}");

    // Both nodes ran some: the work is shared.
    for n in ["a", "b"] {
        let ran = done
            .iter()
            .filter(|l| l.ends_with(&format!(" {n}")))
            .count();
        assert!(ran > 0, "node {n} ran no job");
    }

    // The schedule fires every second on both nodes' clocks; each tick runs once.
    std::fs::remove_file(site.path().join("marks.log")).ok();
    std::thread::sleep(Duration::from_millis(4500));
    let ticks = site.lines("marks.log").len();
    assert!(
        (3..=5).contains(&ticks),
        "{ticks} runs in 4.5 s of a 1 s schedule on two nodes"
    );
    drop(a);
    drop(b);
}

#[test]
fn a_killed_nodes_running_job_is_recovered_by_its_restart_and_by_another_node() {
    let redis = RealRedis::start();
    let site = Site::new();
    let (a, _) = node(&site, &redis, "a", "");
    assert_eq!(get(a.addr, "/enqueue.php?p=long").status, 200);
    let started = site.wait_lines("started.log", 1, Duration::from_secs(10));
    assert!(started[0].starts_with("long 1 "), "{started:?}");
    a.kill9();
    // The job is in a's processing list; a's restart puts it back and runs it again.
    assert!(redis
        .cmd_in(15, "LLEN isola:processing:jobs:a")
        .contains(":1"));
    let (a, _) = node(&site, &redis, "a", "");
    let started = site.wait_lines("started.log", 2, Duration::from_secs(10));
    assert!(
        started[1].starts_with("long 2 "),
        "second attempt after restart: {started:?}"
    );
    assert!(a.wait_for_log(
        "recovered jobs this node left running",
        Duration::from_secs(5)
    ));

    // Killed again, this time for good: b takes the job over once a's heartbeat expires.
    a.kill9();
    let (b, _) = node(&site, &redis, "b", "");
    let t = Instant::now();
    let started = site.wait_lines("started.log", 3, Duration::from_secs(30));
    assert!(
        started[2].starts_with("long 3 "),
        "third attempt on b: {started:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "b waited for a's heartbeat to expire"
    );
    assert!(b.wait_for_log("node stopped beating", Duration::from_secs(5)));
    // Its last attempt also dies with b: at the next recovery it is dead, not run a 4th time.
    b.kill9();
    let (c, admin) = node(&site, &redis, "b", "");
    let t = Instant::now();
    while get(admin, "/queues/jobs?dead")
        .json()
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", c.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead = get(admin, "/queues/jobs?dead").json();
    assert_eq!(dead[0]["payload"], "long");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(site.lines("started.log").len(), 3);
}

#[test]
fn queues_ride_out_a_store_outage() {
    let mut redis = RealRedis::start();
    let site = Site::new();
    let (a, _) = node(&site, &redis, "a", "");
    assert_eq!(get(a.addr, "/enqueue.php?p=before").status, 200);
    site.wait_lines("done.log", 1, Duration::from_secs(10));
    redis.stop();
    assert!(
        a.wait_for_log("cannot reach the store", Duration::from_secs(10)),
        "{}",
        a.stderr()
    );
    // Web requests that do not need the store are still served.
    assert_eq!(get(a.addr, "/hello.php").status, 200);
    redis.restart();
    assert!(
        a.wait_for_log("store reachable again", Duration::from_secs(15)),
        "{}",
        a.stderr()
    );
    assert_eq!(get(a.addr, "/enqueue.php?p=after").status, 200);
    let done = site.wait_lines("done.log", 2, Duration::from_secs(15));
    assert!(
        done.len() == 2 && done[1].starts_with("after "),
        "{done:?}\n{}",
        a.stderr()
    );
}

#[test]
fn the_page_view_counter_stays_exact_under_load_spread_on_two_nodes() {
    let redis = RealRedis::start();
    let site = Site::new();
    // examples/pageviews, with its helper one folder up as in the example.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pageviews");
    std::fs::copy(example.join("connect.php"), site.path().join("connect.php")).unwrap();
    std::fs::create_dir(site.path().join("pv")).unwrap();
    for v in ["incr", "lock", "naive"] {
        std::fs::copy(
            example.join(format!("public/{v}.php")),
            site.path().join(format!("pv/{v}.php")),
        )
        .unwrap();
    }
    let (a, _) = node(&site, &redis, "a", "");
    let (b, _) = node(&site, &redis, "b", "");
    let nodes = [a.addr, b.addr];
    let mut counted = Vec::new();
    for v in ["incr", "lock", "naive"] {
        assert_eq!(
            get(a.addr, &format!("/pv/{v}.php?reset=1")).text().trim(),
            "0"
        );
        // 20 clients, 20 views each, alternating between the two nodes.
        let threads: Vec<_> = (0..20)
            .map(|c| {
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let r = get(nodes[(c + i) % 2], &format!("/pv/{v}.php"));
                        assert_eq!(r.status, 200, "{v}: {}", r.text());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n: u64 = get(b.addr, &format!("/pv/{v}.php?read=1"))
            .text()
            .trim()
            .parse()
            .unwrap();
        counted.push((v, n));
    }
    assert_eq!(
        &counted[..2],
        &[("incr", 400), ("lock", 400)],
        "{counted:?}"
    );
    assert!(
        counted[2].1 < 400,
        "the naive counter lost nothing: {counted:?}"
    );
}
