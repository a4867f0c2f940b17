//! What only the native backend does, or does differently: the engine host's life,
//! fastcgi_finish_request(), client aborts, one opcache shared by the workers. Everything
//! else runs on both backends through the rest of the suite.
use crate::harness::{children_of, zombies_of, Server};
use crate::http::get;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The suite's second pass runs with ISOLA_BACKEND=php-cgi: these tests belong to the first.
fn skip() -> bool {
    std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi")
}

fn native(toml: &str) -> Server {
    let s = Server::with_config_and(toml, &["--backend", "native"]);
    assert!(
        s.wait_for_log("PHP backend: native", Duration::from_secs(5)),
        "{}",
        s.stderr()
    );
    s
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Processes of `pid` named `name` (the engine host sets its name).
fn named_children(pid: u32, name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let ppid = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok());
            head.ends_with(&format!("({name}")) && ppid == Some(pid)
        })
        .collect()
}

#[test]
fn workers_are_the_servers_children_and_share_one_opcache() {
    if skip() {
        return;
    }
    // The fixture was just copied: opcache skips files younger than file_update_protection.
    let s = native(
        "[pool]\nmax_children = 2\n[php]\nini = { \"opcache.file_update_protection\" = 0 }\n",
    );
    assert_eq!(named_children(s.pid(), "isola-zygote").len(), 1);
    assert_eq!(
        children_of(s.pid()).len(),
        2,
        "two workers besides the engine host"
    );
    // One worker sleeps while the other compiles hello.php.
    let sleeper = std::thread::spawn({
        let addr = s.addr;
        move || get(addr, "/sleep.php?ms=600").text()
    });
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    let compiler = get(s.addr, "/opcache.php").json();
    let slept = sleeper.join().unwrap();
    let sleeper_pid: u64 = slept.trim_start_matches("slept ").parse().unwrap();
    assert_ne!(compiler["pid"].as_u64(), Some(sleeper_pid));
    // Now ask the worker that never ran hello.php what its opcache holds.
    let mut seen = None;
    for _ in 0..20 {
        let j = get(s.addr, "/opcache.php").json();
        if j["pid"].as_u64() == Some(sleeper_pid) {
            seen = Some(j);
            break;
        }
    }
    let j = seen.expect("the sleeping worker answered");
    assert_eq!(j["enabled"], true, "{j}");
    let scripts: Vec<&str> = j["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        scripts.iter().any(|p| p.ends_with("/hello.php")),
        "a script compiled by one worker is in its sibling's opcache: {scripts:?}"
    );
}

#[test]
fn fastcgi_finish_request_answers_at_once_and_the_script_runs_on() {
    if skip() {
        return;
    }
    let s = native("[pool]\nmax_children = 1\n");
    let t = Instant::now();
    let r = get(s.addr, "/finish_request.php?ms=1500");
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sent to the client");
    assert!(
        took < Duration::from_millis(1200),
        "answered before the script ended: {took:?}"
    );
    let marker = s.docroot.join("finished-after");
    assert!(!marker.exists(), "the script is still running");
    // The only worker is busy until the script ends: the next request waits for it.
    let t = Instant::now();
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    assert!(
        marker.exists(),
        "the worker was handed out before its script ended"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran on\n");
    assert!(t.elapsed() > Duration::from_millis(200));
}

/// Reads a little of a streamed response, then hangs up.
fn read_some_and_leave(s: &Server, target: &str) {
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(c, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0u8; 32 * 1024];
    let mut got = 0;
    while got < 64 * 1024 {
        got += c.read(&mut buf).unwrap();
    }
    drop(c);
}

fn wait_for_file(path: &std::path::Path) -> String {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.contains("shutdown") {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never written", path.display());
}

#[test]
fn a_client_that_leaves_is_noticed_by_the_script_as_under_php_fpm() {
    if skip() {
        return;
    }
    let s = native("[pool]\nmax_children = 1\n");
    // Default ignore_user_abort(false): the script is stopped at its next output.
    read_some_and_leave(&s, "/abort.php?tag=stop");
    let text = wait_for_file(&s.docroot.join("abort-stop"));
    assert!(
        !text.contains("noticed"),
        "stopped before its own check: {text}"
    );
    assert!(text.contains("shutdown status=1"), "{text}");
    // ignore_user_abort(true): the script runs on and sees connection_aborted().
    read_some_and_leave(&s, "/abort.php?tag=ignore&ignore=1");
    let text = wait_for_file(&s.docroot.join("abort-ignore"));
    assert!(text.contains("noticed at"), "{text}");
    assert!(text.contains("shutdown status=1"), "{text}");
    // The worker was not replaced for it: the same process serves on.
    let pids = children_of(s.pid());
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    assert_eq!(children_of(s.pid()), pids);
}

#[test]
fn a_dead_engine_host_is_replaced_and_serving_goes_on() {
    if skip() {
        return;
    }
    let s = native("[pool]\nmax_children = 2\n");
    let zygote = named_children(s.pid(), "isola-zygote");
    assert_eq!(zygote.len(), 1);
    signal(zygote[0], nix::sys::signal::Signal::SIGKILL);
    // Live workers keep serving without it.
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    // A worker dies: its replacement needs an engine host, so a new one starts.
    assert_eq!(get(s.addr, "/segv.php").status, 502);
    // Bounded generously: the suite runs many servers at once on few cores.
    assert!(
        s.wait_for_log("starting a new one", Duration::from_secs(15)),
        "{}",
        s.stderr()
    );
    let t = Instant::now();
    while children_of(s.pid()).len() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        children_of(s.pid()).len(),
        2,
        "the pool is whole again: {}",
        s.stderr()
    );
    let now = named_children(s.pid(), "isola-zygote");
    assert_eq!(now.len(), 1);
    assert_ne!(now, zygote);
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(zombies_of(s.pid()).is_empty(), "{:?}", zombies_of(s.pid()));
    assert!(s.stop().success());
}

#[test]
fn a_script_that_forks_reaps_its_own_child() {
    if skip() {
        return;
    }
    // Debian's php.ini disables the pcntl functions for web SAPIs; a site that forks enables them.
    let s = native("[pool]\nmax_children = 1\n[php]\nini = { disable_functions = \"\" }\n");
    let r = get(s.addr, "/forker.php");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("status 0"), "{}", r.text());
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    assert!(zombies_of(s.pid()).is_empty());
}

#[test]
fn reload_replaces_the_engine_host() {
    if skip() {
        return;
    }
    let s = native("[pool]\nmax_children = 1\n");
    let before = named_children(s.pid(), "isola-zygote");
    signal(s.pid(), nix::sys::signal::Signal::SIGHUP);
    assert!(
        s.wait_for_log("reloaded", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let t = Instant::now();
    loop {
        let now = named_children(s.pid(), "isola-zygote");
        if now.len() == 1 && now != before {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "engine hosts: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(s.addr, "/hello.php").status, 200);
}

#[test]
fn status_names_the_backend_and_the_engine() {
    let (s, admin) = Server::with_admin("[pool]\nmax_children = 1\n");
    let st = get(admin, "/status").json();
    let expected = if skip() { "php-cgi" } else { "native" };
    assert_eq!(st["pool"]["backend"], expected, "{st}");
    if !skip() {
        let note = st["pool"]["backend_note"].as_str().unwrap_or_default();
        assert!(note.contains("opcache on"), "{note}");
    }
    let html = crate::http::request(admin, "GET", "/status?html", &[], b"").text();
    assert!(html.contains("PHP backend"), "{html}");
    drop(s);
}

#[test]
fn a_stopped_engine_host_is_replaced_without_holding_requests() {
    if skip() {
        return;
    }
    let s = native("[pool]\nmax_children = 2\n");
    let zygote = named_children(s.pid(), "isola-zygote");
    assert_eq!(zygote.len(), 1);
    signal(zygote[0], nix::sys::signal::Signal::SIGSTOP);
    // A worker dies: its replacement waits for a fork that never comes, while the other
    // worker keeps serving.
    assert_eq!(get(s.addr, "/segv.php").status, 502);
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    assert!(
        s.wait_for_log("did not fork a worker", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let t = Instant::now();
    loop {
        let now = named_children(s.pid(), "isola-zygote");
        if now.len() == 1 && now != zygote && children_of(s.pid()).len() == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "engine hosts {now:?}, workers {:?}: {}",
            children_of(s.pid()),
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !std::path::Path::new(&format!("/proc/{}", zygote[0])).exists(),
        "the stopped engine host was killed and reaped"
    );
    assert!(zombies_of(s.pid()).is_empty(), "{:?}", zombies_of(s.pid()));
    assert!(s.stop().success());
}

#[test]
fn opcache_reset_in_one_worker_leaves_its_siblings_serving() {
    if skip() {
        return;
    }
    let s = native(
        "[pool]\nmax_children = 2\n[php]\nini = { \"opcache.file_update_protection\" = 0 }\n",
    );
    for _ in 0..4 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
    }
    let r = get(s.addr, "/opcache_reset.php");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("reset"), "{}", r.text());
    let pids = children_of(s.pid());
    // Both workers compile and serve again from the emptied cache, none crashed.
    for _ in 0..20 {
        let r = get(s.addr, "/hello.php");
        assert_eq!(r.status, 200);
        assert!(
            r.text().starts_with("hello from /hello.php"),
            "{}",
            r.text()
        );
    }
    let j = get(s.addr, "/opcache.php").json();
    assert_eq!(j["enabled"], true, "{j}");
    assert!(
        j["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.ends_with("/hello.php"))),
        "the cache fills again: {j}"
    );
    assert_eq!(children_of(s.pid()), pids, "no worker was replaced");
    assert!(s.stop().success());
}
