//! How restores reach the workers: paced, because each one probes its
//! client at once and every answer comes back through the box that
//! inherited the dead box's address; and, in a mass takeover, connections
//! whose box had sent them everything parked, so that their clients' next
//! segments restore them without a probe.
//!
//! It knows an orphan only through [`Orphan::sent_everything`], never what a
//! record or a response holds. Each orphan is shared with the orphan table
//! (its lazy restore): the [`Arc`] goes to the worker as the restore's data.
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use baton_dataplane::DataplaneHandle;
use tracing::{info, warn};

use crate::orphans::Orphan;

/// Hands restored connections to the workers in batches: each restore
/// sends a probe at once, and every answer comes back through the box that
/// inherited the dead box's address (it forwards the others' share). With
/// a 512-frame ring, 256 probes per 2 ms from each of two survivors lost
/// thousands of answers (22,850 ring drops in the first second of a
/// 10,000-connection takeover). So all survivors together send
/// [`RESTORE_BATCH`] per [`RESTORE_TICK`]: 10,000 in ~105 ms. With the
/// 8,192-frame ring, 512 per 2 ms dropped 31,755 frames at the inheritor:
/// its CPU, not its ring, is the limit (BENCHMARKS.md, "Issue 19: the
/// receive ring"); 192 dropped none at 10,000 and brought kill → resume
/// p99 from ~440 ms to ~300 ms (64 and 128 slower, 256 no faster:
/// "Issue 19: the restore pace").
pub(crate) fn restore_paced(
    dataplane: &DataplaneHandle,
    orphans: Vec<Arc<Orphan>>,
    survivors: usize,
) {
    let batch = (RESTORE_BATCH / survivors.max(1)).max(1);
    for (i, orphan) in orphans.into_iter().enumerate() {
        if i > 0 && i % batch == 0 {
            thread::sleep(RESTORE_TICK);
        }
        if let Err(err) = dataplane.restore(orphan.export, Box::new(orphan)) {
            warn!(%err, "restore failed");
        }
    }
}

/// When a takeover parks idle connections (`[takeover]`'s
/// `park_idle_above` and `idle_restore_after_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdleParking {
    /// Idle connections in this box's share beyond which they are parked.
    pub(crate) above: usize,
    /// How long a parked connection waits for its client.
    pub(crate) after: Duration,
}

impl IdleParking {
    /// From the `[takeover]` table.
    pub(crate) fn from_config(c: &baton_config::TakeoverConfig) -> IdleParking {
        IdleParking {
            above: usize::try_from(c.park_idle_above).unwrap_or(usize::MAX),
            after: Duration::from_millis(c.idle_restore_after_ms),
        }
    }
}

/// A takeover's restores. Those whose box had more to send (a response not
/// all sent or not acknowledged, an upload, TLS or another protocol's
/// state) go first, paced ([`restore_paced`]): their clients may be
/// stalled until the probe resynchronises them. The idle ones — every
/// byte acknowledged, the last response whole ([`Orphan::sent_everything`])
/// — are parked in their workers for `parking.after`: an idle keep-alive
/// client's next request restores its connection on arrival (lazily),
/// with no probe and no answer to it, and only the silent ones are
/// restored, through the workers' restore window, once that has passed.
/// 300,000 idle connections probed at once overran the box that inherited
/// the address (45 % reset); parked, all answered (BENCHMARKS.md "Issue
/// 19: 300,000 idle connections parked").
///
/// Only above `parking.above` idle connections: a parked connection lives
/// in the dead box's region alone until it is restored, so a survivor that
/// dies too meanwhile takes it along (as it would the restores its workers
/// still queue behind their windows). A small takeover restores everything
/// at once, those with more to send first.
pub(crate) fn restore_takeover(
    dataplane: &DataplaneHandle,
    orphans: Vec<Arc<Orphan>>,
    survivors: usize,
    parking: IdleParking,
) {
    let (idle, mut busy): (Vec<_>, Vec<_>) = orphans.into_iter().partition(|o| o.sent_everything());
    if idle.len() <= parking.above {
        busy.extend(idle);
        return restore_paced(dataplane, busy, survivors);
    }
    info!(
        more_to_send = busy.len(),
        idle = idle.len(),
        idle_after_ms = parking.after.as_millis() as u64,
        "restoring the connections with more to send now, the idle ones when their clients speak"
    );
    restore_paced(dataplane, busy, survivors);
    for orphan in idle {
        if let Err(err) = dataplane.restore_later(orphan.export, Box::new(orphan), parking.after) {
            warn!(%err, "restore failed");
        }
    }
}

/// Restores handed to the workers per [`RESTORE_TICK`], by all survivors of
/// a takeover together (see [`restore_paced`]).
const RESTORE_BATCH: usize = 192;
/// The pace of restores.
const RESTORE_TICK: Duration = Duration::from_millis(2);
