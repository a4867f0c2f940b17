//! The append-only log on disk: directory lock, manifest, replay at start, the writer thread
//! and the files of log compaction.
//!
//! # Files
//! The directory holds `store.lock` (an exclusive `flock` held while the store runs, so two
//! processes never share the files), `appendonly.manifest` and the log files it lists, in
//! replay order: at most one base file (`appendonly.N.base.aof`, a snapshot written by
//! compaction) and one or more increment files (`appendonly.N.incr.aof`, commands appended
//! as they run). Every file is plain RESP: each record is a command, replayable by any
//! Redis-protocol tool. The manifest is replaced atomically (write, fsync, rename, fsync
//! the directory), so a crash at any moment leaves a manifest naming complete files.
//!
//! # Order
//! The executor produces records in execution order ([`crate::propagate`]) and, after each
//! batch, hands them to one writer thread through a bounded channel; that thread is the only
//! one writing to the increment file and the manifest. With `appendfsync always` the
//! batch's replies travel with its records and are sent by the writer after the fsync that
//! covers them (one fsync per group of batches: group commit); any reply, read or write,
//! produced while records are still unsynced waits behind them, so no client sees data that
//! could be lost. With `everysec` the writer fsyncs at most a second after a write, and with
//! `no` it leaves that to the kernel; replies go out at once.
//!
//! # Back-pressure
//! The executor never waits for the disk while the writer keeps up. When the channel is
//! full, records accumulate in the executor; once they are more than 2 s old or 64 MiB
//! large, the executor waits until the writer accepts them, which delays every command
//! (Redis delays writes the same way when its fsync falls 2 s behind).
//!
//! # Compaction
//! A rewrite starts a new increment file (the writer switches files and lists the new one in
//! the manifest at once), then writes a snapshot of the keyspace as it was at that instant
//! into a temporary base file on its own thread. The snapshot is taken in bounded steps
//! between batches ([`crate::db::Db::snapshot_begin`]): values changed after the switch are
//! copied before their first change, so the snapshot is exact although commands keep
//! running. Invariant: base file + every increment file listed after it replay to the
//! current keyspace. When the snapshot is complete and fsynced, the writer renames it, lists
//! `[new base, current increment]` in the manifest and deletes the older files.
//!
//! # Damage
//! A record cut short at the end of the last file (a crash mid-write) is dropped: the file
//! is truncated to the last complete record and a warning names the offset and the bytes
//! dropped. Anything else that is not a valid record stops the start with an error naming
//! the file and offset, unless the configuration allows truncating there (then the file is
//! cut at the damage, with a warning, and later files still replay).
//!
//! This module never interprets commands, and its disk I/O never runs on the executor's
//! task: replay runs on a blocking thread before the store accepts connections, everything
//! else on the writer and snapshot threads.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Engine, LogHealth};
use crate::propagate::{parse, Parsed};
use crate::StoreError;

const MANIFEST: &str = "appendonly.manifest";
const LOCK: &str = "store.lock";
/// Jobs the writer's channel holds.
const WRITER_QUEUE: usize = 64;
/// Records older than this in the executor make it wait for the writer.
const MAX_LAG: Duration = Duration::from_secs(2);
/// Records larger than this in the executor make it wait for the writer.
const MAX_BACKLOG: usize = 64 * 1024 * 1024;
/// Bytes read at a time during replay.
const READ_CHUNK: usize = 1024 * 1024;

/// When the log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Before any reply that depends on the record goes out (group commit per batch).
    Always,
    /// At most one second after the write (default).
    #[default]
    EverySec,
    /// When the kernel decides.
    No,
}

/// Durability settings.
#[derive(Debug, Clone)]
pub struct AofConfig {
    /// Directory holding the log files and the lock.
    pub dir: PathBuf,
    /// Keep the log (`false`: the directory is only locked).
    pub enabled: bool,
    /// fsync policy.
    pub fsync: Fsync,
    /// Compact when the log has grown by this percentage since the last compaction (0: never).
    pub rewrite_percentage: u64,
    /// ... and is at least this large.
    pub rewrite_min_size: u64,
    /// On damage other than a cut-short last record, truncate there instead of refusing to
    /// start.
    pub truncate_corrupt: bool,
}

impl AofConfig {
    /// Defaults for `dir`: log on, `everysec`, compaction at 100 % growth and 64 MiB.
    pub fn new(dir: PathBuf) -> Self {
        AofConfig {
            dir,
            enabled: true,
            fsync: Fsync::EverySec,
            rewrite_percentage: 100,
            rewrite_min_size: 64 * 1024 * 1024,
            truncate_corrupt: false,
        }
    }
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The exclusive lock on a data directory, held while the store runs.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed (mode 0700) and locks it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                dir: dir.to_path_buf(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
        }
    }
}

/// The list of log files, in replay order.
#[derive(Debug, Clone, Default, PartialEq)]
struct Manifest {
    base: Option<u64>,
    incrs: Vec<u64>,
}

fn base_name(seq: u64) -> String {
    format!("appendonly.{seq}.base.aof")
}

fn incr_name(seq: u64) -> String {
    format!("appendonly.{seq}.incr.aof")
}

impl Manifest {
    fn read(dir: &Path) -> Result<Option<Manifest>, StoreError> {
        let path = dir.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || StoreError::Corrupt {
                file: path.clone(),
                offset: n as u64 + 1,
                reason: format!("manifest line {}: {line:?}", n + 1),
            };
            let (kind, name) = line.split_once(' ').ok_or_else(bad)?;
            let seq = |suffix: &str| -> Option<u64> {
                name.strip_prefix("appendonly.")?
                    .strip_suffix(suffix)?
                    .parse()
                    .ok()
            };
            match kind {
                "base" if m.base.is_none() && m.incrs.is_empty() => {
                    m.base = Some(seq(".base.aof").ok_or_else(bad)?);
                }
                "incr" => m.incrs.push(seq(".incr.aof").ok_or_else(bad)?),
                _ => return Err(bad()),
            }
        }
        Ok(Some(m))
    }

    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut text = String::from("# isola store: log files in replay order\n");
        if let Some(b) = self.base {
            text.push_str(&format!("base {}\n", base_name(b)));
        }
        for i in &self.incrs {
            text.push_str(&format!("incr {}\n", incr_name(*i)));
        }
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let mut f = create_private(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(MANIFEST))?;
        sync_dir(dir)
    }

    fn files(&self) -> Vec<String> {
        self.base
            .map(base_name)
            .into_iter()
            .chain(self.incrs.iter().map(|i| incr_name(*i)))
            .collect()
    }

    fn next_seq(&self) -> u64 {
        self.incrs
            .iter()
            .copied()
            .chain(self.base)
            .max()
            .unwrap_or(0)
            + 1
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What replay found.
#[derive(Debug)]
pub struct Loaded {
    manifest: Manifest,
    /// Size of the base file.
    pub base_size: u64,
    /// Size of the increment files.
    pub incr_size: u64,
    /// Commands replayed.
    pub commands: u64,
}

/// Replays the log in `cfg.dir` into `engine` (which must be fresh), repairing a cut-short
/// tail, and makes sure an increment file exists for new records.
pub fn load(cfg: &AofConfig, engine: &mut Engine) -> Result<Loaded, StoreError> {
    let dir = &cfg.dir;
    // Leftovers of a compaction that did not finish.
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("appendonly.") && name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let mut manifest = Manifest::read(dir)?.unwrap_or_default();
    let files = manifest.files();
    let mut loaded = Loaded {
        manifest: manifest.clone(),
        base_size: 0,
        incr_size: 0,
        commands: 0,
    };
    engine.set_loading(true);
    let mut db = 0usize;
    for (i, name) in files.iter().enumerate() {
        let path = dir.join(name);
        let last = i + 1 == files.len();
        let size = replay_file(
            &path,
            last,
            cfg.truncate_corrupt,
            engine,
            &mut db,
            &mut loaded,
        )?;
        if i == 0 && manifest.base.is_some() {
            loaded.base_size = size;
        } else {
            loaded.incr_size += size;
        }
        // Each file starts in database 0, as it was written.
        db = 0;
    }
    if manifest.incrs.is_empty() {
        let seq = manifest.next_seq();
        let path = dir.join(incr_name(seq));
        create_private(&path).map_err(|e| io_err(&path, e))?;
        manifest.incrs.push(seq);
        manifest
            .write(dir)
            .map_err(|e| io_err(&dir.join(MANIFEST), e))?;
    }
    loaded.manifest = manifest;
    Ok(loaded)
}

/// Replays one file; returns its size after any repair.
fn replay_file(
    path: &Path,
    last: bool,
    truncate_corrupt: bool,
    engine: &mut Engine,
    db: &mut usize,
    loaded: &mut Loaded,
) -> Result<u64, StoreError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && last => {
            // Listed but never written: a crash right after a switch.
            create_private(path).map_err(|e| io_err(path, e))?;
            return Ok(0);
        }
        Err(e) => return Err(io_err(path, e)),
    };
    let total = file.metadata().map_err(|e| io_err(path, e))?.len();
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0usize; // first unparsed byte in buf
    let mut offset = 0u64; // file offset of buf[start]
    let mut eof = false;
    // A transaction is applied at its EXEC, so a cut-short one is dropped whole.
    let mut tx: Option<(u64, Vec<Vec<bytes::Bytes>>)> = None;
    let mut replay_errors = 0u64;
    let mut chunk = vec![0u8; READ_CHUNK];
    let damage: Option<(u64, String, bool)> = loop {
        match parse(&buf[start..]) {
            Parsed::Command(args, used) => {
                let at = offset;
                start += used;
                offset += used as u64;
                let name = args[0].to_ascii_lowercase();
                match (name.as_slice(), tx.as_mut()) {
                    (b"multi", None) => tx = Some((at, Vec::new())),
                    (b"multi", Some(_)) => {
                        break Some((at, "MULTI inside MULTI".into(), false));
                    }
                    (b"exec", Some(_)) => {
                        let Some((multi_at, cmds)) = tx.take() else {
                            continue;
                        };
                        let failed = cmds
                            .iter()
                            .find_map(|c| apply(engine, db, c, at, &mut replay_errors).err());
                        if let Some(reason) = failed {
                            break Some((multi_at, reason, false));
                        }
                    }
                    (b"exec", None) => break Some((at, "EXEC without MULTI".into(), false)),
                    (_, Some((_, cmds))) => cmds.push(args),
                    (_, None) => {
                        if let Err(reason) = apply(engine, db, &args, at, &mut replay_errors) {
                            break Some((at, reason, false));
                        }
                    }
                }
                loaded.commands += 1;
            }
            Parsed::Incomplete if !eof => {
                buf.drain(..start);
                start = 0;
                let n = file.read(&mut chunk).map_err(|e| io_err(path, e))?;
                if n == 0 {
                    eof = true;
                } else {
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
            Parsed::Incomplete => match tx.take() {
                Some((at, _)) => break Some((at, "transaction without EXEC".into(), true)),
                None if offset < total => {
                    break Some((offset, "record cut short".into(), true));
                }
                None => break None,
            },
            Parsed::Invalid(reason) => break Some((offset, reason.into(), false)),
        }
    };
    if replay_errors > 0 {
        tracing::warn!(
            file = %path.display(),
            errors = replay_errors,
            "store: some logged commands failed on replay"
        );
    }
    let Some((at, reason, torn)) = damage else {
        return Ok(total);
    };
    let at = match &tx {
        Some((multi_at, _)) => (*multi_at).min(at),
        None => at,
    };
    if !(truncate_corrupt || (torn && last)) {
        return Err(StoreError::Corrupt {
            file: path.to_path_buf(),
            offset: at,
            reason,
        });
    }
    tracing::warn!(
        file = %path.display(),
        offset = at,
        dropped = total - at,
        reason = %reason,
        "store: log damaged; truncated to the last complete record"
    );
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.set_len(at).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))?;
    Ok(at)
}

/// Applies one replayed command; an unknown command is damage, a failing one is counted.
fn apply(
    engine: &mut Engine,
    db: &mut usize,
    args: &[bytes::Bytes],
    at: u64,
    errors: &mut u64,
) -> Result<(), String> {
    match engine.replay(db, args) {
        Ok(()) => Ok(()),
        Err(e) if e.starts_with("unknown command") || e.starts_with("wrong number") => {
            Err(format!("{e} at offset {at}"))
        }
        Err(_) => {
            *errors += 1;
            Ok(())
        }
    }
}

/// Work for the writer thread.
pub enum Job {
    /// Append these records; then (after the fsync, with `always`) run the callbacks.
    Data(Vec<u8>, Vec<Callback>),
    /// Start increment file `seq` and list it in the manifest.
    Switch(u64),
    /// Make the finished snapshot `seq` the base: rename, manifest, delete older files; then
    /// report whether it worked.
    Install(u64, tokio::sync::oneshot::Sender<bool>),
    /// Flush, fsync and stop.
    Stop,
}

/// Something to do once earlier records are durable (sending replies).
pub type Callback = Box<dyn FnOnce() + Send>;

/// The executor's side of the writer thread.
pub struct Writer {
    tx: SyncSender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
    fsync: Fsync,
    /// Jobs sent and not yet done.
    inflight: Arc<AtomicUsize>,
    backlog: Vec<u8>,
    backlog_cbs: Vec<Callback>,
    backlog_since: Option<Instant>,
    /// Bytes in the log files (base + increments), for the compaction trigger.
    pub size: u64,
    /// Size of the base file after the last compaction.
    pub base_size: u64,
    next_seq: u64,
    cfg: AofConfig,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("fsync", &self.fsync)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread, appending to the last increment file of `loaded`.
    pub fn start(
        cfg: &AofConfig,
        loaded: &Loaded,
        health: Arc<LogHealth>,
    ) -> Result<Writer, StoreError> {
        let seq = *loaded.manifest.incrs.last().ok_or_else(|| StoreError::Io {
            path: cfg.dir.join(MANIFEST),
            source: std::io::Error::other("no increment file"),
        })?;
        let path = cfg.dir.join(incr_name(seq));
        let file = open_append(&path).map_err(|e| io_err(&path, e))?;
        let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
        let (tx, rx) = std::sync::mpsc::sync_channel(WRITER_QUEUE);
        let inflight = Arc::new(AtomicUsize::new(0));
        let mut state = WriterThread {
            dir: cfg.dir.clone(),
            manifest: loaded.manifest.clone(),
            file,
            len,
            fsync: cfg.fsync,
            health,
            inflight: inflight.clone(),
            unsynced: false,
            last_sync: Instant::now(),
            retry: Vec::new(),
            retry_cbs: Vec::new(),
            owed: 0,
        };
        let thread = std::thread::Builder::new()
            .name("isola-store-aof".into())
            .spawn(move || state.run(rx))
            .map_err(|e| io_err(&cfg.dir, e))?;
        Ok(Writer {
            tx,
            thread: Some(thread),
            fsync: cfg.fsync,
            inflight,
            backlog: Vec::new(),
            backlog_cbs: Vec::new(),
            backlog_since: None,
            size: loaded.base_size + loaded.incr_size,
            base_size: loaded.base_size,
            next_seq: loaded.manifest.next_seq(),
            cfg: cfg.clone(),
        })
    }

    /// Hands over a batch's records; `replies` are sent now, or after the fsync that covers
    /// every record so far with `always`. Waits only when the writer is far behind.
    pub async fn submit(&mut self, data: Vec<u8>, replies: Vec<Callback>) {
        self.size += data.len() as u64;
        let deferred = self.fsync == Fsync::Always
            && (!data.is_empty()
                || !self.backlog.is_empty()
                || !self.backlog_cbs.is_empty()
                || self.inflight.load(Ordering::Acquire) > 0);
        if !data.is_empty() {
            if self.backlog.is_empty() {
                self.backlog = data;
            } else {
                self.backlog.extend_from_slice(&data);
            }
        }
        if deferred {
            self.backlog_cbs.extend(replies);
            self.flush().await;
        } else {
            // The records reach the writer before the replies leave (unless it is behind).
            self.flush().await;
            for r in replies {
                r();
            }
        }
    }

    /// True while records or replies wait in the executor (retry soon).
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty() || !self.backlog_cbs.is_empty()
    }

    /// Tries to pass the backlog to the writer; waits when it is too old or too large.
    pub async fn flush(&mut self) {
        if !self.has_backlog() {
            return;
        }
        let since = *self.backlog_since.get_or_insert_with(Instant::now);
        let job = Job::Data(
            std::mem::take(&mut self.backlog),
            std::mem::take(&mut self.backlog_cbs),
        );
        self.inflight.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(job) {
            Ok(()) => self.backlog_since = None,
            Err(TrySendError::Full(Job::Data(d, c))) => {
                self.inflight.fetch_sub(1, Ordering::AcqRel);
                if since.elapsed() < MAX_LAG && d.len() < MAX_BACKLOG {
                    self.backlog = d;
                    self.backlog_cbs = c;
                    return;
                }
                tracing::warn!(
                    bytes = d.len(),
                    "store: the append-only log is more than 2 s behind; commands wait for the disk"
                );
                self.inflight.fetch_add(1, Ordering::AcqRel);
                self.send(Job::Data(d, c)).await;
                self.backlog_since = None;
            }
            Err(_) => {
                self.inflight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Sends a job, waiting (off the runtime's threads) for room.
    fn send(&self, job: Job) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = self.tx.clone();
        async move {
            let _ = tokio::task::spawn_blocking(move || tx.send(job)).await;
        }
    }

    /// True when the log has grown enough to compact.
    pub fn wants_rewrite(&self) -> bool {
        let c = &self.cfg;
        c.rewrite_percentage > 0
            && self.size >= c.rewrite_min_size
            && self.size >= self.base_size.saturating_mul(100 + c.rewrite_percentage) / 100
    }

    /// Starts a compaction: after the records so far, new records go to a new increment
    /// file. Returns the thread writing the snapshot.
    pub async fn begin_rewrite(&mut self) -> Result<Rewrite, StoreError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tmp = self.cfg.dir.join(format!("{}.tmp", base_name(seq)));
        self.flush_all().await;
        self.send(Job::Switch(seq)).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let path = tmp.clone();
        std::thread::Builder::new()
            .name("isola-store-rewrite".into())
            .spawn(move || {
                let r = create_private(&path).and_then(|f| write_snapshot(f, rx));
                let _ = done_tx.send(r);
            })
            .map_err(|e| io_err(&tmp, e))?;
        Ok(Rewrite {
            seq,
            tx: Some(tx),
            done: done_rx,
            tmp,
        })
    }

    /// Installs a finished snapshot of `size` bytes as the new base; the receiver says when
    /// the files are in place (and whether they are).
    pub async fn finish_rewrite(
        &mut self,
        rw: &Rewrite,
        size: u64,
    ) -> tokio::sync::oneshot::Receiver<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flush_all().await;
        self.send(Job::Install(rw.seq, tx)).await;
        self.base_size = size;
        // The increment file started at the switch; its size is not tracked apart, so the
        // trigger counts from the new base.
        self.size = size;
        rx
    }

    async fn flush_all(&mut self) {
        if self.has_backlog() {
            let job = Job::Data(
                std::mem::take(&mut self.backlog),
                std::mem::take(&mut self.backlog_cbs),
            );
            self.inflight.fetch_add(1, Ordering::AcqRel);
            self.send(job).await;
            self.backlog_since = None;
        }
    }

    /// Writes everything, fsyncs and stops the thread.
    pub async fn stop(mut self) {
        self.flush_all().await;
        self.send(Job::Stop).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Creates (or empties) a file only the owner can read: the log holds application data,
/// sessions included.
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// A compaction in progress: the snapshot's channel and completion.
#[derive(Debug)]
pub struct Rewrite {
    seq: u64,
    /// Snapshot chunks go here; dropping it ends the snapshot.
    pub tx: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    /// The snapshot thread's result: the file's size.
    pub done: tokio::sync::oneshot::Receiver<std::io::Result<u64>>,
    tmp: PathBuf,
}

impl Rewrite {
    /// Removes the temporary file of a failed or abandoned compaction.
    pub fn discard(&self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

fn write_snapshot(
    file: File,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<u64> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut size = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        w.write_all(&chunk)?;
        size += chunk.len() as u64;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(size)
}

struct WriterThread {
    dir: PathBuf,
    manifest: Manifest,
    file: File,
    /// Length of the file's content known to be fully written.
    len: u64,
    fsync: Fsync,
    health: Arc<LogHealth>,
    inflight: Arc<AtomicUsize>,
    unsynced: bool,
    last_sync: Instant,
    /// Records whose write failed, retried every second.
    retry: Vec<u8>,
    retry_cbs: Vec<Callback>,
    /// Data jobs taken whose completion is not yet reported to `inflight`.
    owed: usize,
}

impl WriterThread {
    fn run(&mut self, rx: Receiver<Job>) {
        loop {
            let failing = !self.retry.is_empty() || (self.unsynced && self.fsync == Fsync::Always);
            let wait = if failing {
                Some(Duration::from_secs(1))
            } else if self.unsynced && self.fsync == Fsync::EverySec {
                Some(Duration::from_secs(1).saturating_sub(self.last_sync.elapsed()))
            } else {
                None
            };
            let first = match wait {
                Some(d) => match rx.recv_timeout(d) {
                    Ok(j) => Some(j),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Job::Stop),
                },
                None => Some(rx.recv().unwrap_or(Job::Stop)),
            };
            let mut jobs: Vec<Job> = first.into_iter().collect();
            while jobs.len() < WRITER_QUEUE {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let mut stop = false;
            for job in jobs {
                match job {
                    Job::Data(d, cbs) => {
                        self.retry.extend_from_slice(&d);
                        self.retry_cbs.extend(cbs);
                        self.owed += 1;
                    }
                    Job::Switch(seq) => {
                        self.write_pending();
                        self.switch(seq);
                    }
                    Job::Install(seq, done) => {
                        self.write_pending();
                        let _ = done.send(self.install(seq));
                    }
                    Job::Stop => stop = true,
                }
            }
            self.write_pending();
            let due = match self.fsync {
                Fsync::Always => true,
                Fsync::EverySec => self.last_sync.elapsed() >= Duration::from_secs(1),
                Fsync::No => false,
            };
            if self.unsynced && (due || stop) {
                self.sync();
            }
            // Replies wait while their records are not written (or, with `always`, not
            // synced); the executor holds back later replies as long as jobs are owed.
            if self.retry.is_empty() && (!self.unsynced || self.fsync != Fsync::Always) {
                for cb in self.retry_cbs.drain(..) {
                    cb();
                }
                self.inflight.fetch_sub(self.owed, Ordering::AcqRel);
                self.owed = 0;
            }
            if stop {
                return;
            }
        }
    }

    /// Writes the pending records; on failure the file is cut back to its last good length
    /// and the records are kept for the next try.
    fn write_pending(&mut self) {
        if self.retry.is_empty() {
            return;
        }
        match self.file.write_all(&self.retry) {
            Ok(()) => {
                self.len += self.retry.len() as u64;
                self.retry.clear();
                self.unsynced = true;
                self.health.ok();
            }
            Err(e) => {
                tracing::error!(error = %e, "store: cannot write the append-only log; write commands are refused until it works");
                self.health.fail(&e);
                let _ = self.file.set_len(self.len);
            }
        }
    }

    fn sync(&mut self) {
        match self.file.sync_data() {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "store: cannot fsync the append-only log");
                self.health.fail(&e);
                self.last_sync = Instant::now();
            }
        }
    }

    fn switch(&mut self, seq: u64) {
        self.sync();
        let path = self.dir.join(incr_name(seq));
        let file = match open_append(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "store: cannot start a new log file; staying on the current one");
                return;
            }
        };
        let mut m = self.manifest.clone();
        m.incrs.push(seq);
        if let Err(e) = m.write(&self.dir) {
            tracing::error!(error = %e, "store: cannot write the log manifest; staying on the current file");
            let _ = fs::remove_file(&path);
            return;
        }
        self.manifest = m;
        self.file = file;
        self.len = 0;
    }

    fn install(&mut self, seq: u64) -> bool {
        let tmp = self.dir.join(format!("{}.tmp", base_name(seq)));
        if self.manifest.incrs.last() != Some(&seq) {
            // The switch failed: the snapshot does not line up with an increment file.
            let _ = fs::remove_file(&tmp);
            tracing::error!("store: log compaction abandoned (no increment file of its own)");
            return false;
        }
        let old = self.manifest.clone();
        let m = Manifest {
            base: Some(seq),
            incrs: vec![seq],
        };
        let done =
            fs::rename(&tmp, self.dir.join(base_name(seq))).and_then(|()| m.write(&self.dir));
        if let Err(e) = done {
            tracing::error!(error = %e, "store: cannot install the compacted log; keeping the old files");
            return false;
        }
        self.manifest = m;
        for name in old.files() {
            if name != incr_name(seq) {
                let _ = fs::remove_file(self.dir.join(name));
            }
        }
        tracing::info!(file = %base_name(seq), "store: append-only log compacted");
        true
    }
}

/// Reads a whole log file (tests and tools).
pub fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.read_to_end(&mut v)?;
    Ok(v)
}
