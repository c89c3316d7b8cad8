//! The watcher thread: every heartbeat interval it beats for this box
//! too, reads the peers' box table entries, hands them and its own
//! monotonic clock to the failure detector (peers' wall-clock timestamps
//! are never compared with ours), and turns what follows into the control
//! core's acts.
//!
//! The detector's verdicts go to the agreed view (`super::view`: the
//! segment's cell, or the Raft in replicated mode), and only committed
//! changes are acted on (`super::agreed`): take over, hand back, fence.
//! No box acts on its own reading of the heartbeats.
//!
//! The rules are not here: what counts as dead is `detector`'s, what
//! fences is the view's or `fence`'s; this file is the loop and its timing.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_config::Config;
use tracing::warn;

use super::detector::{verdict_on, was_starved_tick, PeerTracker};
use super::handle::Control;
use super::view::AgreedView;
use crate::clock::unix_ms;
use crate::sys::{pin_to_cpu, realtime_priority};

/// Watches the other boxes' heartbeats; a box silent for the configured
/// count is declared dead and its connections are taken over (seed Fig. 6
/// step 602), a box back with a new epoch is a new member, all through
/// the agreed view `agreed`: its dataplane is up and it has beaten, so its
/// first tick proposes its join.
pub(crate) fn spawn_watcher(
    control: Arc<Control>,
    config: &Config,
    mut agreed: AgreedView,
    stop: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let interval = Duration::from_millis(config.failure.heartbeat_interval_ms);
    let deadline_ms = config.failure.detection_ms();
    let peers: Vec<u16> = config.peers().map(|m| m.id).collect();
    let me = config.node.id;
    thread::Builder::new()
        .name("watcher".into())
        .spawn(move || {
            realtime_priority("watcher");
            // The watcher beats too, from another CPU than the heartbeat
            // thread: a box falls silent only when both stall. On a 2-vCPU
            // machine one vCPU alone can stall for ~100 ms (softirq bursts,
            // the hypervisor), which silenced a live box in the soak.
            pin_to_cpu("watcher", 1);
            // Peers' silences and our own, by heartbeat counters on this
            // thread's monotonic clock: no wall clock is compared.
            let origin = Instant::now();
            let mono_ms = move || origin.elapsed().as_millis() as u64;
            let mut tracked = peers.clone();
            tracked.push(me);
            let mut tracker = PeerTracker::new(&tracked);
            let mut last_stats = Instant::now();
            // The load is published once a second: asking every worker for
            // its counters costs a round trip per worker, not for each tick.
            let mut meter = super::load::LoadMeter::default();
            let mut last_load: Option<Instant> = None;
            let mut last_tick = Instant::now();
            let mut was_starved = false;
            while !stop.load(Ordering::Relaxed) {
                // A judge that was itself asleep cannot tell a silent peer
                // from a stalled machine: when this thread woke late, or
                // our own heartbeat is late too, the whole box was starved
                // (2 cores, builds, a load client): look again next tick
                // rather than declare a live peer dead.
                let gap = last_tick.elapsed();
                let own_silence = control
                    .region
                    .box_info()
                    .map_or(0, |i| tracker.silence_ms(me, &i, mono_ms()));
                let starved = was_starved_tick(gap, own_silence, interval);
                control.region.heartbeat(unix_ms());
                if last_load.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_load = Some(Instant::now());
                    let now_us = origin.elapsed().as_micros() as u64;
                    if let Some(load) = meter.observe(now_us, control.load_totals()) {
                        control.region.set_load(load);
                    }
                }
                if starved && !was_starved {
                    warn!(
                        tick_gap_ms = gap.as_millis() as u64,
                        own_silence_ms = own_silence,
                        "this box was starved of CPU: no peer is judged until it is not"
                    );
                }
                was_starved = starved;
                if !starved
                    && tracing::enabled!(tracing::Level::DEBUG)
                    && last_stats.elapsed() >= Duration::from_secs(1)
                {
                    last_stats = Instant::now();
                    control.log_stats();
                }
                agreed_tick(
                    &control,
                    &mut agreed,
                    &mut tracker,
                    mono_ms(),
                    starved,
                    deadline_ms,
                );
                // systemd's watchdog pings come from this loop: a hung
                // watcher must read as a hung box (crate::notify).
                crate::notify::control_tick(agreed.phase());
                // The gap is measured from here: a tick's own work (a
                // takeover's plan, a second at 300,000 connections) is not
                // starvation; waking late from this sleep is.
                last_tick = Instant::now();
                thread::sleep(interval);
            }
        })
}

/// One tick with an agreed view: read the view, give the detector's
/// verdicts on its members (none on a starved tick), propose, act on what
/// was committed. The view is read and acted on even on a starved tick:
/// a fence must not wait for the CPU to come back twice.
fn agreed_tick(
    control: &Control,
    view: &mut AgreedView,
    tracker: &mut PeerTracker,
    now: u64,
    starved: bool,
    deadline_ms: u64,
) {
    view.refresh();
    let mut verdicts = Vec::new();
    if !starved {
        for member in view.peers() {
            match control.segment.box_info(member.id) {
                Ok(info) => {
                    let silent = tracker.member_silence_ms(member, &info, now);
                    verdicts.extend(verdict_on(member, &info, silent, deadline_ms));
                }
                Err(err) => warn!(peer = member.id, %err, "unreadable box table entry"),
            }
        }
    }
    let events = view.tick(&verdicts);
    control.view.update(|s| {
        s.view = view.view().cloned();
        s.phase = Some(view.phase());
    });
    if let Some(v) = view.view() {
        control.note_members(&v.members);
    }
    for (event, took) in events {
        control.act_on_view(event, took);
    }
    control.hand_back_to_new_incarnations(&mut |id, info| {
        tracker.silence_ms(id, info, now) <= deadline_ms
    });
}
