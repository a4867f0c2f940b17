//! Request bodies are read completely before a worker is involved, like nginx's default
//! `fastcgi_request_buffering on`: a slow or broken upload never ties up a PHP worker, PHP
//! always learns the exact CONTENT_LENGTH (php-cgi reads nothing without it, so a chunked
//! body would otherwise arrive empty), and a body whose framing breaks midway never reaches
//! PHP at all. Small bodies stay in memory; larger ones go to an unlinked temporary file, so
//! memory stays bounded whatever the upload size.
use crate::request_body::{BodyError, RequestBody};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A complete request body.
pub enum Spooled {
    /// In memory.
    Memory(Bytes),
    /// In an unlinked temporary file, positioned at its start.
    File { file: tokio::fs::File, len: u64 },
}

impl Spooled {
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(b) => b.len() as u64,
            Spooled::File { len, .. } => *len,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    #[error("request body broken: {0}")]
    Client(BodyError),
    #[error("no body data for {0:?}")]
    Stalled(Duration),
    #[error("cannot spool request body: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings for [`spool`].
pub struct SpoolLimits<'a> {
    pub max_size: u64,
    pub memory_threshold: usize,
    pub idle_timeout: Duration,
    pub tmp_dir: &'a Path,
}

/// Most bytes of an unread body [`discard`] reads, and how long it tries.
const DISCARD_MAX: u64 = 64 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(10);

/// Reads and throws away a request body that an early answer (400, 403, 404, 405, 413...)
/// left unread, on its own task while the answer goes out. Closing a connection with
/// unread bytes makes the kernel send a reset, and the client then loses the answer it
/// was sent; reading the rest first is nginx's discarded body and lingering close. Bounded
/// in bytes and time; a body announced with `Expect: 100-continue` was never sent, and an
/// HTTP/2 or HTTP/3 stream is stopped on its own without harming the connection, so neither
/// is read.
pub fn discard(req: hyper::Request<RequestBody>) {
    let unsent = req.headers().contains_key(http::header::EXPECT);
    if unsent || req.version() >= http::Version::HTTP_2 || req.body().is_end_stream() {
        return;
    }
    let mut body = req.into_body();
    tokio::spawn(async move {
        let mut left = DISCARD_MAX;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                match left.checked_sub(n) {
                    Some(l) => left = l,
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
    });
}

/// Reads `body` whole.
pub async fn spool(mut body: RequestBody, limits: &SpoolLimits<'_>) -> Result<Spooled, SpoolError> {
    let mut mem = BytesMut::new();
    let mut file: Option<tokio::io::BufWriter<tokio::fs::File>> = None;
    let mut total: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(limits.idle_timeout, body.frame()).await {
            Err(_) => return Err(SpoolError::Stalled(limits.idle_timeout)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(SpoolError::Client(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limits.max_size {
            return Err(SpoolError::TooLarge(limits.max_size));
        }
        match file.as_mut() {
            Some(f) => f.write_all(&data).await?,
            None if mem.len() + data.len() <= limits.memory_threshold => {
                mem.extend_from_slice(&data)
            }
            None => {
                let std_file = tempfile::tempfile_in(limits.tmp_dir)?;
                let mut f = tokio::io::BufWriter::with_capacity(
                    256 * 1024,
                    tokio::fs::File::from_std(std_file),
                );
                f.write_all(&mem).await?;
                f.write_all(&data).await?;
                mem = BytesMut::new();
                file = Some(f);
            }
        }
    }
    match file {
        None => Ok(Spooled::Memory(mem.freeze())),
        Some(mut f) => {
            f.flush().await?;
            let mut file = f.into_inner();
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(0)).await?;
            Ok(Spooled::File { file, len: total })
        }
    }
}
