//! `isola serve`: build the configuration, start the pool and the front, run until a stop
//! signal, then stop both in order.
use crate::cli::{LogFormatArg, ServeArgs};
use crate::notify::Notifier;
use crate::store_link::StoreLink;
use anyhow::Context;
use isola_config::{Config, ConfigError, PhpBackend, PhpConfig, RawConfig, SiteConfig};
use isola_engine::{Native, NativeRecipe};
use isola_front::tls::{Certificates, Tls, TlsError};
use isola_front::{
    AccessLog, CompressionPolicy, Front, FrontHandle, Listeners, Options, Settings, Site,
    UnknownHost,
};
use isola_pool::{Backend, PhpCgi, Pool, PoolConfig, PoolSettings, ProcessManager};
use isola_router::Router;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping worker gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// ini settings Isola imposes, after the user's: php-cgi must run exactly the
/// SCRIPT_FILENAME Isola chose (with fix_pathinfo=0 it would run PATH_TRANSLATED instead).
const FORCED_INI: &[&str] = &["cgi.fix_pathinfo=1", "cgi.discard_path=0"];

/// Exit status for an error: 2 for configuration problems, 1 for the rest.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() {
        2
    } else {
        1
    }
}

pub(crate) fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (mut raw, base_dir) = match &args.config {
        Some(path) => {
            let raw = RawConfig::from_file(path)?;
            let dir = path.parent().map_or_else(|| cwd.clone(), |p| cwd.join(p));
            (raw, dir)
        }
        None => (RawConfig::default(), cwd.clone()),
    };
    if let Some(d) = &args.docroot {
        raw.server.docroot = Some(cwd.join(d));
    }
    if let Some(l) = &args.listen {
        raw.server.listen = Some(l.clone());
    }
    if let Some(p) = &args.pid_file {
        raw.server.pid_file = Some(cwd.join(p));
    }
    if let Some(a) = &args.admin {
        raw.admin.listen = Some(a.clone());
    }
    if let Some(w) = args.workers {
        raw.pool.max_children = Some(isola_config::NumOrStr::Num(w));
    }
    if let Some(b) = &args.backend {
        raw.php.backend = Some(b.clone());
    }
    if let Some(w) = &args.worker {
        raw.php.worker = Some(w.clone());
    }
    if let Some(p) = &args.php {
        raw.php.binary = Some(if p.contains('/') {
            cwd.join(p).to_string_lossy().into_owned()
        } else {
            p.clone()
        });
    }
    if let Some(f) = args.log_format {
        raw.log.format = Some(
            match f {
                LogFormatArg::Human => "human",
                LogFormatArg::Json => "json",
            }
            .to_string(),
        );
    }
    if let Some(l) = &args.log_level {
        raw.log.level = Some(l.clone());
    }
    Ok(raw.validate(&base_dir, &config_env())?)
}

/// What the config needs from the process environment: the config crate reads none itself.
pub(crate) fn config_env() -> isola_config::Env {
    isola_config::Env {
        search_path: std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_else(|| vec![PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")]),
        state_dir: isola_config::default_state_dir(
            |k| std::env::var_os(k),
            nix::unistd::Uid::effective().is_root(),
        ),
    }
}

/// A private folder for worker sockets and spooled bodies; removed when dropped.
fn runtime_dir() -> anyhow::Result<tempfile::TempDir> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    // tempfile creates directories with mode 0700: only Isola's user reaches the sockets.
    tempfile::Builder::new()
        .prefix("isola-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a runtime directory in {}", base.display()))
}

/// Every ini setting workers get, in order: the user's, the store's, Isola's forced ones.
pub(crate) fn ini_entries(php: &PhpConfig, store: &StoreLink) -> Vec<String> {
    let mut out: Vec<String> = php.ini.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Isola's own values are URLs such as `tcp://host:6379?database=2&auth=p`: unquoted,
    // PHP's ini parser reads `=` and `&` as operators and keeps `tcp://host:6379?database`.
    out.extend(store.ini.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
    out.extend(FORCED_INI.iter().map(|f| f.to_string()));
    out
}

fn worker_env(php: &PhpConfig, store: &StoreLink) -> Vec<(OsString, OsString)> {
    store
        .env
        .iter()
        .map(|(k, v)| (k, v))
        .chain(php.env.iter())
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

fn php_backend(
    php: &PhpConfig,
    runtime: &Path,
    store: &StoreLink,
    engine: &Engine,
) -> Arc<dyn Backend> {
    match engine {
        Engine::Native(n) => n.clone(),
        Engine::PhpCgi { note } => Arc::new(PhpCgi {
            binary: php.binary.clone(),
            args: php
                .ini_file
                .iter()
                .flat_map(|f| [OsString::from("-c"), f.into()])
                .chain(
                    ini_entries(php, store)
                        .into_iter()
                        .flat_map(|e| [OsString::from("-d"), OsString::from(e)]),
                )
                .collect(),
            env: worker_env(php, store),
            runtime_dir: runtime.to_path_buf(),
            credentials: php.credentials,
            rlimit_files: php.rlimit_files,
            rlimit_core: php.rlimit_core,
            note: note.clone(),
        }),
    }
}

/// How a site's PHP runs. A native engine is shared by the site's web and queue pools:
/// one zygote, one opcache.
enum Engine {
    Native(Arc<Native>),
    PhpCgi { note: Option<String> },
}

/// Time the engine host gets to start PHP (module start-up, opcache, preload).
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(10);

/// `[php] backend`: native where the engine loads (auto), php-cgi otherwise, with the
/// reason logged and shown in /status.
async fn choose_engine(php: &PhpConfig, store: &StoreLink) -> anyhow::Result<Engine> {
    if php.backend == PhpBackend::PhpCgi {
        return Ok(Engine::PhpCgi { note: None });
    }
    let reason = match isola_engine::built_in() {
        Err(r) => r.to_string(),
        Ok(()) => {
            let exe = std::env::current_exe()
                .and_then(|p| p.canonicalize())
                .context("cannot find the isola binary to start the PHP engine host")?;
            let native = Native::new(NativeRecipe {
                exe,
                ini: ini_entries(php, store),
                ini_file: php.ini_file.clone(),
                env: worker_env(php, store),
                credentials: php.credentials,
                rlimit_files: php.rlimit_files,
                rlimit_core: php.rlimit_core,
            });
            match native.check(ENGINE_START_TIMEOUT).await {
                Ok(_) => return Ok(Engine::Native(Arc::new(native))),
                Err(e) => e.to_string(),
            }
        }
    };
    if php.backend == PhpBackend::Native {
        anyhow::bail!("php.backend = \"native\": {reason}");
    }
    if !php.binary.is_file() {
        anyhow::bail!(
            "no PHP backend can run: native: {reason}; php-cgi: {} not found (install libphp8.2-embed or php-cgi)",
            php.binary.display()
        );
    }
    tracing::warn!("native PHP backend unavailable, using php-cgi: {reason}");
    Ok(Engine::PhpCgi {
        note: Some(format!("native backend unavailable: {reason}")),
    })
}

/// For `isola check`: starts the native engine for `php` once and describes it.
pub(crate) async fn native_note(php: &PhpConfig, store: &StoreLink) -> anyhow::Result<String> {
    let php = PhpConfig {
        backend: PhpBackend::Native,
        ..php.clone()
    };
    match choose_engine(&php, store).await? {
        Engine::Native(n) => {
            let note = n.check(ENGINE_START_TIMEOUT).await?;
            Ok(if note.is_empty() {
                "starts".to_string()
            } else {
                note
            })
        }
        Engine::PhpCgi { .. } => anyhow::bail!("the engine did not start"),
    }
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args)?;
    crate::logging::init(&cfg.startup.log)?;
    // Before the runtime's threads exist: this edits the environment.
    let notifier = Arc::new(Notifier::from_env());
    let runtime = runtime_dir()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cfg.startup.threads {
        rt.worker_threads(n);
    }
    let rt = rt
        .enable_all()
        .thread_name("isola")
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(serve_async(args, cfg, runtime.path(), notifier));
    // Spawned connection tasks may still hold clones of the pool; give them no more time.
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(runtime);
    result
}

/// Opens the access log `cfg` asks for, if any.
fn open_access_log(cfg: &Config) -> anyhow::Result<Option<AccessLog>> {
    if !cfg.log.access {
        return Ok(None);
    }
    let log = AccessLog::open(cfg.log.access_file.as_deref(), cfg.log.access_format).with_context(
        || {
            format!(
                "log.access_file: cannot open {}",
                cfg.log
                    .access_file
                    .as_deref()
                    .unwrap_or(Path::new("stdout"))
                    .display()
            )
        },
    )?;
    Ok(Some(log))
}

/// Starts every site's pool (each in its own socket folder, so generations and sites never
/// share socket names) and builds the routers, limits and options of `cfg`; `access_log` is
/// the log to write to. If one site cannot start, the pools already started are stopped.
async fn build(
    cfg: &Config,
    runtime: &Path,
    generation: u64,
    access_log: Option<AccessLog>,
    store: &StoreLink,
) -> anyhow::Result<Settings> {
    let mut sites = Vec::with_capacity(cfg.sites.len());
    let own: Vec<(usize, &isola_config::QueueConfig)> = cfg
        .queues
        .iter()
        .filter(|q| q.own_pool)
        .map(|q| {
            Ok((
                site_of(cfg, q.site.as_deref())
                    .with_context(|| format!("queue {}: site", q.name))?,
                q,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    for (i, sc) in cfg.sites.iter().enumerate() {
        let queues: Vec<&isola_config::QueueConfig> = own
            .iter()
            .filter(|(s, _)| *s == i)
            .map(|(_, q)| *q)
            .collect();
        match build_site(
            sc,
            runtime,
            &format!("pool-{generation}-{i}"),
            store,
            &queues,
        )
        .await
        {
            Ok(s) => sites.push(s),
            Err(e) => {
                let started: Vec<Site> = sites;
                stop_pools(
                    started.iter().flat_map(|s| s.all_pools("")).map(|(_, p)| p),
                    Duration::ZERO,
                )
                .await;
                return Err(if cfg.sites.len() > 1 {
                    e.context(format!("site[{i}] ({})", sc.label()))
                } else {
                    e
                });
            }
        }
    }
    let c = &cfg.server.compression;
    let options = Options {
        compression: c
            .enabled
            .then(|| CompressionPolicy::new(&c.codings, c.min_size)),
        trusted_proxies: cfg.server.trusted_proxies.clone(),
        server_tokens: cfg.server.server_tokens,
        access_log,
    };
    Ok(Settings {
        sites,
        unknown_host: cfg.unknown_host,
        options,
    })
}

/// The index of the site a queue's `site` names, by the front's own rule
/// ([`isola_front::HostMap`]: exact name, then the longest `*.suffix`), so a queue's pool is
/// built for the site its jobs are admitted against; the default site when `None`.
fn site_of(cfg: &Config, host: Option<&str>) -> anyhow::Result<usize> {
    let Some(h) = host else {
        return Ok(match cfg.unknown_host {
            UnknownHost::Site(i) => i,
            _ => 0,
        });
    };
    isola_front::HostMap::new(cfg.sites.iter().map(|s| s.names.as_slice()))
        .find(&h.trim_end_matches('.').to_ascii_lowercase())
        .with_context(|| format!("no site is named {h:?}"))
}

async fn build_site(
    sc: &SiteConfig,
    runtime: &Path,
    dir_name: &str,
    store: &StoreLink,
    own_queues: &[&isola_config::QueueConfig],
) -> anyhow::Result<Site> {
    let dir = runtime.join(dir_name);
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pool_cfg = PoolConfig {
        settings: sc.pool.clone(),
        kill_grace: KILL_GRACE,
        label: sc.routing.docroot.clone(),
        auto_size: sc.pool.auto.as_ref().map(auto_size).transpose()?,
    };
    let engine = choose_engine(&sc.php, store).await?;
    match &engine {
        Engine::Native(n) => tracing::info!(
            docroot = %sc.routing.docroot.display(),
            "PHP backend: native: {}",
            n.status_note().unwrap_or_default()
        ),
        Engine::PhpCgi { .. } => tracing::info!(
            docroot = %sc.routing.docroot.display(),
            "PHP backend: php-cgi ({})",
            sc.php.binary.display()
        ),
    }
    let mut job_pools = Vec::new();
    for q in own_queues {
        // The site's PHP and limits, one worker per consumer, no waiting beyond them.
        let qdir = dir.join(format!("queue-{}", q.name));
        std::fs::create_dir(&qdir).with_context(|| format!("cannot create {}", qdir.display()))?;
        let cfg = PoolConfig {
            settings: PoolSettings {
                max_children: q.concurrency,
                queue_size: q.concurrency,
                pm: ProcessManager::Static,
                auto: None,
                ..sc.pool.clone()
            },
            auto_size: None,
            label: sc.routing.docroot.join(format!("queue:{}", q.name)),
            ..pool_cfg.clone()
        };
        match Pool::start(cfg, php_backend(&sc.php, &qdir, store, &engine)).await {
            Ok(p) => job_pools.push((q.name.clone(), p)),
            Err(e) => {
                stop_pools(job_pools.into_iter().map(|(_, p)| p), Duration::ZERO).await;
                return Err(e).with_context(|| {
                    format!("queue {}: php.binary {}", q.name, sc.php.binary.display())
                });
            }
        }
    }
    let worker = match start_worker_pool(sc, &pool_cfg, &engine).await {
        Ok(w) => w,
        Err(e) => {
            stop_pools(job_pools.into_iter().map(|(_, p)| p), Duration::ZERO).await;
            return Err(e);
        }
    };
    let classic_cfg = match worker {
        // The worker script takes the traffic; other scripts start workers on demand.
        Some(_) => PoolConfig {
            settings: PoolSettings {
                pm: ProcessManager::OnDemand {
                    idle_timeout: Duration::from_secs(10),
                },
                ..pool_cfg.settings
            },
            ..pool_cfg
        },
        None => pool_cfg,
    };
    let pool = match Pool::start(classic_cfg, php_backend(&sc.php, &dir, store, &engine)).await {
        Ok(p) => p,
        Err(e) => {
            stop_pools(
                job_pools
                    .into_iter()
                    .map(|(_, p)| p)
                    .chain(worker.map(|(_, p)| p)),
                Duration::ZERO,
            )
            .await;
            return Err(e).with_context(|| format!("php.binary {}", sc.php.binary.display()));
        }
    };
    let router = Router::new(sc.routing.clone());
    let sendfile = isola_front::Sendfile::new(
        &sc.sendfile
            .iter()
            .map(|d| (d.dir.clone(), d.path.clone()))
            .collect::<Vec<_>>(),
    );
    Ok(Site {
        sendfile,
        names: sc.names.clone(),
        router,
        cache_control: sc.cache_control.clone(),
        pool,
        job_pools,
        worker,
        limits: sc.limits.clone(),
        tmp_dir: runtime.to_path_buf(),
    })
}

/// `[php] worker`: a pool whose processes boot the worker script once and serve its
/// requests in a loop, forked by the site's engine host.
async fn start_worker_pool(
    sc: &SiteConfig,
    pool_cfg: &PoolConfig,
    engine: &Engine,
) -> anyhow::Result<Option<(PathBuf, Pool)>> {
    let Some((script, name)) = &sc.php.worker else {
        return Ok(None);
    };
    let Engine::Native(native) = engine else {
        anyhow::bail!("php.worker: worker mode needs the native backend, which is unavailable here (see the log line above)");
    };
    let docroot = sc.routing.docroot.to_string_lossy();
    let script_str = script.to_string_lossy();
    let max_requests = pool_cfg.settings.max_requests.to_string();
    let mut boot = vec![
        ("SCRIPT_FILENAME", &*script_str),
        ("SCRIPT_NAME", name.as_str()),
        ("DOCUMENT_ROOT", &*docroot),
    ];
    if pool_cfg.settings.max_requests > 0 {
        boot.push(("MAX_REQUESTS", &max_requests));
    }
    let backend = Arc::new(isola_engine::NativeWorker::new(native.clone(), &boot));
    let cfg = PoolConfig {
        label: PathBuf::from(format!("{} worker {name}", sc.routing.docroot.display())),
        ..pool_cfg.clone()
    };
    // A worker script that cannot boot now (an error in it, a service it needs down) does
    // not stop the server: its requests get 503 while it is retried.
    let pool = Pool::start_tolerant(cfg, backend)
        .await
        .with_context(|| format!("php.worker {}", script.display()))?;
    tracing::info!(script = %script.display(), "worker mode: {name} boots once per worker");
    Ok(Some((script.clone(), pool)))
}

/// Resolves `max_children = "auto"`: the configured budget, else what this machine or its
/// cgroup allows.
fn auto_size(a: &isola_pool::AutoSettings) -> anyhow::Result<isola_pool::AutoSize> {
    a.resolve().context(
        "pool.memory_budget: cannot read the cgroup limit or MemAvailable; set memory_budget",
    )
}

async fn serve_async(
    args: ServeArgs,
    cfg: Config,
    runtime: &Path,
    notifier: Arc<Notifier>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.startup.listen)
        .await
        .with_context(|| format!("server.listen: cannot listen on {}", cfg.startup.listen))?;
    let addr = listener.local_addr()?;
    let tls = match cfg.startup.tls_listen {
        Some(a) => {
            let tls = load_tls(&cfg)?;
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("server.tls_listen: cannot listen on {a}"))?;
            Some((l, tls))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    let tls_handle = tls.as_ref().map(|(_, t)| t.clone());
    // HTTP/3 takes the TLS listener's port on UDP (its actual port, when it asked for 0).
    let quic = match tls_addr {
        Some(a) if cfg.startup.http3 => Some(
            std::net::UdpSocket::bind(a)
                .with_context(|| format!("server.http3: cannot listen on {a} (UDP)"))?,
        ),
        _ => None,
    };
    let admin_listener = match cfg.startup.admin_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("admin.listen: cannot listen on {a}"))?,
        ),
        None => None,
    };
    let access_log = open_access_log(&cfg)?;
    let store = std::sync::Arc::new(StoreLink::start(&cfg, runtime).await?);
    // Before the listeners serve: a valid stored certificate is in place for the first
    // handshake, and orders run in the background from here on (shared with the other
    // nodes through the store, when there is one).
    let acme = match (&cfg.startup.acme, &tls_handle) {
        (Some(a), Some(t)) => Some(isola_acme::Manager::start(
            a.clone(),
            t.clone(),
            store.endpoint.clone(),
        )),
        _ => None,
    };
    let g = match build(&cfg, runtime, 0, access_log, &store).await {
        Ok(g) => g,
        Err(e) => {
            store.stop().await;
            return Err(e);
        }
    };
    let front = Front::new(g, cfg.startup.conn);
    let handle = front.handle();
    let pid_file = PidFile::create(cfg.startup.pid_file.as_deref())?;
    let signals = Signals::install()?;
    // In force before the server says it is up: an edit right after start is seen.
    let watches = crate::watch::start(&handle, &cfg.sites);

    println!(
        "Isola {} serving {} at http://{}/",
        env!("CARGO_PKG_VERSION"),
        served(&cfg),
        addr
    );
    if let Some(a) = tls_addr {
        println!("Isola TLS at https://{a}/");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node = isola_jobs::queue::node_id(cfg.startup.store.node_id.as_deref(), addr.port());
    let board = std::sync::Arc::new(isola_jobs::queue::Board::default());
    let control: Option<std::sync::Arc<dyn isola_admin::QueueControl>> =
        store.endpoint.clone().map(|ep| {
            std::sync::Arc::new(isola_jobs::queue::Control {
                ep: std::sync::Arc::new(ep),
                board: board.clone(),
            }) as std::sync::Arc<dyn isola_admin::QueueControl>
        });
    let jobs = Jobs {
        node: node.clone(),
        board: board.clone(),
        endpoint: store.endpoint.clone(),
        running: Default::default(),
    };
    if let Some(l) = admin_listener {
        let admin_addr = l.local_addr()?;
        let info = isola_admin::ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: std::time::SystemTime::now(),
            listen: addr.to_string(),
            store_url: store.public_url(),
            token: cfg.startup.admin_token.clone(),
            certificates: acme.as_ref().map(|m| {
                let status = m.status_source();
                isola_admin::CertSource(Arc::new(move || {
                    let s = status();
                    vec![isola_admin::CertFigures {
                        names: s.names,
                        issuer: s.issuer,
                        not_after: s.not_after,
                        last_renewal: s.last_renewal,
                        last_error: s.last_error,
                    }]
                }))
            }),
        };
        let mut rx = stop_rx.clone();
        let h = handle.clone();
        tokio::spawn(isola_admin::serve(
            l,
            Box::new(move || {
                h.pools()
                    .into_iter()
                    .map(|(name, pool)| isola_admin::SiteStatus {
                        name,
                        pool: pool.status(),
                    })
                    .collect()
            }),
            Some({
                let h = handle.clone();
                Box::new(move || {
                    let r = h.request_stats();
                    isola_admin::RequestFigures {
                        by_class: r.by_class,
                        shed: r.shed,
                        latency_bounds_ms: &isola_front::LATENCY_BOUNDS_MS,
                        latency: r.latency,
                        latency_us: r.latency_us,
                        waited: r.waited,
                        wait_us: r.wait_us,
                    }
                }) as isola_admin::RequestSource
            }),
            store.figures_source(),
            control,
            info,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ));
        tracing::info!(admin = %admin_addr, "admin listener: /status /metrics /health");
        println!("Isola admin at http://{admin_addr}/status");
    }
    tracing::info!(
        listen = %addr,
        tls_listen = tls_addr.map(|a| a.to_string()),
        sites = %served(&cfg),
        workers = cfg.sites.iter().map(|s| s.pool.max_children).sum::<usize>(),
        "ready"
    );

    let mut usr1 = signals.usr1;
    let h = handle.clone();
    let reopener = tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match h.access_log() {
                Some(log) => {
                    tracing::info!("SIGUSR1: reopening the access log");
                    log.reopen();
                }
                None => tracing::info!("SIGUSR1: no access log to reopen"),
            }
        }
    });
    *jobs.running.lock().await = jobs.start(&handle, &cfg);
    let reloader = tokio::spawn(reload_on_hup(
        signals.hup,
        args,
        cfg.clone(),
        handle.clone(),
        tls_handle,
        runtime.to_path_buf(),
        store.clone(),
        jobs.clone(),
        watches,
        notifier.clone(),
    ));
    notifier.ready(&format!("serving {} at http://{addr}/", served(&cfg)));
    let watchdog = notifier.watchdog_every().map(|every| {
        let n = notifier.clone();
        // A task of the runtime that serves requests: its pings stop when that runtime does.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                n.send("WATCHDOG=1");
            }
        })
    });
    let listeners = Listeners {
        plain: listener,
        tls,
        redirect_http_to_https: cfg.startup.redirect_http_to_https,
        quic,
    };
    let stop = stop_signal(signals.term, signals.int, &notifier);
    isola_front::serve_listeners(listeners, front, stop).await;
    reloader.abort();
    reopener.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Jobs first: a job still running when the pools stop would fail for no fault of its own.
    if let Some(q) = jobs.running.lock().await.take() {
        q.stop(cfg.startup.conn.shutdown_timeout).await;
    }
    tracing::info!("stopping workers");
    stop_pools(
        handle.pools().into_iter().map(|(_, p)| p),
        cfg.startup.conn.shutdown_timeout,
    )
    .await;
    drop(acme);
    drop(pid_file);
    tracing::info!("stopped");
    Ok(())
}

/// A certificate that cannot be loaded is a configuration error (exit status 2), naming
/// its key.
fn tls_config_error(e: TlsError) -> ConfigError {
    let key = match e.index {
        Some(i) => isola_config::tls_cert_key(i, e.field.as_str()),
        None => "tls.cert".to_string(),
    };
    ConfigError::Invalid(vec![format!("{key}: {e}")])
}

/// Loads the certificates of `[[tls.cert]]`.
pub(crate) fn load_tls(cfg: &Config) -> Result<Tls, ConfigError> {
    if cfg.tls_certs.is_empty() {
        // `[tls.acme]` alone: the certificate comes from the CA.
        return Tls::without_files().map_err(tls_config_error);
    }
    Tls::load(&cfg.tls_certs).map_err(tls_config_error)
}

/// SIGHUP: re-read the configuration; if it is valid, start a new pool with it, serve new
/// requests with it, and let the old pool finish its requests before its workers stop. If it
/// is not, keep running as before and say why.
#[allow(clippy::too_many_arguments)]
async fn reload_on_hup(
    mut hup: tokio::signal::unix::Signal,
    args: ServeArgs,
    mut current: Config,
    handle: FrontHandle,
    tls: Option<Tls>,
    runtime: PathBuf,
    store: std::sync::Arc<StoreLink>,
    jobs: Jobs,
    mut watches: crate::watch::Watches,
    notifier: Arc<Notifier>,
) {
    let mut generation = 0;
    // The schedules live with the configuration in force, and stop with this task.
    let tick_lock = jobs.tick_lock();
    let mut schedules =
        isola_jobs::schedule::start(&handle, &current.schedules, tick_lock.as_ref());
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        // READY=1 again when this iteration ends, whether the reload is taken or refused.
        let mut reloading = Reloading::start(&notifier, &current);
        let new = match load_config(&args) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, the running configuration stays: {e:#}");
                continue;
            }
        };
        for what in current.startup.changed(&new.startup) {
            tracing::warn!("reload: {what} changed; it takes effect at the next restart");
        }
        // Certificates are checked before anything changes: a bad one refuses the whole
        // reload, like any bad setting.
        let certs = match (&tls, new.tls_certs.is_empty()) {
            (Some(_), false) => match Certificates::load(&new.tls_certs) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(
                        "reload refused, the running configuration stays: {}",
                        tls_config_error(e)
                    );
                    continue;
                }
            },
            _ => None,
        };
        let access_log = if new.log == current.log {
            handle.access_log()
        } else {
            match open_access_log(&new) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("reload refused, the running configuration stays: {e:#}");
                    continue;
                }
            }
        };
        generation += 1;
        let g = match build(&new, &runtime, generation, access_log, &store).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("reload refused, the running configuration stays: {e:#}");
                continue;
            }
        };
        if let (Some(tls), Some(certs)) = (&tls, certs) {
            tls.install(certs);
            tracing::info!("reload: certificates re-read");
        }
        let old = handle.swap(g);
        drop(std::mem::replace(
            &mut schedules,
            isola_jobs::schedule::start(&handle, &new.schedules, tick_lock.as_ref()),
        ));
        drop(std::mem::replace(
            &mut watches,
            crate::watch::start(&handle, &new.sites),
        ));
        let mut q = jobs.running.lock().await;
        if q.as_ref().is_some_and(|q| q.config != new.queues) {
            // The old consumers finish their jobs first, so a queue never runs more jobs at
            // once than configured.
            if let Some(old) = q.take() {
                old.stop(current.startup.conn.shutdown_timeout).await;
            }
            *q = jobs.start(&handle, &new);
            tracing::info!("reload: queues restarted");
        }
        drop(q);
        let grace = current.startup.conn.shutdown_timeout;
        tokio::spawn(stop_pools(old, grace));
        tracing::info!(
            sites = %served(&new),
            workers = new.sites.iter().map(|s| s.pool.max_children).sum::<usize>(),
            "reloaded: new requests use the new configuration"
        );
        reloading.status = format!("serving {} (reloaded)", served(&new));
        current = new;
    }
}

/// A reload under way, as the service manager sees it: `RELOADING=1` when it starts,
/// `READY=1` with `status` when it is dropped.
struct Reloading<'a> {
    notifier: &'a Notifier,
    status: String,
}

impl<'a> Reloading<'a> {
    /// The status stays "the running configuration stays" unless the reload is taken.
    fn start(notifier: &'a Notifier, current: &Config) -> Self {
        notifier.reloading();
        Reloading {
            notifier,
            status: format!("serving {} (reload refused, see the log)", served(current)),
        }
    }
}

impl Drop for Reloading<'_> {
    fn drop(&mut self) {
        self.notifier.ready(&self.status);
    }
}

/// The queue consumers in force, and what starting new ones on reload needs.
#[derive(Clone)]
struct Jobs {
    node: String,
    board: std::sync::Arc<isola_jobs::queue::Board>,
    endpoint: Option<isola_store_client::Endpoint>,
    running: std::sync::Arc<tokio::sync::Mutex<Option<isola_jobs::queue::Queues>>>,
}

impl Jobs {
    fn tick_lock(&self) -> Option<isola_jobs::schedule::TickLock> {
        Some(isola_jobs::schedule::TickLock {
            ep: self.endpoint.clone()?,
            node: self.node.clone(),
        })
    }

    fn start(&self, front: &FrontHandle, cfg: &Config) -> Option<isola_jobs::queue::Queues> {
        let ep = self.endpoint.clone()?;
        Some(isola_jobs::queue::start(
            front,
            ep,
            &self.node,
            &cfg.queues,
            &self.board,
        ))
    }
}

/// What the ready line and logs name: the sites' labels (a nameless site's is its docroot).
fn served(cfg: &Config) -> String {
    cfg.sites
        .iter()
        .map(SiteConfig::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stops pools together, each letting its requests finish within `grace`.
async fn stop_pools(pools: impl IntoIterator<Item = Pool>, grace: Duration) {
    let stops: Vec<_> = pools
        .into_iter()
        .map(|p| async move { p.shutdown(grace).await })
        .collect();
    futures_util::future::join_all(stops).await;
}

/// The server's pid in a file, for `isola reload` and init systems; removed on exit.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(p) = path else {
            return Ok(PidFile(None));
        };
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("server.pid_file: cannot write {}", p.display()))?;
        Ok(PidFile(Some(p.to_path_buf())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `isola reload`: asks the server whose pid is in `pid_file` to reload (SIGHUP).
pub fn reload(pid_file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(pid_file).with_context(|| {
        format!(
            "cannot read {} (is the server running with --pid-file?)",
            pid_file.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a pid", pid_file.display()))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .with_context(|| format!("cannot signal pid {pid} from {}", pid_file.display()))?;
    println!("reload requested (pid {pid})");
    Ok(())
}

/// The server's signal handlers. Creating them installs them, so this happens before the
/// ready line: a signal sent as soon as the server says it is ready is handled, never fatal.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            usr1: signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?,
        })
    }
}

/// Resolves on SIGTERM or SIGINT. (SIGHUP is the reload task's.)
async fn stop_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    notifier: &Notifier,
) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping gracefully"),
        _ = int.recv() => tracing::info!("SIGINT: stopping gracefully"),
    }
    notifier.stopping();
}
