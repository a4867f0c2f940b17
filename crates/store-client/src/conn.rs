//! One connection to the store: commands out, replies in, each under a deadline.
//!
//! Never reconnects or retries: a command that failed may or may not have run, and only the
//! caller knows whether running it twice is safe.

use crate::codec::{self, Value};
use crate::endpoint::{Addr, Endpoint};
use crate::ClientError;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection to a store, logged in and on the URL's database.
///
/// After any error other than [`ClientError::Server`] the connection is in an unknown state
/// (a late reply may still arrive): drop it and connect again.
pub struct Conn {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    out: BytesMut,
    timeout: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Conn {
    /// Connects, sends AUTH and SELECT as the endpoint asks. `timeout` bounds the connect
    /// and every later reply (blocking commands add their own wait, see [`Conn::cmd_wait`]).
    pub async fn connect(ep: &Endpoint, timeout: Duration) -> Result<Conn, ClientError> {
        let stream: Box<dyn Stream> = match &ep.addr {
            Addr::Unix(p) => Box::new(
                tokio::time::timeout(timeout, UnixStream::connect(p))
                    .await
                    .map_err(|_| ClientError::Timeout(timeout))??,
            ),
            Addr::Tcp(h, port) => {
                let s = tokio::time::timeout(timeout, TcpStream::connect((h.as_str(), *port)))
                    .await
                    .map_err(|_| ClientError::Timeout(timeout))??;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        };
        let mut c = Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
            out: BytesMut::with_capacity(1024),
            timeout,
        };
        if let Some(p) = &ep.password {
            c.ok(&["AUTH", p]).await?;
        }
        if ep.db != 0 {
            c.ok(&["SELECT", &ep.db.to_string()]).await?;
        }
        Ok(c)
    }

    /// Sends one command and returns its reply (an error reply is a [`Value::Error`]).
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, ClientError> {
        self.cmd_wait(args, Duration::ZERO).await
    }

    /// Like [`Conn::cmd`] for a command that may block server-side up to `wait`.
    pub async fn cmd_wait<A: AsRef<[u8]>>(
        &mut self,
        args: &[A],
        wait: Duration,
    ) -> Result<Value, ClientError> {
        let mut v = self.pipeline_wait(&[args], wait).await?;
        v.pop().ok_or(ClientError::Closed)
    }

    /// Sends one command; an error reply becomes [`ClientError::Server`].
    pub async fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, ClientError> {
        match self.cmd(args).await? {
            Value::Error(e) => Err(ClientError::Server(e)),
            v => Ok(v),
        }
    }

    /// Sends several commands in one write and reads all their replies, in order.
    pub async fn pipeline<A: AsRef<[u8]>>(
        &mut self,
        cmds: &[&[A]],
    ) -> Result<Vec<Value>, ClientError> {
        self.pipeline_wait(cmds, Duration::ZERO).await
    }

    async fn pipeline_wait<A: AsRef<[u8]>>(
        &mut self,
        cmds: &[&[A]],
        wait: Duration,
    ) -> Result<Vec<Value>, ClientError> {
        self.out.clear();
        for c in cmds {
            codec::encode(&mut self.out, c);
        }
        let limit = self.timeout + wait;
        let work = async {
            self.stream.write_all(&self.out).await?;
            let mut replies = Vec::with_capacity(cmds.len());
            while replies.len() < cmds.len() {
                match codec::decode(&mut self.buf).map_err(ClientError::Protocol)? {
                    Some(v) => replies.push(v),
                    None => {
                        if self.buf.capacity() - self.buf.len() < 4096 {
                            self.buf.reserve(16 * 1024);
                        }
                        if self.stream.read_buf(&mut self.buf).await? == 0 {
                            return Err(ClientError::Closed);
                        }
                    }
                }
            }
            Ok(replies)
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }
}
