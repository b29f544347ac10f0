//! systemd's notification protocol (`sd_notify(3)`), without libsystemd: one unix
//! datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket on Linux).
//!
//! What the agent says, for a `Type=notify` unit:
//!
//! - `READY=1` once startup is over and the first connection attempt has an
//!   outcome: registered, or backing off to retry (a worker that retries is
//!   running as intended; systemd must not time its start out);
//! - `STATUS=…` on every change of the link: connecting, connected,
//!   registered as `<id>`, reconnecting in `<delay>`;
//! - `WATCHDOG=1` every `WATCHDOG_USEC / 2`, **only while the loop pulse is
//!   fresh** ([`Pulse`]): a loop that stops turning stops feeding the watchdog,
//!   and systemd restarts the worker (`WatchdogSec=`);
//! - `STOPPING=1` when shutdown begins.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or not `Type=notify`) nothing is sent.
//! A message that cannot be sent is logged once at debug level: the worker's job is
//! the orchestrator, not systemd.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cropscode_core::Instant;

use crate::health::Pulse;

/// Where notifications go, read from the environment once.
#[derive(Debug, Clone)]
pub struct Notifier {
    #[cfg(unix)]
    addr: std::os::unix::net::SocketAddr,
    watchdog: Option<Duration>,
    warned: Arc<AtomicBool>,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names, with the watchdog interval of
    /// `WATCHDOG_USEC` (ignored when `WATCHDOG_PID` names another process).
    /// `None` when the variable is unset, empty, or not a usable address.
    pub fn from_env() -> Option<Notifier> {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())?;
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::new(socket.to_str()?, usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// [`Notifier::from_env`] on given values.
    pub fn new(socket: &str, watchdog_usec: Option<&str>, watchdog_pid: Option<&str>, pid: u32) -> Option<Notifier> {
        let for_us = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        #[cfg(unix)]
        {
            let addr = match address(socket) {
                Ok(addr) => addr,
                Err(error) => {
                    tracing::warn!(%error, socket, "ignoring NOTIFY_SOCKET");
                    return None;
                }
            };
            Some(Notifier { addr, watchdog, warned: Arc::new(AtomicBool::new(false)) })
        }
        #[cfg(not(unix))]
        {
            let _ = (socket, watchdog);
            None
        }
    }

    /// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one message (`READY=1`, `STATUS=…`, several lines at once).
    pub fn send(&self, message: &str) {
        if let Err(error) = self.try_send(message)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::debug!(%error, "cannot notify systemd");
        }
    }

    fn try_send(&self, message: &str) -> io::Result<()> {
        #[cfg(unix)]
        {
            let socket = std::os::unix::net::UnixDatagram::unbound()?;
            socket.send_to_addr(message.as_bytes(), &self.addr)?;
            Ok(())
        }
        #[cfg(not(unix))]
        {
            let _ = message;
            Ok(())
        }
    }

    /// Feeds the watchdog from a thread of its own while the pulse is fresh, until
    /// the returned guard is dropped. Nothing when systemd set no watchdog.
    pub fn start_watchdog(&self, pulse: Arc<Pulse>, clock: crate::SmolClock) -> Option<WatchdogGuard> {
        let period = self.watchdog? / 2;
        let stop = Arc::new(AtomicBool::new(false));
        let notifier = self.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cropscode-watchdog".into())
                .spawn(move || {
                    use cropscode_core::Clock;
                    let mut starved = false;
                    while !stop.load(Ordering::Relaxed) {
                        let now = clock.now();
                        if feeds(&pulse, now) {
                            notifier.send("WATCHDOG=1");
                            starved = false;
                        } else if !starved {
                            starved = true;
                            tracing::error!(
                                silent_for = ?pulse.age(now),
                                "the worker's loop has not turned in time; no longer feeding the systemd watchdog"
                            );
                        }
                        park_for(period, &stop);
                    }
                })
                .ok()?
        };
        Some(WatchdogGuard { stop, thread: Some(thread) })
    }
}

/// Whether a watchdog tick at `now` feeds systemd: only while the loop's pulse is fresh.
pub fn feeds(pulse: &Pulse, now: Instant) -> bool {
    pulse.is_fresh(now)
}

/// Sleeps `period` in short steps, so a stop is seen promptly.
fn park_for(period: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(100);
    let mut left = period;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
}

/// Stops the watchdog thread when dropped.
#[derive(Debug)]
pub struct WatchdogGuard {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WatchdogGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(unix)]
fn address(socket: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    if let Some(name) = socket.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            return std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(io::Error::new(io::ErrorKind::Unsupported, "abstract sockets are Linux-only"));
        }
    }
    if !socket.starts_with('/') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "expected an absolute path or @name"));
    }
    std::os::unix::net::SocketAddr::from_pathname(socket)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn the_watchdog_is_fed_only_while_the_pulse_is_fresh() {
        // Hand-made time: the loop turns at 0 s and 15 s, then hangs; ticks every 15 s.
        let pulse = Pulse::new(Duration::from_secs(40));
        let mut fed = Vec::new();
        for second in (0..=90).step_by(15) {
            let now = Instant::from_millis(second * 1000);
            if second <= 20 {
                pulse.mark(now);
            }
            fed.push((second, feeds(&pulse, now)));
        }
        assert_eq!(fed, [(0, true), (15, true), (30, true), (45, true), (60, false), (75, false), (90, false)]);
        // It turns again: fed again.
        pulse.mark(Instant::from_millis(100_000));
        assert!(feeds(&pulse, Instant::from_millis(105_000)));
    }

    #[test]
    fn messages_reach_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("cropscode-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::new(path.to_str().unwrap(), Some("2000000"), None, 1).unwrap();
        assert_eq!(notifier.watchdog(), Some(Duration::from_secs(2)));
        notifier.send("READY=1\nSTATUS=registered");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=registered");
        let _ = std::fs::remove_dir_all(&dir);

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("cropscode-notify-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let server = UnixDatagram::bind_addr(&addr).unwrap();
            Notifier::new(&format!("@{name}"), None, None, 1).unwrap().send("STOPPING=1");
            let n = server.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"STOPPING=1");
        }
    }

    #[test]
    fn a_watchdog_for_another_process_is_ignored() {
        let notifier = Notifier::new("/run/x.sock", Some("90000000"), Some("7"), 8).unwrap();
        assert_eq!(notifier.watchdog(), None);
        assert!(Notifier::new("relative.sock", None, None, 1).is_none());
    }
}
