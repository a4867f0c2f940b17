//! The service manager's readiness protocol (`sd_notify`, systemd's `Type=notify`): state
//! lines sent as datagrams to the socket named by `$NOTIFY_SOCKET`, and the watchdog pings
//! `$WATCHDOG_USEC` asks for.
//!
//! Owns reading those variables and removing them from the environment before any thread
//! or child exists, so no PHP worker or other child inherits them. Never fails the server
//! and never blocks it: without `$NOTIFY_SOCKET` every call is a no-op, and a datagram that
//! cannot be sent is logged and dropped.
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

const SOCKET_VAR: &str = "NOTIFY_SOCKET";
const WATCHDOG_USEC_VAR: &str = "WATCHDOG_USEC";
const WATCHDOG_PID_VAR: &str = "WATCHDOG_PID";

/// Where state lines go, and how often the watchdog wants a ping.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Takes `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`/`$WATCHDOG_PID` out of the environment.
    /// Call it while the process has one thread (changing the environment races with any
    /// other thread reading it).
    pub fn from_env() -> Self {
        let socket = std::env::var_os(SOCKET_VAR);
        let usec = std::env::var(WATCHDOG_USEC_VAR).ok();
        let pid = std::env::var(WATCHDOG_PID_VAR).ok();
        for v in [SOCKET_VAR, WATCHDOG_USEC_VAR, WATCHDOG_PID_VAR] {
            std::env::remove_var(v);
        }
        let target = socket.and_then(|s| match connect(&s) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("{SOCKET_VAR}={}: {e}; not notifying", s.to_string_lossy());
                None
            }
        });
        let watchdog = target
            .as_ref()
            .and_then(|_| watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()));
        Notifier { target, watchdog }
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines), if a service manager listens.
    pub fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                tracing::warn!("{SOCKET_VAR}: cannot send {state:?}: {e}");
            }
        }
    }

    /// `READY=1` with a status line: the listeners are bound and the pools started.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the monotonic time systemd requires alongside it.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
            monotonic_usec()
        ));
    }

    /// `STOPPING=1`: the server has begun its graceful stop.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping gracefully");
    }

    /// How often to send `WATCHDOG=1`: half the interval the service manager asked for.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// Half of `$WATCHDOG_USEC`, if it is set, positive, and meant for this process (no
/// `$WATCHDOG_PID`, or ours).
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, ours: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(ours)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// An unbound datagram socket and the address `path` names: a file path, or an abstract
/// socket when it starts with `@`.
fn connect(path: &std::ffi::OsStr) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.split_first() {
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        Some((b'/', _)) => SocketAddr::from_pathname(path)?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not an absolute path or an abstract socket name",
            ))
        }
    };
    Ok((UnixDatagram::unbound()?, addr))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
#[allow(unsafe_code)]
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_interval_and_only_for_us() {
        assert_eq!(
            watchdog_interval(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn a_relative_socket_path_is_refused() {
        assert!(connect("run/notify".as_ref()).is_err());
        assert!(connect("@isola-test".as_ref()).is_ok());
        assert!(connect("/run/systemd/notify".as_ref()).is_ok());
    }

    #[test]
    fn the_monotonic_clock_advances() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() > a);
    }
}
