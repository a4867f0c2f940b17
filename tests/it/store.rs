//! `[store]`: the embedded Redis-compatible store, reached by real PHP (phpredis) in the
//! workers, and PHP sessions kept in it.
use crate::harness::{fixture_site, Server};
use crate::http::{get, request};

const COUNTER: &str = r#"<?php
$url = getenv('ISOLA_STORE');
$r = new Redis();
$r->connect(substr($url, strlen('unix://')));
echo $r->incr('hits'), ' ', getmypid();
"#;

const SESSION: &str = r#"<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
$r = new Redis();
$r->connect(substr(getenv('ISOLA_STORE'), strlen('unix://')));
echo $_SESSION['n'], ' ', ini_get('session.save_handler'), ' ', count($r->keys('PHPREDIS_SESSION:*'));
"#;

fn serve(toml: &str) -> Server {
    let site = fixture_site();
    std::fs::write(site.path().join("counter.php"), COUNTER).unwrap();
    std::fs::write(site.path().join("session.php"), SESSION).unwrap();
    std::fs::write(
        site.path().join("where.php"),
        "<?php echo getenv('ISOLA_STORE') ?: 'none';",
    )
    .unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, toml).unwrap();
    let docroot = site.path().to_path_buf();
    Server::start_in(&docroot, &["--config", cfg.to_str().unwrap()], Some(site))
}

#[test]
fn workers_share_the_embedded_store() {
    let s = serve("[pool]\nmax_children = 3\n");
    let addr = s.addr;
    let threads: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| get(addr, "/counter.php").text())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut counts = Vec::new();
    let mut pids = std::collections::HashSet::new();
    for t in threads {
        for line in t.join().unwrap() {
            let (n, pid) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            counts.push(n.parse::<u64>().unwrap());
            pids.insert(pid.to_string());
        }
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=60).collect::<Vec<_>>(),
        "every INCR counted once"
    );
    assert!(pids.len() > 1, "one worker served everything: {pids:?}");
    assert!(s.stop().success());
}

#[test]
fn sessions_live_in_the_store() {
    let s = serve("[pool]\nmax_children = 2\n");
    let r = get(s.addr, "/session.php");
    let cookie = r
        .header("set-cookie")
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // The session is written when the first script ends: the store holds it afterwards.
    assert!(r.text().starts_with("1 redis 0"), "{}", r.text());
    for n in 2..=5 {
        let r = request(
            s.addr,
            "GET",
            "/session.php",
            &[&format!("Cookie: {cookie}")],
            b"",
        );
        assert!(
            r.text().starts_with(&format!("{n} redis 1")),
            "{}",
            r.text()
        );
    }
    assert!(s.stop().success());
}

#[test]
fn the_store_can_be_off() {
    let s = serve("[store]\nbackend = \"off\"\n[pool]\nmax_children = 1\n");
    assert_eq!(get(s.addr, "/where.php").text(), "none");
    assert!(s.stop().success());
}

#[test]
fn store_figures_in_status_and_metrics() {
    let (s, admin) = Server::with_admin("[pool]\nmax_children = 1\n");
    std::fs::write(s.docroot.join("counter.php"), COUNTER).unwrap();
    for _ in 0..3 {
        assert_eq!(get(s.addr, "/counter.php").status, 200);
    }
    let t = std::time::Instant::now();
    loop {
        let j = get(admin, "/status").json();
        // Isola's own keys (its heartbeat, its queues' registry) sit next to the counter.
        if j["store"]["keys"].as_u64() >= Some(1)
            && j["store"]["commands_processed"].as_u64() >= Some(3)
        {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "store figures: {}",
            j["store"]
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let m = get(admin, "/metrics").text();
    let keys = m
        .lines()
        .find_map(|l| l.strip_prefix("isola_store_keys "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(keys >= Some(1), "{m}");
    assert!(
        m.contains("# TYPE isola_store_commands_total counter"),
        "{m}"
    );
    assert!(s.stop().success());
}
