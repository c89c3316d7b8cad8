//! The watcher thread: every heartbeat interval it beats for this box
//! too, reads the peers' box table entries, hands them and the clock to the
//! failure detector, and turns the detector's transitions into the control
//! core's acts (take over, hand back, fence).
//!
//! The rules are not here: what counts as dead is `detector`'s, what
//! fences is `fence`'s; this file is the loop and its timing.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_config::{Config, SegmentMode};
use tracing::warn;

use super::detector::{was_starved_tick, HeartbeatClock, PeerTracker, Transition};
use super::handle::Control;
use crate::clock::unix_ms;
use crate::sys::{pin_to_cpu, realtime_priority};

/// How long a (re)started box ignores a live peer answering for its own
/// addresses: the survivor that inherited them hands them back once it sees
/// this box's new epoch (a watcher tick, plus replication on a replicated
/// segment).
const CLAIM_GRACE: Duration = Duration::from_secs(2);

/// Watches the other boxes' heartbeats; a box silent for the configured
/// count is declared dead and its connections are taken over (seed Fig. 6
/// step 602), a box back with a new epoch is a new member.
pub(crate) fn spawn_watcher(
    control: Arc<Control>,
    config: &Config,
    stop: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let interval = Duration::from_millis(config.failure.heartbeat_interval_ms);
    let deadline_ms = config.failure.detection_ms();
    let peers: Vec<u16> = config.peers().map(|m| m.id).collect();
    let clock = match config.checkpoint.mode {
        SegmentMode::Shared => HeartbeatClock::PeerTime,
        SegmentMode::Replicated => HeartbeatClock::Counter,
    };
    thread::Builder::new()
        .name("watcher".into())
        .spawn(move || {
            realtime_priority("watcher");
            // The watcher beats too, from another CPU than the heartbeat
            // thread: a box falls silent only when both stall. On a 2-vCPU
            // machine one vCPU alone can stall for ~100 ms (softirq bursts,
            // the hypervisor), which silenced a live box in the soak.
            pin_to_cpu("watcher", 1);
            let mut tracker = PeerTracker::new(&peers, clock);
            let mut last_stats = Instant::now();
            let mut last_tick = Instant::now();
            let mut was_starved = false;
            let watching_since = Instant::now();
            // This box went unheard for longer than detection (stopped,
            // starved): its peers may have declared it dead.
            let mut was_silent = false;
            while !stop.load(Ordering::Relaxed) {
                // A judge that was itself asleep cannot tell a silent peer
                // from a stalled machine: when this thread woke late, or
                // our own heartbeat is late too, the whole box was starved
                // (2 cores, builds, a load client): look again next tick
                // rather than declare a live peer dead.
                let gap = last_tick.elapsed();
                last_tick = Instant::now();
                was_silent |= gap > Duration::from_millis(deadline_ms);
                control.fence_if_declared_dead(
                    watching_since.elapsed() > Duration::from_millis(2 * deadline_ms),
                );
                let own_silence = control
                    .region
                    .box_info()
                    .map_or(0, |i| unix_ms().saturating_sub(i.heartbeat_ms));
                let starved = was_starved_tick(gap, own_silence, interval);
                control.region.heartbeat(unix_ms());
                if starved {
                    if !was_starved {
                        warn!(
                            tick_gap_ms = gap.as_millis() as u64,
                            own_silence_ms = own_silence,
                            "this box was starved of CPU: no peer is judged until it is not"
                        );
                    }
                    was_starved = true;
                    thread::sleep(interval);
                    continue;
                }
                was_starved = false;
                if tracing::enabled!(tracing::Level::DEBUG)
                    && last_stats.elapsed() >= Duration::from_secs(1)
                {
                    last_stats = Instant::now();
                    control.log_stats();
                }
                let now = unix_ms();
                for &id in &peers {
                    match control.segment.box_info(id) {
                        Ok(info) => match tracker.observe(id, &info, now, deadline_ms) {
                            None if was_silent
                                && tracker.is_alive(id)
                                && watching_since.elapsed() > CLAIM_GRACE =>
                            {
                                control.fence_if_claimed(&info);
                            }
                            Some(Transition::Died) => {
                                let survivors = tracker.alive_with(control.me);
                                control.take_over(id, &info, &survivors);
                            }
                            Some(Transition::Rejoined) => control.hand_back(id),
                            None => {}
                        },
                        Err(err) => warn!(peer = id, %err, "unreadable box table entry"),
                    }
                }
                thread::sleep(interval);
            }
        })
}
