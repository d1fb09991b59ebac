//! systemd's service protocol (sd_notify(3)) over `$NOTIFY_SOCKET`: readiness once cameras,
//! ONVIF and the web side are up, reload and stop notices, and watchdog pings while the
//! daemon's parts still answer. Outside systemd (no socket) every call does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Everything is up: systemd considers the service started.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    // systemd 253+ wants the reload's start time with it.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half its interval while `healthy` says the daemon answers; stops
/// pinging (so systemd restarts the service) when it does not. `None` when systemd set no
/// watchdog.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    pub fn start(healthy: impl Fn() -> bool + Send + 'static) -> Option<Self> {
        let interval = sd_notify::watchdog_enabled()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let period = (interval / 2).max(Duration::from_millis(100));
        tracing::info!(?interval, "systemd watchdog enabled");
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    if healthy() {
                        send(&[NotifyState::Watchdog]);
                    } else {
                        tracing::error!("the daemon does not answer; no watchdog ping");
                    }
                    std::thread::park_timeout(period);
                }
            })
            .ok()?;
        Some(Self { stop, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}
