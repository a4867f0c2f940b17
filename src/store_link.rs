//! `[store]` at run time: starts the embedded store (or points at a real Redis) and tells
//! every PHP worker where it is (`ISOLA_STORE`, and `ISOLA_DB` for Isola's own database)
//! and, with sessions on, makes PHP keep its sessions there (`session.save_handler = redis`).
use anyhow::Context;
use isola_config::{Config, StoreBackend};
use std::path::{Path, PathBuf};
use tokio::task::JoinHandle;

/// What workers need to reach the store, and the embedded store while it runs.
pub struct StoreLink {
    /// Worker environment additions.
    pub env: Vec<(String, String)>,
    /// php.ini additions (`-d`), after the user's own.
    pub ini: Vec<(String, String)>,
    running: std::sync::Mutex<Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>>,
    /// Where Isola itself reaches the store (queues, schedule locks), in `store.isola_db`;
    /// `None` when off.
    pub endpoint: Option<isola_store_client::Endpoint>,
    /// The embedded store's figures, sampled every second.
    figures: std::sync::Arc<std::sync::Mutex<Option<isola_admin::StoreFigures>>>,
}

impl StoreLink {
    /// No store: workers get nothing added.
    pub fn none() -> StoreLink {
        StoreLink {
            env: Vec::new(),
            ini: Vec::new(),
            running: std::sync::Mutex::new(None),
            endpoint: None,
            figures: Default::default(),
        }
    }

    /// Starts what `cfg.startup.store` asks for; `runtime` holds the embedded store's socket.
    pub async fn start(cfg: &Config, runtime: &Path) -> anyhow::Result<StoreLink> {
        let figures: std::sync::Arc<std::sync::Mutex<Option<isola_admin::StoreFigures>>> =
            Default::default();
        let (url, session_path, running) = match &cfg.startup.store.backend {
            StoreBackend::Off => return Ok(StoreLink::none()),
            StoreBackend::External { url } => {
                let path = isola_config::parse_store_url(url)
                    .context("store.url: not a redis:// or unix:// URL")?;
                (url.clone(), path, None)
            }
            StoreBackend::Embedded {
                listen,
                requirepass,
                data,
            } => {
                let socket = runtime.join("store.sock");
                let dir = usable_dir(data);
                let store = isola_store::Store::bind(isola_store::StoreConfig {
                    unix_socket: Some(socket.clone()),
                    tcp: *listen,
                    requirepass: requirepass.clone(),
                    aof: dir.as_deref().map(|dir| aof_config(dir, data)),
                    maxmemory: usize::try_from(data.maxmemory).unwrap_or(usize::MAX),
                    maxmemory_policy: isola_store::engine::MaxMemoryPolicy::parse(
                        &data.maxmemory_policy,
                    )
                    .unwrap_or_default(),
                    ..isola_store::StoreConfig::default()
                })
                .await
                .context("store: cannot start the embedded store")?;
                if let Some(dir) = &dir {
                    tracing::info!(dir = %dir.display(), appendonly = data.appendonly, "embedded store data directory");
                }
                share_with_workers(cfg, runtime, &socket)?;
                if let Some(a) = store.tcp_addr() {
                    tracing::info!(listen = %a, "embedded store also on TCP");
                }
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let handle = store.handle();
                let sink = figures.clone();
                // Sampled off the request path: /status and /metrics read the last sample.
                tokio::spawn(async move {
                    while let Ok(s) = handle.stats().await {
                        let f = isola_admin::StoreFigures {
                            keys: s.keys.iter().sum::<usize>() as u64,
                            expires: s.expires.iter().sum::<usize>() as u64,
                            used_memory: s.used_memory as u64,
                            commands_processed: s.commands_processed,
                            expired_keys: s.expired_keys,
                            connected_clients: s.connected_clients as u64,
                            evicted_keys: s.evicted_keys,
                            maxmemory: s.maxmemory as u64,
                            aof_enabled: s.aof_enabled,
                            aof_last_write_ok: s.aof_last_write_ok,
                            aof_rewrite_in_progress: s.aof_rewrite_in_progress,
                            aof_rewrites: s.aof_rewrites,
                            aof_size: s.aof_size,
                        };
                        *sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                });
                let task = tokio::spawn(async move {
                    if let Err(e) = store
                        .run(async move {
                            let _ = rx.await;
                        })
                        .await
                    {
                        tracing::error!("embedded store: {e}");
                    }
                });
                let url = format!("unix://{}", socket.display());
                let session = match requirepass {
                    Some(p) => format!("{url}?auth={p}"),
                    None => url.clone(),
                };
                (url, session, Some((tx, task)))
            }
        };
        let mut env = vec![
            ("ISOLA_STORE".to_string(), url.clone()),
            (
                "ISOLA_DB".to_string(),
                cfg.startup.store.isola_db.to_string(),
            ),
        ];
        if let StoreBackend::Embedded {
            requirepass: Some(p),
            ..
        } = &cfg.startup.store.backend
        {
            env.push(("ISOLA_STORE_PASSWORD".to_string(), p.clone()));
        }
        let mut ini = Vec::new();
        if sessions_on(cfg)? {
            let user_set = cfg.sites.iter().any(|s| {
                s.php.ini.contains_key("session.save_handler")
                    || s.php.ini.contains_key("session.save_path")
            });
            if user_set {
                tracing::info!("store: sessions left to the session.* settings of [php] ini");
            } else {
                ini.push(("session.save_handler".to_string(), "redis".to_string()));
                ini.push(("session.save_path".to_string(), session_path));
            }
        }
        tracing::info!(store = %url, sessions = !ini.is_empty(), "store ready");
        let own_url = match &cfg.startup.store.backend {
            StoreBackend::Embedded {
                requirepass: Some(p),
                ..
            } => format!("{url}?password={p}"),
            _ => url.clone(),
        };
        let mut endpoint = isola_store_client::Endpoint::parse(&own_url)
            .with_context(|| format!("store: {url}"))?;
        if endpoint.db == cfg.startup.store.isola_db {
            tracing::warn!(
                db = endpoint.db,
                "store: the application's database is also store.isola_db; its KEYS, SCAN and FLUSHDB see Isola's queues and locks"
            );
        }
        // Isola's own keys live apart from what PHP sees by default (the URL's database).
        endpoint.db = cfg.startup.store.isola_db;
        Ok(StoreLink {
            env,
            ini,
            endpoint: Some(endpoint),
            running: std::sync::Mutex::new(running),
            figures,
        })
    }

    /// The store's URL as workers get it, a password in it hidden.
    pub fn public_url(&self) -> Option<String> {
        let url = self
            .env
            .iter()
            .find(|(k, _)| k == "ISOLA_STORE")
            .map(|(_, v)| v.clone())?;
        Some(match (url.strip_prefix("redis://"), url.rfind('@')) {
            (Some(_), Some(at)) => format!("redis://***{}", &url[at..]),
            _ => url,
        })
    }

    /// The embedded store's last figures, for the admin listener (`None` without one).
    pub fn figures_source(&self) -> Option<isola_admin::StoreSource> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        let f = self.figures.clone();
        running.then(|| {
            Box::new(move || f.lock().unwrap_or_else(|e| e.into_inner()).clone())
                as isola_admin::StoreSource
        })
    }

    /// Stops the embedded store (after the workers, which may still be using it).
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((tx, task)) = running {
            let _ = tx.send(());
            let _ = task.await;
        }
    }
}

/// The data directory the embedded store will use. A directory Isola chose by itself that
/// this user cannot write (`sudo -u www-data isola serve` keeps root's `HOME`) must not stop
/// a server that was given no store settings at all: it runs without persistence and says
/// so. A directory written in the config is used as given, and failing it stops the start.
fn usable_dir(data: &isola_config::EmbeddedStore) -> Option<PathBuf> {
    let dir = data.dir.clone()?;
    if !data.dir_is_default {
        return Some(dir);
    }
    let writable = std::fs::create_dir_all(&dir).and_then(|()| {
        nix::unistd::access(
            &dir,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .map_err(std::io::Error::from)
    });
    match writable {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(
                dir = %dir.display(),
                "embedded store: the default data directory is not usable ({e}); keeping data in memory only, set [store] dir to persist it"
            );
            None
        }
    }
}

/// The embedded store's log settings from `[store]`.
fn aof_config(dir: &Path, data: &isola_config::EmbeddedStore) -> isola_store::aof::AofConfig {
    use isola_config::AppendFsync;
    use isola_store::aof::Fsync;
    isola_store::aof::AofConfig {
        dir: dir.to_path_buf(),
        enabled: data.appendonly,
        fsync: match data.appendfsync {
            AppendFsync::Always => Fsync::Always,
            AppendFsync::EverySec => Fsync::EverySec,
            AppendFsync::No => Fsync::No,
        },
        rewrite_percentage: data.auto_aof_rewrite_percentage,
        rewrite_min_size: data.auto_aof_rewrite_min_size,
        truncate_corrupt: data.aof_load_truncate,
    }
}

/// Sessions in the store: as configured, else when PHP has the redis extension.
fn sessions_on(cfg: &Config) -> anyhow::Result<bool> {
    let binary = cfg
        .sites
        .first()
        .map(|s| s.php.binary.clone())
        .unwrap_or_else(|| PathBuf::from("php-cgi"));
    let has_redis = || -> bool {
        std::process::Command::new(&binary)
            .arg("-m")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim().eq_ignore_ascii_case("redis"))
            })
            .unwrap_or(false)
    };
    match cfg.startup.store.sessions {
        Some(false) => Ok(false),
        Some(true) if !has_redis() => Err(anyhow::anyhow!(
            "store.sessions: PHP ({}) has no redis extension; install it (Debian/Ubuntu: apt-get install php-redis) or set sessions = false",
            binary.display()
        )),
        Some(true) => Ok(true),
        None => Ok(has_redis()),
    }
}

/// Workers that run as another user reach the socket through their group: the runtime
/// folder becomes traversable (not listable) and the socket group-writable.
fn share_with_workers(cfg: &Config, runtime: &Path, socket: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let gids: Vec<u32> = cfg
        .sites
        .iter()
        .filter_map(|s| s.php.credentials.map(|(_, gid)| gid))
        .collect();
    let Some(&gid) = gids.first() else {
        return Ok(());
    };
    if gids.iter().any(|&g| g != gid) {
        tracing::warn!("store: sites run PHP with different groups; the store socket is shared with the first one's");
    }
    std::fs::set_permissions(runtime, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("cannot open {} to the workers", runtime.display()))?;
    std::os::unix::fs::chown(socket, None, Some(gid))
        .with_context(|| format!("cannot give {} to group {gid}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", socket.display()))?;
    Ok(())
}
