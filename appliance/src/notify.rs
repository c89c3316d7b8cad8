//! The box's side of systemd's notification protocol (sd_notify): what a
//! `Type=notify` unit (`packaging/baton.service`) learns of the box.
//!
//! - `READY=1` once the box really serves: its dataplane is up and the
//!   agreed view holds this incarnation as a member (the first control
//!   tick that sees [`Phase::Member`]), not merely once the process runs.
//! - `STATUS=` lines at each start-up stage and phase change.
//! - `WATCHDOG=1` from the control thread (the watcher) every half of
//!   `WATCHDOG_USEC`, when the service manager asks for pings: the heartbeat
//!   thread beats on its own, so a hung watcher leaves the peers believing
//!   the box alive while it judges no one and fences never; the watchdog
//!   turns that hang into a restart.
//! - `STOPPING=1` when a stop signal arrived.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (the lab, a shell).
//! A lost notification is logged, never fatal: systemd's own timeouts
//! catch a box that cannot tell it anything.
//!
//! What it must not know: the control core, the dataplane or the cluster;
//! callers hand in the phase they see.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use baton_membership::Phase;
use sd_notify::NotifyState;
use tracing::{debug, info, warn};

/// What the control thread has told the service manager so far.
struct Sent {
    ready: bool,
    phase: Option<Phase>,
    last_ping: Option<Instant>,
    /// Half of `WATCHDOG_USEC`, read once: `None` without a watchdog.
    ping_every: Option<Option<Duration>>,
}

static SENT: Mutex<Sent> = Mutex::new(Sent {
    ready: false,
    phase: None,
    last_ping: None,
    ping_every: None,
});

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!(%err, ?states, "cannot notify the service manager");
    }
}

/// A `STATUS=` line: what the box is doing now, as `systemctl status` shows.
pub(crate) fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `STOPPING=1`: a stop signal arrived, the box is shutting down.
pub(crate) fn stopping(signal: i32) {
    let text = format!("stopping (signal {signal})");
    send(&[NotifyState::Stopping, NotifyState::Status(&text)]);
}

/// How often the watchdog wants a ping: half its timeout, as sd_notify(3)
/// advises, or `None` when no watchdog is asked for (or it is another
/// process's: `WATCHDOG_PID`).
pub fn ping_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|t| t / 2)
}

/// One tick of the control thread, with this incarnation's `phase`: sends
/// `READY=1` the first time the box is a member, a `STATUS=` line when the
/// phase changes, and `WATCHDOG=1` when half the watchdog's timeout has
/// passed since the last ping.
pub(crate) fn control_tick(phase: Phase) {
    let now = Instant::now();
    let mut sent = SENT.lock().unwrap_or_else(|p| p.into_inner());
    if sent.phase != Some(phase) {
        sent.phase = Some(phase);
        let text = match phase {
            Phase::Starting => "starting: dataplane up, not yet proposing the join",
            Phase::Joining => "joining the agreed view",
            Phase::Member => "serving: member of the agreed view",
            Phase::Fenced => "fenced: removed from the view, exiting with status 3",
        };
        if phase == Phase::Member && !sent.ready {
            sent.ready = true;
            info!("member of the agreed view: telling the service manager READY=1");
            send(&[NotifyState::Ready, NotifyState::Status(text)]);
        } else {
            send(&[NotifyState::Status(text)]);
        }
    }
    let every = *sent.ping_every.get_or_insert_with(ping_interval);
    let Some(every) = every else { return };
    if sent
        .last_ping
        .is_none_or(|t| now.duration_since(t) >= every)
    {
        sent.last_ping = Some(now);
        debug!("WATCHDOG=1");
        send(&[NotifyState::Watchdog]);
    }
}
