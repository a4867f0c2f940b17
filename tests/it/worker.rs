//! Worker mode (`[php] worker`, native backend): a script boots once per worker process and
//! serves requests in a loop with `frankenphp_handle_request()`, FrankenPHP's contract;
//! each request still gets fresh superglobals, body, uploads, headers and status, and a
//! failing request costs itself only.
use crate::harness::{assert_backtrace, fixture_site, Server};
use crate::http::{self, get, request};
use std::path::Path;
use std::time::{Duration, Instant};

/// The suite's second pass runs with ISOLA_BACKEND=php-cgi: worker mode is native only.
fn skip() -> bool {
    std::env::var("ISOLA_BACKEND").is_ok_and(|b| b == "php-cgi")
}

const WORKER: &str = r#"<?php
// Booted once per process: what lives here persists between requests.
$booted = getmypid();
$version = getenv('GEN') ?: (is_file(__DIR__ . '/booted_version.php') ? require __DIR__ . '/booted_version.php' : null);
$count = 0;
$handle = function_exists('isola_handle_request') && isset($_SERVER['ALIAS']) ? 'isola_handle_request' : 'frankenphp_handle_request';
$handler = static function () use (&$count, $booted, $version) {
    $count++;
    header('X-Count: ' . $count);
    switch ($_GET['do'] ?? '') {
        case 'exit': echo 'bye'; exit(0);
        case 'throw': throw new RuntimeException('boom');
        case 'fatal': undefined_function();
        case 'segv': posix_kill(getmypid(), SIGSEGV); sleep(5);
        case 'status': http_response_code(418); header('X-Only-Once: yes'); break;
        case 'finish': echo 'early'; frankenphp_finish_request(); echo 'dropped'; usleep(300000); return;
        case 'hang': sleep(30); break;
        case 'nap': usleep(1500000); break;
        case 'leak': static $kept = []; $kept[] = str_repeat('x', 4 << 20); break;
        case 'session':
            session_start();
            $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
            break;
    }
    $files = [];
    foreach ($_FILES as $k => $f) { $files[$k] = ['size' => $f['size'], 'tmp' => $f['tmp_name']]; }
    echo json_encode([
        'count' => $count, 'pid' => getmypid(), 'booted' => $booted, 'get' => $_GET, 'post' => $_POST,
        'cookie' => $_COOKIE, 'request' => $_REQUEST, 'files' => $files,
        'input' => file_get_contents('php://input'), 'worker' => $_SERVER['FRANKENPHP_WORKER'] ?? null,
        'uri' => $_SERVER['REQUEST_URI'], 'max' => $_SERVER['MAX_REQUESTS'] ?? null,
        'time' => $_SERVER['REQUEST_TIME_FLOAT'], 'session' => $_SESSION['n'] ?? null,
        'headers' => headers_list(), 'ob' => ob_get_level(), 'version' => $version,
    ]);
};
while ($handle($handler)) {
    gc_collect_cycles();
}
file_put_contents(__DIR__ . '/ended.log', "$booted $count\n", FILE_APPEND | LOCK_EX);
"#;

const CLASSIC: &str = r#"<?php
try {
    frankenphp_handle_request(fn () => null);
} catch (Exception $e) {
    echo 'classic ', getmypid(), ': ', $e->getMessage();
}
"#;

fn serve(toml: &str) -> (Server, tempfile::TempDir) {
    let site = fixture_site();
    std::fs::write(site.path().join("worker.php"), WORKER).unwrap();
    std::fs::write(site.path().join("classic.php"), CLASSIC).unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(&cfg, format!("[php]\nworker = \"worker.php\"\n{toml}")).unwrap();
    let s = Server::start_in(
        site.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--backend",
            "native",
            "--admin",
            "127.0.0.1:0",
        ],
        None,
    );
    (s, site)
}

fn json(addr: std::net::SocketAddr, target: &str) -> serde_json::Value {
    let r = get(addr, target);
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    r.json()
}

fn ended(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("ended.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn each_request_gets_fresh_state_in_a_process_that_booted_once() {
    if skip() {
        return;
    }
    let (s, _site) = serve("[pool]\nmax_children = 1\n");
    let a = json(s.addr, "/worker.php?a=1");
    let b = json(s.addr, "/worker.php?b=2");
    assert_eq!(
        (a["count"].as_i64(), b["count"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(a["pid"], b["pid"]);
    assert_eq!(a["booted"], a["pid"]);
    assert_eq!(
        (a["worker"].as_str(), a["max"].as_str()),
        (Some("1"), Some("1000"))
    );
    assert_eq!(b["get"], serde_json::json!({"b": "2"}));
    assert_eq!(b["request"], serde_json::json!({"b": "2"}));
    assert!(b["time"].as_f64() > a["time"].as_f64(), "{a} {b}");

    // A form post, a cookie, a raw body: each seen by its own request only.
    let r = request(
        s.addr,
        "POST",
        "/worker.php?q=3",
        &[
            "Content-Type: application/x-www-form-urlencoded",
            "Cookie: c=v",
        ],
        b"x=1&y=2",
    );
    let p = r.json();
    assert_eq!(p["post"], serde_json::json!({"x": "1", "y": "2"}));
    assert_eq!(p["cookie"], serde_json::json!({"c": "v"}));
    assert_eq!(
        p["request"],
        serde_json::json!({"q": "3", "x": "1", "y": "2"})
    );
    assert_eq!(p["input"], "x=1&y=2");
    let after = json(s.addr, "/worker.php");
    for k in ["get", "post", "cookie", "request", "files"] {
        assert_eq!(after[k], serde_json::json!([]), "{k} leaked: {after}");
    }
    assert_eq!(after["input"], "");

    // An upload: its temporary file is gone once the request is over.
    let body = http::multipart("XyZ", &[("f", Some("a.txt"), b"hello upload")]);
    let r = request(
        s.addr,
        "POST",
        "/worker.php",
        &["Content-Type: multipart/form-data; boundary=XyZ"],
        &body,
    );
    let u = r.json();
    assert_eq!(u["files"]["f"]["size"], 12, "{u}");
    let tmp = u["files"]["f"]["tmp"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!Path::new(&tmp).exists(), "{tmp} left behind");

    // frankenphp_finish_request(): the client has its response while the handler runs on.
    let t = Instant::now();
    let r = get(s.addr, "/worker.php?do=finish");
    assert_eq!(r.text(), "early");
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    // Status and headers belong to one response.
    let r = get(s.addr, "/worker.php?do=status");
    assert_eq!((r.status, r.header("x-only-once")), (418, Some("yes")));
    let r = get(s.addr, "/worker.php");
    assert_eq!((r.status, r.header("x-only-once")), (200, None));
    assert_eq!(
        r.json()["headers"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text()
    );
    assert_eq!(
        r.header("x-count"),
        r.json()["count"].as_i64().map(|n| n.to_string()).as_deref()
    );

    // Two clients never see each other's session.
    let first = get(s.addr, "/worker.php?do=session");
    let cookie = first.cookie();
    assert_eq!(first.json()["session"], 1);
    let again = request(
        s.addr,
        "GET",
        "/worker.php?do=session",
        &[&format!("Cookie: {cookie}")],
        b"",
    );
    assert_eq!(again.json()["session"], 2);
    let other = get(s.addr, "/worker.php?do=session");
    assert_eq!(
        other.json()["session"],
        1,
        "a second client saw the first one's session"
    );

    // Other scripts still run classically, in processes of their own.
    let c = get(s.addr, "/classic.php").text();
    assert!(c.contains("called while not in worker mode"), "{c}");
    assert!(!c.contains(&a["pid"].to_string()), "{c}");
}

#[test]
fn a_failing_request_costs_itself_only_and_the_worker_boots_again() {
    if skip() {
        return;
    }
    let (s, _site) = serve("[pool]\nmax_children = 1\n");
    let first = json(s.addr, "/worker.php");
    let r = get(s.addr, "/worker.php?do=exit");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "bye"),
        "output before exit() is sent"
    );
    let mut pids = vec![first["pid"].clone()];
    for (what, status) in [("throw", 500), ("fatal", 500), ("segv", 502)] {
        let fresh = json(s.addr, "/worker.php");
        assert_eq!(
            fresh["count"], 1,
            "after the previous failure: a fresh boot: {fresh}"
        );
        assert!(!pids.contains(&fresh["pid"]), "{fresh}");
        pids.push(fresh["pid"].clone());
        assert_eq!(
            get(s.addr, &format!("/worker.php?do={what}")).status,
            status,
            "{what}"
        );
    }
    assert_eq!(json(s.addr, "/worker.php")["count"], 1);
    let err = s.stderr();
    assert!(err.contains("Uncaught RuntimeException: boom"), "{err}");
    // exit(), an exception and a fatal error end the script, not a crash; the segfault is one.
    assert!(err.contains("worker script ended"), "{err}");
    assert_eq!(err.matches("died").count(), 1, "{err}");
    assert!(
        err.contains("worker died during a request (killed by SIGSEGV)"),
        "{err}"
    );
}

#[test]
fn max_requests_ends_the_loop_so_the_script_finishes_its_own_way() {
    if skip() {
        return;
    }
    let (s, site) = serve("[pool]\nmax_children = 1\nmax_requests = 3\n");
    let pids: Vec<_> = (0..7).map(|_| json(s.addr, "/worker.php")).collect();
    assert_eq!(
        pids.iter()
            .map(|p| p["count"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 1, 2, 3, 1]
    );
    assert_eq!(pids[0]["max"], "3");
    let t = Instant::now();
    while ended(site.path()).len() < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = ended(site.path());
    assert_eq!(
        lines,
        [
            format!("{} 3", pids[0]["pid"]),
            format!("{} 3", pids[3]["pid"])
        ],
        "the code after the loop ran once the handler returned false"
    );
    assert!(!s.stderr().contains("died"), "{}", s.stderr());
    // Stopping the server ends the loop of the last worker the same way.
    let last = pids[6]["pid"].clone();
    s.stop();
    assert_eq!(ended(site.path()).last(), Some(&format!("{last} 1")));
}

#[test]
fn a_worker_script_broken_by_an_edit_gets_503s_then_recovers_once_fixed() {
    if skip() {
        return;
    }
    // The watch is off: the test decides when the worker reboots (exit()).
    let (s, site) = serve(
        "worker_watch = false\n[pool]\nmax_children = 1\nqueue_timeout = \"1s\"\n[php.ini]\n\"opcache.revalidate_freq\" = 0\n",
    );
    assert_eq!(json(s.addr, "/worker.php")["count"], 1);
    let script = site.path().join("worker.php");
    std::fs::write(&script, "<?php syntax error here").unwrap();
    assert_eq!(get(s.addr, "/worker.php?do=exit").text(), "bye");
    let r = get(s.addr, "/worker.php");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        s.wait_for_log("PHP Parse error", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let recovered = || {
        std::fs::write(&script, WORKER).unwrap();
        let t = Instant::now();
        loop {
            let r = get(s.addr, "/worker.php");
            if r.status == 200 {
                assert_eq!(r.json()["count"], 1);
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "not recovered: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    recovered();
    // A worker that crashes while it starts (a segfault at boot) is a failed start too.
    std::fs::write(&script, "<?php posix_kill(getmypid(), SIGSEGV); sleep(5);").unwrap();
    assert_eq!(get(s.addr, "/worker.php?do=exit").text(), "bye");
    assert_eq!(get(s.addr, "/worker.php").status, 503);
    assert!(
        s.wait_for_log("SIGSEGV", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    recovered();
}

#[test]
fn isola_handle_request_is_the_same_function() {
    if skip() {
        return;
    }
    let (s, _site) = serve("[php.env]\nALIAS = \"1\"\n");
    let a = json(s.addr, "/worker.php");
    let b = json(s.addr, "/worker.php");
    assert_eq!(
        (a["count"].as_i64(), b["count"].as_i64()),
        (Some(1), Some(2))
    );
    // /status tells the worker pool from the classic one.
    let status = get(s.admin_addr().unwrap(), "/status").json();
    let modes: Vec<_> = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["pool"]["mode"].clone(),
            )
        })
        .collect();
    assert!(
        modes
            .iter()
            .any(|(n, m)| n.ends_with("worker") && m == "worker"),
        "{modes:?}"
    );
    assert!(modes.iter().any(|(_, m)| m == "classic"), "{modes:?}");
    let workers = &status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"]["mode"] == "worker")
        .unwrap()["workers"];
    let served: Vec<_> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["mode"].clone(), w["requests"].clone()))
        .collect();
    assert!(
        served.contains(&("worker".into(), 2.into())),
        "requests since the worker booted: {workers}"
    );
    let metrics = get(s.admin_addr().unwrap(), "/metrics").text();
    assert!(
        metrics.contains("backend=\"native\",mode=\"worker\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("backend=\"native\",mode=\"classic\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_worker_script_outside_the_docroot_or_on_php_cgi_is_a_config_error() {
    if skip() {
        return;
    }
    let site = fixture_site();
    for (toml, want) in [
        (
            "[php]\nworker = \"../etc/passwd.php\"\n",
            "php.worker: \"../etc/passwd.php\" must be a .php file inside the docroot",
        ),
        (
            "[php]\nworker = \"missing.php\"\n",
            "php.worker: \"missing.php\" in",
        ),
        (
            "[php]\nworker = \"hello.php\"\nbackend = \"php-cgi\"\n",
            "php.worker: worker mode runs on the native backend",
        ),
    ] {
        let cfg = site.path().join("isola.toml");
        std::fs::write(&cfg, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
            .env("STATE_DIRECTORY", site.path().join("state"))
            .env_remove("ISOLA_BACKEND")
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
        assert!(err.contains(want), "{toml}: {err}");
    }
}

#[test]
fn a_leaking_worker_is_retired_between_requests_without_failing_one() {
    if skip() {
        return;
    }
    let (s, site) = serve("[pool]\nmax_children = 1\nmax_worker_memory = \"48M\"\n[php.ini]\nmemory_limit = \"512M\"\n");
    let pids: std::collections::BTreeSet<String> = (0..30)
        .map(|i| {
            let r = get(s.addr, "/worker.php?do=leak");
            assert_eq!(r.status, 200, "request {i}: {}", s.stderr());
            r.json()["pid"].to_string()
        })
        .collect();
    assert!(
        pids.len() >= 3,
        "the leak was never stopped: {pids:?}\n{}",
        s.stderr()
    );
    assert!(
        s.stderr().contains("max_worker_memory exceeded"),
        "{}",
        s.stderr()
    );
    // Each retired worker left its loop and ran its own shutdown code.
    let t = Instant::now();
    while ended(site.path()).len() + 1 < pids.len() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ended(site.path()).len() + 1, pids.len(), "{}", s.stderr());
}

#[test]
fn an_edit_to_the_code_a_worker_loaded_is_served_without_a_restart() {
    if skip() {
        return;
    }
    let (s, site) = serve("[pool]\nmax_children = 2\n");
    std::fs::write(site.path().join("booted_version.php"), "<?php return 'A';").unwrap();
    // Writing the file is itself an edit: wait until the workers booted with it.
    let until = |want: &str| {
        let t = Instant::now();
        loop {
            let r = json(s.addr, "/worker.php");
            if r["version"] == want {
                return r;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "still {r} after 5 s\n{}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let a = until("A");
    std::fs::write(site.path().join("booted_version.php"), "<?php return 'B';").unwrap();
    let b = until("B");
    assert_ne!(a["pid"], b["pid"], "a fresh worker booted the new code");
    assert!(
        s.stderr()
            .contains("booted_version.php changed; replacing the workers"),
        "{}",
        s.stderr()
    );
    // A static file is not code: no reboot. (A worker may have booted B before the watch
    // replaced the workers: let that replacement settle first.)
    std::thread::sleep(Duration::from_millis(500));
    let before = json(s.addr, "/worker.php")["pid"].clone();
    std::fs::write(site.path().join("style.css"), "body {}").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..4 {
        pids.insert(json(s.addr, "/worker.php")["pid"].to_string());
    }
    assert!(
        pids.contains(&before.to_string()),
        "{pids:?} {before}\n{}",
        s.stderr()
    );
}

#[test]
fn worker_watch_off_keeps_the_booted_code() {
    if skip() {
        return;
    }
    let (s, site) = serve("worker_watch = false\n[pool]\nmax_children = 1\n");
    let a = json(s.addr, "/worker.php");
    std::fs::write(site.path().join("booted_version.php"), "<?php return 'B';").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let b = json(s.addr, "/worker.php");
    assert_eq!(
        (a["pid"].clone(), b["version"].clone()),
        (b["pid"].clone(), serde_json::Value::Null)
    );
}

/// examples/symfony-worker: a Symfony HttpKernel app from Debian's packages, booted once.
#[test]
fn the_symfony_example_serves_from_one_booted_kernel() {
    if skip() {
        return;
    }
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/symfony-worker/public");
    let s = Server::start_in(
        &public,
        &[
            "--worker",
            "index.php",
            "--workers",
            "1",
            "--backend",
            "native",
        ],
        None,
    );
    let a = json(s.addr, "/hello/ann?x=1");
    let b = json(s.addr, "/hello/bob");
    assert_eq!(
        (a["hello"].as_str(), b["hello"].as_str()),
        (Some("ann"), Some("bob"))
    );
    assert_eq!(a["query"], serde_json::json!({"x": "1"}));
    assert_eq!(b["query"], serde_json::json!([]));
    assert_eq!(
        (a["served"].as_i64(), b["served"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(a["booted"], b["booted"]);
    let r = request(
        s.addr,
        "POST",
        "/form",
        &["Content-Type: application/x-www-form-urlencoded"],
        b"a=1",
    );
    assert_eq!(r.json()["form"], serde_json::json!({"a": "1"}));
    let r = get(s.addr, "/nope");
    assert_eq!((r.status, r.text().as_str()), (404, "Not Found\n"));
    assert_eq!(
        json(s.addr, "/hello/cy")["served"],
        5,
        "the 404 did not cost the worker"
    );
}

#[test]
fn a_worker_script_that_cannot_boot_at_start_gets_503s_at_once_and_recovers() {
    if skip() {
        return;
    }
    let site = fixture_site();
    let script = site.path().join("worker.php");
    std::fs::write(&script, "<?php throw new Exception('database down');").unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        "[php]\nworker = \"worker.php\"\nworker_watch = false\n",
    )
    .unwrap();
    let s = Server::start_in(
        site.path(),
        &["--config", cfg.to_str().unwrap(), "--backend", "native"],
        None,
    );
    let t = Instant::now();
    let r = get(s.addr, "/worker.php");
    assert_eq!(r.status, 503);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "answered at once: {:?}",
        t.elapsed()
    );
    assert!(
        s.wait_for_log("database down", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    // The rest of the site serves meanwhile.
    assert_eq!(get(s.addr, "/hello.php").status, 200);
    std::fs::write(&script, WORKER).unwrap();
    let t = Instant::now();
    while get(s.addr, "/worker.php").status != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "not recovered: {}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_handler_past_request_terminate_timeout_is_killed_and_the_next_request_reboots() {
    if skip() {
        return;
    }
    let (s, _site) = serve("[pool]\nmax_children = 1\nrequest_terminate_timeout = \"1s\"\n");
    let a = json(s.addr, "/worker.php");
    let t = Instant::now();
    assert_eq!(get(s.addr, "/worker.php?do=hang").status, 504);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let b = json(s.addr, "/worker.php");
    assert_ne!(a["pid"], b["pid"]);
    assert_eq!(b["count"], 1, "a fresh boot");
}

/// SIGHUP reboots every worker-mode worker with the new configuration, under load, and no
/// request fails.
#[test]
fn a_reload_reboots_the_workers_without_failing_a_request() {
    if skip() {
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    let (s, site) =
        serve("worker_watch = false\nenv = { GEN = \"1\" }\n[pool]\nmax_children = 2\n");
    let until = |want: &str| {
        let t = Instant::now();
        while json(s.addr, "/worker.php")["version"] != want {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "never {want}: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    until("1");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let addr = s.addr;
    let load: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    statuses.push(get(addr, "/worker.php").status);
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(
        site.path().join("isola.toml"),
        "[php]\nworker = \"worker.php\"\nworker_watch = false\nenv = { GEN = \"2\" }\n[pool]\nmax_children = 2\n",
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    until("2");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = load.into_iter().flat_map(|l| l.join().unwrap()).collect();
    assert!(statuses.len() > 20, "{}", statuses.len());
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    // The old workers left their loops and ran their shutdown code.
    assert!(ended(site.path()).len() >= 2, "{:?}", ended(site.path()));
}

/// A slow handler's backtrace runs through the worker script's loop: the handler, then
/// frankenphp_handle_request() where the loop calls it.
#[test]
fn a_slow_handler_logs_its_backtrace_through_the_loop() {
    if skip() {
        return;
    }
    let (s, site) = serve("[pool]\nmax_children = 1\nslowlog_timeout = \"400ms\"\n");
    let r = request(
        s.addr,
        "GET",
        "/worker.php?do=nap",
        &["X-Request-Id: napper"],
        b"",
    );
    assert_eq!(r.status, 200, "{}", s.stderr());
    assert!(
        s.wait_for_log("slow request backtrace #2", Duration::from_secs(3)),
        "{}",
        s.stderr()
    );
    let line_of = |needle: &str| {
        WORKER
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
    };
    let (Some(nap), Some(inloop)) = (line_of("case 'nap'"), line_of("while ($handle(")) else {
        panic!("the worker script lost its nap case or loop");
    };
    let file = site.path().join("worker.php");
    let file = file.display();
    let want = [
        format!("#0: usleep() {file}:{nap}"),
        format!("#1: {{closure}}() {file}:{inloop}"),
        format!("#2: frankenphp_handle_request() {file}:{inloop}"),
    ];
    assert_backtrace(&s.stderr(), "napper", &want);
}
