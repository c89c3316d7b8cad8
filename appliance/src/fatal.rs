//! What a box does when a part of it fails for good: it stops at once.
//!
//! A box whose worker thread died but whose heartbeat goes on black-holes
//! that worker's connections for ever: its peers believe it alive and
//! never take them over. A replicated box whose replication ended keeps
//! serving with no heartbeat reaching its peers, which take its
//! connections over while it still answers them (split brain). Both are
//! worse than a crash, which the cluster is built to survive. So a panic in
//! any thread of the box (but an admin connection's: the admin server
//! catches those and answers 500, and an admin request touches no
//! connection), or replication that cannot go on, ends the process with
//! [`FATAL_EXIT`] after logging why: no heartbeat, no frame, and the peers
//! take its connections over after the detection time, as after a kill.
//!
//! `_exit(2)`, not `exit(3)`: nothing may run after the decision (no atexit
//! handler, no destructor waiting on a lock the panicked thread held), and
//! the log line is already written (tracing writes stderr unbuffered).
//!
//! It also holds the test hook that panics a worker on purpose
//! ([`TestPanic`]), so a lab test can prove the policy end to end. What it
//! must not know: which threads exist or what they do (only the admin
//! connection threads' name, `admin-conn`).

use std::time::{Duration, Instant};

use tracing::error;

/// Exit status of a box that stopped itself (sysexits.h EX_SOFTWARE).
pub const FATAL_EXIT: i32 = 70;

/// Threads whose panics are caught where they happen and do not stop the
/// box (see `crate::admin::server`).
const CONTAINED: &[&str] = &["admin-conn"];

/// Installs the panic policy for the whole process: a panicking thread
/// (other than [`CONTAINED`] ones) stops the box at once.
pub(crate) fn install_panic_policy() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        if CONTAINED.contains(&name) {
            default(info);
            return;
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        error!(
            thread = name,
            panic = message,
            location,
            "a thread of the box panicked: stopping at once (no heartbeat, no serving) so that the peers take its connections over"
        );
        exit_now();
    }));
}

/// Stops the box at once because `what` cannot go on (`why`).
pub(crate) fn stop_box(what: &str, why: &dyn std::fmt::Display) -> ! {
    error!(
        what,
        %why,
        "cannot go on: stopping at once (no heartbeat, no serving) so that the peers take its connections over"
    );
    exit_now()
}

fn exit_now() -> ! {
    // SAFETY: _exit ends the process; it has no preconditions.
    unsafe { libc::_exit(FATAL_EXIT) }
}

/// Environment variable of the test hook: `BOX_ID:MS[:N]` panics worker 0
/// of box `BOX_ID` `MS` milliseconds after it accepted its `N`-th
/// connection (default the first): a test that starts N downloads on the
/// box knows they are all under way when it dies, however slowly the
/// clients started. For tests only (a lab inherits it into every box);
/// unset in production.
pub const TEST_PANIC_ENV: &str = "BATON_TEST_PANIC_WORKER";

/// A worker that will panic on purpose (see [`TEST_PANIC_ENV`]).
#[derive(Debug)]
pub(crate) struct TestPanic {
    after: Duration,
    /// Connections to accept before the clock starts.
    wait_for: u32,
    accepted: u32,
    since: Option<Instant>,
}

impl TestPanic {
    /// The hook for worker `worker` of box `box_id`, if the environment
    /// arms it.
    pub(crate) fn from_env(box_id: u16, worker: usize) -> Option<TestPanic> {
        let v = std::env::var(TEST_PANIC_ENV).ok()?;
        let mut parts = v.split(':');
        let id = parts.next()?.trim().parse::<u16>().ok()?;
        let ms = parts.next()?.trim().parse().ok()?;
        let wait_for = match parts.next() {
            Some(n) => n.trim().parse().ok()?,
            None => 1,
        };
        (worker == 0 && id == box_id).then_some(TestPanic {
            after: Duration::from_millis(ms),
            wait_for,
            accepted: 0,
            since: None,
        })
    }

    /// A connection was accepted: the clock starts at the `wait_for`-th.
    pub(crate) fn accepted(&mut self) {
        self.accepted = self.accepted.saturating_add(1);
        if self.accepted >= self.wait_for {
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// Panics once the time has come.
    pub(crate) fn check(&self) {
        if self.since.is_some_and(|t| t.elapsed() >= self.after) {
            panic!("{TEST_PANIC_ENV}: this worker panics on purpose");
        }
    }
}
