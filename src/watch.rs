//! Worker mode's edit watch: the promise of PHP ("edit a file, see it on the next request")
//! kept for scripts that boot once. Each site with a worker script and `worker_watch` on has
//! its document root watched (inotify, recursively); a changed PHP file or configuration
//! file replaces that site's worker processes, idle ones at once and busy ones after their
//! request, so the next requests are served by workers that booted the new code.
//!
//! Never: touches classic pools (they read scripts afresh on every request), fails a request,
//! or recycles more than once per burst of changes (they are gathered for a short while).
use isola_config::SiteConfig;
use isola_front::FrontHandle;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Changes arriving this close together (a deploy, an editor's save-and-rename) are one.
const GATHER: Duration = Duration::from_millis(150);

/// What a worker script may have loaded: FrankenPHP's default watch set, plus PHP's other
/// source extensions.
const WATCHED: [&str; 8] = ["php", "phtml", "inc", "env", "yaml", "yml", "twig", "json"];

/// The watches in force; dropping them stops watching.
pub struct Watches {
    _watchers: Vec<notify::RecommendedWatcher>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Watches the document root of every site of `sites` in worker mode with `worker_watch`.
/// A root that cannot be watched (inotify limits) is logged and left unwatched.
pub fn start(front: &FrontHandle, sites: &[SiteConfig]) -> Watches {
    let mut watches = Watches {
        _watchers: Vec::new(),
        tasks: Vec::new(),
    };
    for site in sites {
        if site.php.worker.is_none() || !site.php.worker_watch {
            continue;
        }
        let root = site.routing.docroot.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            if matches!(ev.kind, EventKind::Access(_) | EventKind::Other) {
                return;
            }
            for p in ev.paths.into_iter().filter(|p| watched(p)) {
                let _ = tx.send(p);
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(docroot = %root.display(), "worker mode: cannot watch for edits: {e}");
                continue;
            }
        };
        if let Err(e) = watcher.watch(&root, RecursiveMode::Recursive) {
            tracing::warn!(
                docroot = %root.display(),
                "worker mode: cannot watch for edits ({e}); raise fs.inotify.max_user_watches, or restart workers with `isola reload`"
            );
            continue;
        }
        tracing::info!(docroot = %root.display(), "worker mode: watching for edits");
        watches._watchers.push(watcher);
        watches
            .tasks
            .push(tokio::spawn(replace_on_change(front.clone(), root, rx)));
    }
    watches
}

fn watched(p: &Path) -> bool {
    let hidden = p.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with(".git"))
    });
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !hidden && (WATCHED.contains(&ext) || name == ".env" || name.starts_with(".env."))
}

async fn replace_on_change(
    front: FrontHandle,
    root: PathBuf,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(GATHER).await;
        // One save is several events (create, write, close, rename): count files.
        let mut others = std::collections::BTreeSet::new();
        while let Ok(p) = rx.try_recv() {
            if p != first {
                others.insert(p);
            }
        }
        let more = others.len();
        let shown = first
            .strip_prefix(&root)
            .unwrap_or(&first)
            .display()
            .to_string();
        let why = match more {
            0 => format!("{shown} changed"),
            n => format!("{shown} and {n} more changed"),
        };
        if front.recycle_workers(&root, &why) > 0 {
            tracing::info!(docroot = %root.display(), "worker mode: {why}; replacing the workers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::watched;
    use std::path::Path;

    #[test]
    fn code_and_config_are_watched_not_the_rest() {
        for p in [
            "/s/index.php",
            "/s/src/A.php",
            "/s/.env",
            "/s/.env.local",
            "/s/config/app.yaml",
            "/s/composer.json",
        ] {
            assert!(watched(Path::new(p)), "{p}");
        }
        for p in [
            "/s/style.css",
            "/s/uploads/a.jpg",
            "/s/.git/index",
            "/s/.git/x.php",
            "/s/var/log.txt",
        ] {
            assert!(!watched(Path::new(p)), "{p}");
        }
    }
}
