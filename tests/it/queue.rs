//! `[[queue]]`: jobs pushed by real PHP (phpredis) onto the store, run by the pool in
//! order, retried, dead-lettered, recovered after `kill -9`, and driven from the admin
//! listener.
use crate::harness::{fixture_site, Server};
use crate::http::{get, request};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Pushes `?n` payloads (`0`..`n-1`, or `?p=PAYLOAD` once) onto `?q`, as a PHP app would.
const ENQUEUE: &str = r#"<?php
$url = getenv('ISOLA_STORE');
$r = new Redis();
if (str_starts_with($url, 'unix://')) { $r->connect(substr($url, 7)); }
else { $u = parse_url($url); $r->connect($u['host'], $u['port'] ?? 6379); }
$r->select((int)getenv('ISOLA_DB'));
$q = 'isola:queue:' . ($_GET['q'] ?? 'jobs');
if (isset($_GET['p'])) { $r->rPush($q, $_GET['p']); echo "1\n"; exit; }
$p = $r->multi(Redis::PIPELINE);
for ($i = 0; $i < (int)$_GET['n']; $i++) { $p->rPush($q, (string)$i); }
$p->exec();
echo $_GET['n'], "\n";
"#;

/// Records each run; fails, crashes or hangs on demand by payload and attempt.
const JOB: &str = r#"<?php
$payload = file_get_contents('php://input');
$attempt = (int)$_SERVER['ISOLA_JOB_ATTEMPT'];
$dir = __DIR__;
$lock = fopen("$dir/running.lock", 'c');
$alone = flock($lock, LOCK_EX | LOCK_NB);
$line = sprintf("%s %d %s %s %s %s %s\n", $payload, $attempt, $_SERVER['ISOLA_JOB_ID'],
    $_SERVER['ISOLA_QUEUE'], $_SERVER['REQUEST_METHOD'], $alone ? 'alone' : 'OVERLAP',
    $_SERVER['ISOLA_NODE']);
file_put_contents("$dir/started.log", $line, FILE_APPEND | LOCK_EX);
switch ($payload) {
    case 'flaky': if ($attempt < 2) { http_response_code(500); exit; } break;
    case 'bad': http_response_code(500); exit;
    case 'crash': if ($attempt < 2) { posix_kill(getmypid(), 11); sleep(5); } break;
    case 'slow': if ($attempt < 2) { sleep(10); } break;
    case 'long': sleep(30); break;
    default: if (str_starts_with($payload, 'nap')) { usleep(400000); }
}
file_put_contents("$dir/done.log", $line, FILE_APPEND | LOCK_EX);
"#;

const MARK: &str = r#"<?php
file_put_contents(__DIR__ . '/marks.log', ($_GET['v'] ?? '') . ' ' . ($_SERVER['ISOLA_QUEUE'] ?? '') . "\n", FILE_APPEND | LOCK_EX);
"#;

pub struct Site {
    pub dir: tempfile::TempDir,
    /// Outside the document root: the job script and what it writes.
    pub jobs: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = fixture_site();
        for (name, body) in [("enqueue.php", ENQUEUE), ("mark.php", MARK)] {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let jobs = tempfile::tempdir().unwrap();
        std::fs::write(jobs.path().join("job.php"), JOB).unwrap();
        Site { dir, jobs }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts Isola on this site with `toml` (plus the admin listener).
    pub fn serve(&self, toml: &str) -> (Server, SocketAddr) {
        let cfg = self.path().join("isola.toml");
        let toml = toml.replace("JOBS", self.jobs.path().to_str().unwrap());
        std::fs::write(&cfg, toml).unwrap();
        let s = Server::start_in(
            self.path(),
            &["--config", cfg.to_str().unwrap(), "--admin", "127.0.0.1:0"],
            None,
        );
        let admin = s.admin_addr().expect("admin address");
        (s, admin)
    }

    pub fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.jobs.path().join(file))
            .or_else(|_| std::fs::read_to_string(self.path().join(file)))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until `file` has at least `n` lines.
    pub fn wait_lines(&self, file: &str, n: usize, within: Duration) -> Vec<String> {
        let t = Instant::now();
        loop {
            let l = self.lines(file);
            if l.len() >= n || t.elapsed() > within {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One queue's figures from the admin listener.
pub fn queue(admin: SocketAddr, name: &str) -> serde_json::Value {
    let all = get(admin, "/queues").json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no queue {name} in {all}"))
}

/// Runs `?do` on the store in database `?db`, as an app would.
const STORE_CMD: &str = r#"<?php
$r = new Redis();
$r->connect(substr(getenv('ISOLA_STORE'), strlen('unix://')));
$r->select((int)($_GET['db'] ?? 0));
switch ($_GET['do']) {
    case 'keys': $k = $r->keys('*'); sort($k); echo implode(' ', $k); break;
    case 'dbsize': echo $r->dbSize(); break;
    case 'scan': $it = null; $n = 0;
        while (($ks = $r->scan($it)) !== false) { $n += count($ks); } echo $n; break;
    case 'flushall': echo $r->flushAll() ? 'flushed' : 'failed'; break;
}
"#;

const QUEUE: &str = r#"
[[queue]]
name = "jobs"
script = "JOBS/job.php"
"#;

#[test]
fn jobs_run_one_at_a_time_in_fifo_order_under_a_burst() {
    let site = Site::new();
    let (s, _) = site.serve(&format!("[pool]\nmax_children = 3\n{QUEUE}"));
    assert_eq!(get(s.addr, "/enqueue.php?n=1000").status, 200);
    let done = site.wait_lines("done.log", 1000, Duration::from_secs(120));
    assert_eq!(done.len(), 1000, "{}", s.stderr());
    let mut ids = std::collections::HashSet::new();
    for (i, line) in done.iter().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[0], i.to_string(), "FIFO order broken at line {i}: {line}");
        assert_eq!(f[1], "1", "first attempt: {line}");
        assert_eq!((f[3], f[4], f[5]), ("jobs", "POST", "alone"), "{line}");
        assert!(ids.insert(f[2].to_string()), "job id reused: {line}");
    }
    // The script lives outside the document root: it is not reachable over HTTP.
    assert_eq!(get(s.addr, "/job.php").status, 404);
}

#[test]
fn failures_are_retried_with_backoff_then_dead_lettered_and_the_admin_acts_on_them() {
    let site = Site::new();
    let (s, admin) = site.serve(&format!(
        "[pool]\nmax_children = 3\n{QUEUE}max_attempts = 3\nbackoff = \"1s\"\ntimeout = \"2s\"\nconcurrency = 2\nreserve = 0\n"
    ));
    for p in ["flaky", "crash", "slow", "bad", "fine"] {
        assert_eq!(get(s.addr, &format!("/enqueue.php?p={p}")).status, 200);
    }
    let t = Instant::now();
    let q = loop {
        let q = queue(admin, "jobs");
        if q["dead"] == 1 && q["done"] == 4 || t.elapsed() > Duration::from_secs(40) {
            break q;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = &q;
    assert_eq!(q["name"], "jobs");
    assert_eq!(
        (q["dead"].as_u64(), q["done"].as_u64()),
        (Some(1), Some(4)),
        "{status}\n{}",
        s.stderr()
    );
    // flaky, crash and slow fail once each, bad three times.
    assert_eq!(q["failed"].as_u64(), Some(6), "{status}");
    let done = site.lines("done.log");
    for (p, attempt) in [("flaky", 2), ("crash", 2), ("slow", 2), ("fine", 1)] {
        assert!(
            done.iter()
                .any(|l| l.starts_with(&format!("{p} {attempt} "))),
            "{p} done on attempt {attempt}: {done:?}"
        );
    }
    let started = site.lines("started.log");
    let bad: Vec<_> = started.iter().filter(|l| l.starts_with("bad ")).collect();
    assert_eq!(bad.len(), 3, "{started:?}");
    let stderr = s.stderr();
    assert!(
        stderr.contains("SIGSEGV") || stderr.contains("signal 11"),
        "{stderr}"
    );

    // The dead job, with its story.
    let dead = get(admin, "/queues/jobs?dead").json();
    assert_eq!(dead[0]["payload"], "bad", "{dead}");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["error"], "script answered 500");
    let metrics = get(admin, "/metrics").text();
    assert!(
        metrics.contains("isola_queue_jobs_dead{queue=\"jobs\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("isola_queue_jobs_done_total{queue=\"jobs\"} 4"),
        "{metrics}"
    );
    let st = get(admin, "/status").json();
    assert!(
        st["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "jobs" && q["dead"] == 1),
        "{st}"
    );
    let page = get(admin, "/status?html").text();
    assert!(
        page.contains("<h2>Queues</h2>") && page.contains("<td>jobs</td>"),
        "{page}"
    );
    assert!(page.contains("<h2>Store</h2>"), "{page}");

    // Retry: the dead job starts over with fresh attempts.
    let r = request(admin, "POST", "/queues/jobs/retry", &[], b"");
    assert_eq!(
        (r.status, r.json()["retried"].as_u64()),
        (200, Some(1)),
        "{}",
        r.text()
    );
    let again = site.wait_lines("started.log", started.len() + 1, Duration::from_secs(10));
    assert!(again.last().unwrap().starts_with("bad 1 "), "{again:?}");

    // Enqueue over HTTP: the script sees the id it was given.
    let r = request(admin, "POST", "/queues/jobs", &[], b"from-admin");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    while !site
        .lines("done.log")
        .iter()
        .any(|l| l.starts_with("from-admin "))
    {
        assert!(t.elapsed() < Duration::from_secs(10), "admin job never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = site
        .lines("done.log")
        .into_iter()
        .find(|l| l.starts_with("from-admin "))
        .unwrap();
    assert!(line.contains(&format!(" 1 {id} jobs ")), "{line}");

    // Unknown queues and wrong methods are refused.
    assert_eq!(
        request(admin, "POST", "/queues/nope", &[], b"x").status,
        404
    );
    assert_eq!(
        request(admin, "DELETE", "/queues/jobs", &[], b"").status,
        405
    );
    // Drop the dead list (the retried job dies again after 1 s + 2 s of backoff).
    let t = Instant::now();
    while get(admin, "/queues/jobs?dead")
        .json()
        .as_array()
        .unwrap()
        .len()
        != 1
    {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = request(admin, "POST", "/queues/jobs/drop", &[], b"");
    assert_eq!(r.json()["dropped"], 1);
}

#[test]
fn jobs_leave_the_reserved_workers_to_web_requests() {
    let site = Site::new();
    // Two workers, one reserved for web: two consumers still run one job at a time.
    let (s, _) = site.serve(&format!(
        "[pool]\nmax_children = 2\n{QUEUE}concurrency = 2\nreserve = 1\n"
    ));
    for i in 0..4 {
        assert_eq!(get(s.addr, &format!("/enqueue.php?p=nap{i}")).status, 200);
    }
    // Web requests are answered while jobs run.
    let t = Instant::now();
    while site.lines("done.log").len() < 4 {
        assert_eq!(get(s.addr, "/hello.php").status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{}\nSTARTED {:?}\nDONE {:?}",
            s.stderr(),
            site.lines("started.log"),
            site.lines("done.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = site.lines("started.log");
    assert!(
        started.iter().all(|l| l.contains(" alone ")),
        "jobs overlapped despite the reserve: {started:?}"
    );
}

#[test]
fn the_defer_queue_runs_request_targets() {
    let site = Site::new();
    let (s, admin) = site.serve("");
    let target = "%2Fmark.php%3Fv%3D7";
    let r = get(s.addr, &format!("/enqueue.php?q=defer&p={target}"));
    assert_eq!(r.status, 200);
    let marks = site.wait_lines("marks.log", 1, Duration::from_secs(10));
    assert_eq!(marks, vec!["7 defer".to_string()], "{}", s.stderr());
    // Targets that leave the site are refused and end in the dead list.
    request(
        admin,
        "POST",
        "/queues/defer",
        &[],
        b"http://elsewhere/x.php",
    );
    let t = Instant::now();
    while queue(admin, "defer")["failed"] == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", s.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_queue_needs_a_store_and_a_php_script() {
    let site = Site::new();
    std::fs::write(site.path().join("notes.txt"), "x").unwrap();
    let cfg = site.path().join("isola.toml");
    std::fs::write(
        &cfg,
        "[store]\nbackend = \"off\"\n[[queue]]\nname = \"a\"\nscript = \"index.php\"\n[[queue]]\nname = \"b\"\nscript = \"notes.txt\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .arg(site.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("queue: queues live in the store"), "{err}");
    assert!(
        err.contains("queue[1].script: notes.txt is not a .php file"),
        "{err}"
    );
}

fn isola(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A retry moves back the jobs dead when it starts, once each: one that fails again at once
/// and dies while the retry is still moving the others is not moved (and run) a second time.
#[test]
fn a_retry_runs_each_dead_job_once_even_when_it_dies_again_at_once() {
    const N: usize = 40;
    let site = Site::new();
    let (s, admin) = site.serve(&format!(
        "[pool]\nmax_children = 4\n{QUEUE}max_attempts = 1\n"
    ));
    let a = admin.to_string();
    for _ in 0..N {
        let (code, _, err) = isola(&["queue", "--admin", &a, "push", "jobs", "bad"], "");
        assert_eq!(code, 0, "{err}");
    }
    let dead_count = || {
        let (_, out, _) = isola(
            &[
                "queue", "--admin", &a, "show", "jobs", "--dead", "--limit", "1000",
            ],
            "",
        );
        out.matches("script answered 500").count()
    };
    let t = Instant::now();
    while dead_count() < N {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", s.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = isola(&["queue", "--admin", &a, "retry", "jobs"], "");
    assert_eq!(
        (code, out.trim()),
        (0, &*format!("{N} job(s) back in jobs")),
        "{err}"
    );
    // Every job runs once more, then lies dead again; no run beyond that.
    site.wait_lines("started.log", 2 * N, Duration::from_secs(30));
    let t = Instant::now();
    while dead_count() < N {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", s.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(site.lines("started.log").len(), 2 * N, "{}", s.stderr());
    assert_eq!(dead_count(), N);
}

#[test]
fn the_command_line_lists_pushes_retries_and_drops_and_reaches_the_store() {
    let site = Site::new();
    let (s, admin) = site.serve(&format!(
        "{QUEUE}max_attempts = 1\n[store]\nrequirepass = \"s3cret\"\n"
    ));
    let a = admin.to_string();
    let (code, out, err) = isola(&["queue", "--admin", &a, "push", "jobs", "bad"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().len(), 20, "a job id: {out}");
    let t = Instant::now();
    loop {
        let (_, out, _) = isola(&["queue", "--admin", &a, "show", "jobs", "--dead"], "");
        if out.contains("error=\"script answered 500\"") {
            assert!(
                out.contains("attempts=1") && out.trim_end().ends_with("bad"),
                "{out}"
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{out}\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, out, _) = isola(&["queue", "--admin", &a, "ls"], "");
    assert!(out.starts_with("QUEUE"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("jobs ")), "{out}");

    // The store, through the running server's report of its socket (password from config).
    let cfg = site.path().join("isola.toml");
    let c = cfg.to_str().unwrap();
    let (code, out, err) = isola(
        &[
            "store-cli",
            "--config",
            c,
            "--admin",
            &a,
            "-n",
            "15",
            "LLEN",
            "isola:dead:jobs",
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "(integer) 1\n"), "{err}");
    let (code, out, err) = isola(
        &["store-cli", "--config", c, "--admin", &a],
        "SET greeting \"hello world\"\nGET greeting\nLRANGE nothing 0 -1\nNOSUCH\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "OK\n\"hello world\"\n(empty array)\n(error) ERR unknown command 'NOSUCH', with args beginning with: \n"
    );
    // Without the password the store refuses.
    let (code, out, _) = isola(&["store-cli", "--admin", &a, "PING"], "");
    assert_eq!(
        (code, out.as_str()),
        (1, "(error) NOAUTH Authentication required.\n")
    );

    let (code, out, _) = isola(&["queue", "--admin", &a, "retry", "jobs"], "");
    let dead = isola(&["queue", "--admin", &a, "show", "jobs"], "").1;
    assert_eq!(
        (code, out.trim()),
        (0, "1 job(s) back in jobs"),
        "{dead}\n{}",
        s.stderr()
    );
    let (code, out, err) = isola(&["queue", "--admin", &a, "drop", "nope"], "");
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("404") && err.contains("no such queue"),
        "{err}"
    );
    let (code, _, err) = isola(&["queue", "ls"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no admin listener"), "{err}");
}

/// Spawns `/spawned.php` the way WordPress spawns `wp-cron.php`: a request to the server
/// itself that it does not wait for (the connection closes after 10 ms).
const SPAWN: &str = r#"<?php
$s = fsockopen($_SERVER['SERVER_ADDR'], (int)$_SERVER['SERVER_PORT'], $errno, $err, 1);
fwrite($s, "GET /spawned.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
usleep(10000);
fclose($s);
echo "page done";
"#;

const SPAWNED: &str = r#"<?php
ignore_user_abort(true);
usleep(500000);
file_put_contents(__DIR__ . '/marks.log', "spawned\n", FILE_APPEND | LOCK_EX);
"#;

#[test]
fn a_loopback_spawn_runs_even_with_one_worker_and_its_client_gone() {
    let site = Site::new();
    std::fs::write(site.path().join("spawn.php"), SPAWN).unwrap();
    std::fs::write(site.path().join("spawned.php"), SPAWNED).unwrap();
    // One worker: the spawned request can only run after the page that spawned it.
    let (s, _) = site.serve("[pool]\nmax_children = 1\n");
    let r = get(s.addr, "/spawn.php");
    assert_eq!((r.status, r.text().as_str()), (200, "page done"));
    let marks = site.wait_lines("marks.log", 1, Duration::from_secs(10));
    assert_eq!(marks, vec!["spawned".to_string()], "{}", s.stderr());
}

#[test]
fn a_queue_with_its_own_pool_leaves_the_web_pool_alone() {
    let site = Site::new();
    let (s, admin) = site.serve(&format!(
        "[pool]\nmax_children = 1\n{QUEUE}concurrency = 2\npool = \"own\"\n"
    ));
    for i in 0..4 {
        assert_eq!(get(s.addr, &format!("/enqueue.php?p=nap{i}")).status, 200);
    }
    let done = site.wait_lines("done.log", 4, Duration::from_secs(20));
    assert_eq!(done.len(), 4, "{}", s.stderr());
    let st = get(admin, "/status").json();
    let sites = st["sites"].as_array().unwrap();
    let jobs = sites
        .iter()
        .find(|x| x["name"].as_str().unwrap().ends_with(" queue:jobs"))
        .unwrap_or_else(|| panic!("no queue pool in {st}"));
    assert_eq!(jobs["pool"]["max_children"], 2, "{jobs}");
    assert_eq!(jobs["pool"]["accepted"], 4, "{jobs}");
    // The web pool served the four enqueue requests and no job.
    assert_eq!(sites[0]["pool"]["accepted"], 4, "{}", sites[0]);
    let m = get(admin, "/metrics").text();
    assert!(m.contains(" queue:jobs\""), "{m}");
}

#[test]
fn a_schedule_can_run_a_script_outside_the_document_root_on_time() {
    let site = Site::new();
    std::fs::write(
        site.jobs.path().join("tick.php"),
        "<?php file_put_contents(__DIR__ . '/ticks.log', $_SERVER['HTTP_X_ISOLA_INTERNAL'] . ' ' . $_SERVER['SCRIPT_NAME'] . ' ' . microtime(true) . \"\\n\", FILE_APPEND | LOCK_EX);",
    )
    .unwrap();
    let (s, _) = site.serve("[[schedule]]\nscript = \"JOBS/tick.php\"\nevery = \"2s\"\n");
    let ticks = site.wait_lines("ticks.log", 3, Duration::from_secs(15));
    assert!(ticks.len() >= 3, "{}", s.stderr());
    let mut times = Vec::new();
    for t in &ticks {
        let f: Vec<&str> = t.split(' ').collect();
        assert_eq!((f[0], f[1]), ("schedule", "/tick.php"), "{t}");
        times.push(f[2].parse::<f64>().unwrap());
    }
    // Ticks fall on multiples of the interval since the epoch (the same instants on every
    // node); each run starts within a second of its tick.
    for t in &times {
        assert!(
            t.rem_euclid(2.0) < 1.0,
            "run at {t} is more than 1 s after its tick"
        );
    }
    for w in times.windows(2) {
        assert!(
            (1.0..3.0).contains(&(w[1] - w[0])),
            "runs {w:?} are not 2 s apart"
        );
    }
    assert_eq!(get(s.addr, "/tick.php").status, 404);
}

#[test]
fn a_job_running_when_isola_is_killed_runs_again_from_the_embedded_store() {
    let site = Site::new();
    let data = tempfile::tempdir().unwrap();
    let toml = format!(
        "[store]\ndir = \"{}\"\nappendfsync = \"always\"\nnode_id = \"n1\"\n{QUEUE}",
        data.path().display()
    );
    let (s, _) = site.serve(&toml);
    assert_eq!(get(s.addr, "/enqueue.php?p=long").status, 200);
    let started = site.wait_lines("started.log", 1, Duration::from_secs(10));
    assert!(started[0].starts_with("long 1 "), "{started:?}");
    s.kill9();
    // The store's log kept the job in this node's processing list; the restart puts it
    // back and runs it again.
    let (s, _) = site.serve(&toml);
    let started = site.wait_lines("started.log", 2, Duration::from_secs(10));
    assert!(
        started.len() == 2 && started[1].starts_with("long 2 "),
        "{started:?}\n{}",
        s.stderr()
    );
    assert_eq!(
        started[0].split(' ').nth(2),
        started[1].split(' ').nth(2),
        "same job id"
    );
}

#[test]
fn a_reload_that_changes_a_queue_lets_its_running_job_finish_first() {
    let site = Site::new();
    let (s, admin) = site.serve(&format!("[pool]\nmax_children = 3\n{QUEUE}reserve = 0\n"));
    for i in 0..6 {
        assert_eq!(get(s.addr, &format!("/enqueue.php?p=nap{i}")).status, 200);
    }
    site.wait_lines("started.log", 1, Duration::from_secs(10));
    // Two consumers from now on; the old one finishes its job before they start.
    std::fs::write(
        site.path().join("isola.toml"),
        format!("[pool]\nmax_children = 3\n{QUEUE}reserve = 0\nconcurrency = 2\n")
            .replace("JOBS", site.jobs.path().to_str().unwrap()),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        s.wait_for_log("reload: queues restarted", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let done = site.wait_lines("done.log", 6, Duration::from_secs(20));
    assert_eq!(done.len(), 6, "{}", s.stderr());
    let started = site.lines("started.log");
    assert_eq!(started.len(), 6, "each job ran once: {started:?}");
    assert!(
        started.iter().all(|l| l.contains(" 1 ")),
        "first attempts only: {started:?}"
    );
    assert_eq!(queue(admin, "jobs")["failed"], 0);
}

#[test]
fn isola_keys_stay_out_of_the_app_database_and_come_back_after_its_flushall() {
    let site = Site::new();
    std::fs::write(site.path().join("store.php"), STORE_CMD).unwrap();
    let (s, _) = site.serve(&format!("[pool]\nmax_children = 3\n{QUEUE}"));
    let keys = |db: u16| get(s.addr, &format!("/store.php?do=keys&db={db}")).text();
    let wait_keys = |db: u16, want: &[&str]| {
        let t = Instant::now();
        loop {
            let k = keys(db);
            if want.iter().all(|w| k.contains(w)) || t.elapsed() > Duration::from_secs(15) {
                return k;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let ours = ["isola:node:", "isola:nodes:jobs", "isola:nodes:defer"];
    let k = wait_keys(15, &ours);
    assert!(
        ours.iter().all(|w| k.contains(w)),
        "db 15: {k}\n{}",
        s.stderr()
    );
    // What an app sees of its own database: nothing it did not write.
    assert_eq!(keys(0), "");
    assert_eq!(get(s.addr, "/store.php?do=dbsize").text(), "0");
    assert_eq!(get(s.addr, "/store.php?do=scan").text(), "0");
    assert_eq!(get(s.addr, "/enqueue.php?p=before").status, 200);
    assert_eq!(
        site.wait_lines("done.log", 1, Duration::from_secs(20))
            .len(),
        1
    );

    // An app's FLUSHALL reaches every database: the node notices and registers again.
    assert_eq!(get(s.addr, "/store.php?do=flushall").text(), "flushed");
    assert!(
        s.wait_for_log("registering it again", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    let k = wait_keys(15, &ours[..2]);
    assert!(ours[..2].iter().all(|w| k.contains(w)), "db 15: {k}");
    assert_eq!(get(s.addr, "/enqueue.php?p=after").status, 200);
    let done = site.wait_lines("done.log", 2, Duration::from_secs(20));
    assert!(
        done.len() == 2 && done[1].starts_with("after "),
        "{done:?}\n{}",
        s.stderr()
    );
}
