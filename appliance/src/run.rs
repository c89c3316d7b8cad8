//! `baton run`: one appliance box. This is the control core's thread of the
//! box: it maps the checkpoint segment, announces the box in the box table
//! (new epoch, state, MAC, service IPs), heartbeats at the configured
//! interval, watches the other boxes' heartbeats, and runs until SIGTERM or
//! SIGINT. The dataplane workers run on their own pinned threads.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use baton_config::Config;
use baton_shmem::{BoxState, Layout, Region, Segment};
use clap::Args;
use tracing::{info, warn};

use crate::cache::{Cache, CacheSettings, Origin};
use crate::http::Limits;
use crate::logging;
use crate::serve::checkpoint::{Cadence, Checkpointer};
use crate::serve::{CacheApp, RestoreData};
use crate::takeover::{self, OrphanRoute, OrphanTable};
use baton_config::{PollMode, SegmentMode};
use baton_dataplane::{DataplaneHandle, DataplaneOptions};

/// Arguments of `baton run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The box's configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// A file to create once the box serves (the lab waits for it).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// Unix time in milliseconds: the clock of heartbeats and checkpoints, shared
/// by every box of the cluster.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The segment layout a config implies: one region per member id (ids
/// index regions directly, so region 0 is unused when ids start at 1).
pub fn layout_of(config: &Config) -> Layout {
    let top = config
        .cluster
        .members
        .iter()
        .map(|m| m.id)
        .max()
        .unwrap_or(config.node.id);
    Layout {
        regions: top.max(config.node.id) + 1,
        slots_per_region: config.checkpoint.slots,
    }
}

/// Maps the segment named in `config`.
pub fn open_segment(config: &Config) -> Result<Segment> {
    let path = &config.checkpoint.segment_path;
    Segment::open_or_create(path, layout_of(config))
        .with_context(|| format!("checkpoint segment {}", path.display()))
}

/// Runs a box until SIGTERM or SIGINT.
pub fn run(args: RunArgs) -> Result<()> {
    let config = baton_config::load(&args.config).map_err(|e| anyhow!("{e}"))?;
    logging::init(Some(&config.node.log_level));
    // Block the stop signals before any thread starts, so every thread
    // inherits the mask and the main thread alone takes them in sigwait.
    let signals = StopSignals::block()?;

    let segment = open_segment(&config)?;
    let region = segment
        .region(config.node.id)
        .context("own region of the segment")?;
    let previous = region.box_info().ok();
    let epoch = region.begin_epoch();
    let state = match previous.as_ref().map(|p| p.state) {
        None | Some(BoxState::Unused) => BoxState::Alive,
        Some(_) => BoxState::Rejoined,
    };
    let mac = config.dataplane.mac.map(|m| m.0).unwrap_or([0; 6]);
    region
        .set_identity(mac, &config.service.ips)
        .context("writing the box table entry")?;
    region.set_connections(0);
    region.heartbeat(unix_ms());
    region.set_state(state);
    info!(
        box_id = config.node.id,
        name = %config.node.name,
        epoch,
        ?state,
        segment = %config.checkpoint.segment_path.display(),
        "box started"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = spawn_heartbeat(region.clone(), &config, stop.clone())?;
    let replication = match config.checkpoint.mode {
        SegmentMode::Shared => None,
        SegmentMode::Replicated => Some(spawn_replication(&segment, &config, stop.clone())?),
    };
    let orphans = Arc::new(OrphanTable::default());

    let origin = Origin::from_config(&config.cache).with_context(|| {
        format!(
            "cache.origin {:?} names no reachable address",
            config.cache.origin
        )
    })?;
    let (cache, fetchers) = Cache::start(
        CacheSettings::from_config(&config.cache),
        origin,
        config.cache.fetchers,
    )
    .context("starting the origin fetchers")?;
    // Before the dataplane answers for our addresses: frames of connections
    // to them that other boxes hold now must be forwarded, never reset.
    let held_elsewhere = takeover::routes_to_holders(&segment, config.node.id, &config.service.ips);
    if !held_elsewhere.is_empty() {
        info!(
            connections = held_elsewhere.len(),
            "connections to our addresses live on other boxes (taken over earlier): forwarding them"
        );
        orphans.extend(held_elsewhere);
    }
    let http_workers = crate::http::HttpWorkers::default();
    let dataplane = Arc::new(start_dataplane(
        &config,
        &region,
        cache.clone(),
        orphans.clone(),
        http_workers.clone(),
    )?);
    region
        .set_identity(dataplane.mac().0, &config.service.ips)
        .context("writing the box table entry")?;
    // Gratuitous ARP, repeated as a survivor does for an inherited
    // address: the LAN learns (again) which MAC owns the address, and a
    // rejoining box wins over any announcement of a survivor that was
    // already on the wire when it handed the address back.
    announce_repeatedly(dataplane.clone(), config.service.ips.clone(), |_| true);
    info!(
        interface = %config.dataplane.interface,
        workers = dataplane.n_workers(),
        mac = %dataplane.mac(),
        "dataplane serving"
    );

    let control = Arc::new(Control {
        segment: segment.clone(),
        region: region.clone(),
        dataplane: dataplane.clone(),
        orphans,
        me: config.node.id,
        own_ips: config.service.ips.clone(),
        inherited: Default::default(),
        members: config.cluster.members.clone(),
        admin_port: config.admin.listen.port(),
        admin_token: config.admin.token.clone(),
    });
    let watcher = spawn_watcher(control.clone(), &config, stop.clone())?;
    let admin = crate::admin::spawn(
        config.admin.listen,
        config.admin.token.clone(),
        Arc::new(crate::boxadmin::BoxAdmin::new(
            control.clone(),
            cache.clone(),
            http_workers,
            &config,
        )),
    )
    .with_context(|| format!("admin API on {}", config.admin.listen))?;

    if let Some(ready) = &args.ready_file {
        mark_ready(ready)?;
    }
    let signal = loop {
        match signals.wait() {
            libc::SIGUSR1 => match control.drain() {
                // The box stays up (heartbeating, draining) until stopped.
                Ok(msg) => info!("{msg}"),
                Err(err) => warn!(%err, "drain failed"),
            },
            other => break other,
        }
    };
    info!(signal, "stopping");
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    admin.shutdown();
    drop(control);
    match Arc::try_unwrap(dataplane) {
        Ok(dataplane) => {
            dataplane.shutdown();
            if let Err(err) = dataplane.join() {
                warn!(%err, "dataplane stopped with an error");
            }
        }
        Err(dataplane) => dataplane.shutdown(),
    }
    // Fetcher threads end once every handle on the cache is gone; a
    // worker that did not stop may still hold one, so do not wait for them:
    // the process exit ends them.
    drop(cache);
    drop(fetchers);
    let _ = heartbeat.join();
    if let Some(r) = replication {
        let _ = r.join();
    }
    Ok(())
}

/// The dataplane options a config implies.
fn dataplane_options(config: &Config) -> DataplaneOptions {
    let dp = &config.dataplane;
    let mut opts = DataplaneOptions::new(config.service.ips.clone());
    opts.workers = dp.workers;
    opts.cores = dp.cores.clone();
    opts.poll_mode = match dp.poll_mode {
        PollMode::Busy => baton_dataplane::PollMode::Busy,
        PollMode::Adaptive => baton_dataplane::PollMode::Adaptive { spins: 200 },
    };
    opts.listen_ports = vec![config.service.port];
    // Limits are per box in the config, per worker in the dataplane.
    opts.max_connections = config
        .limits
        .max_connections
        .min(dp.max_connections)
        .div_ceil(dp.workers.max(1));
    opts.syn_backlog = dp.syn_backlog;
    // Takeover at scale: the survivor that inherits a dead box's address
    // receives every client frame of the dead box's connections (answers
    // to probes, then the ACKs of resumed downloads, ~70,000 frames/s for
    // 10,000 downloads) and forwards the other survivors' share; its
    // 512-slot ring holds ~10 ms of that (measured: 16,685 ring drops in
    // the first second of a 10,000-connection takeover). A worker that
    // wakes to a full ring takes 256 frames per iteration, not 64, so it
    // spends less of its slice on per-iteration work. (A larger ring was
    // tried: 1024 and 2048 slots of 64 KiB stalled the whole 2-core
    // machine for 150-600 ms while a box started, long enough for its
    // peers to declare it dead; see docs/BENCHMARKS.md, Open findings.)
    opts.rx_burst = 256;
    opts.tcp.ack_after_commit = config.checkpoint.enabled && config.checkpoint.ack_after_commit;
    // An idle connection is closed with a FIN after this (RFC 9293 leaves
    // it to the host; Linux's tcp_fin_timeout is the model).
    opts.tcp.idle_timeout = Duration::from_millis(config.dataplane.tcp_idle_timeout_ms);
    opts
}

/// Starts the workers, each with its HTTP cache app and checkpoint slots.
fn start_dataplane(
    config: &Config,
    region: &Region,
    cache: Arc<Cache>,
    orphans: Arc<OrphanTable>,
    http_workers: crate::http::HttpWorkers,
) -> Result<DataplaneHandle> {
    let port = crate::port_config::port_config(config)?;
    let opts = dataplane_options(config);
    let workers = opts.workers;
    let shared = crate::serve::BoxShared {
        cache,
        orphans,
        spool: upload_spool(config),
        http_workers,
        limits: Limits::from_config(&config.limits),
        max_sessions: opts.max_connections,
    };
    let cadence = Cadence::from_config(&config.checkpoint);
    let checkpoints = config.checkpoint.enabled;
    let mac = config.dataplane.mac.map(|m| m.0).unwrap_or([0; 6]);
    let region = region.clone();
    let factory = move |worker: usize| {
        let checkpointer = if checkpoints {
            match Checkpointer::new(&region, worker, workers, cadence, mac) {
                Ok(c) => Some(c),
                Err(err) => {
                    warn!(worker, %err, "no checkpoint slots: this worker's connections are not recoverable");
                    None
                }
            }
        } else {
            None
        };
        CacheApp::new(worker, checkpointer, &shared)
    };
    let backend = port.to_string();
    baton_dataplane::start(port, opts, factory)
        .with_context(|| format!("starting the dataplane: {backend}"))
}

fn mark_ready(path: &Path) -> Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing ready file {}", path.display()))
}

/// Replication for boxes that share no mapping (`checkpoint.mode =
/// "replicated"`): ships this box's dirty slots and heartbeat to every
/// peer's back-LAN address and applies theirs to the local replica, over
/// UDP authenticated with the cluster key (see baton_shmem::replication).
/// It must run on the same `Segment` the workers write through: it finds
/// changed slots in that mapping's dirty bitmap.
fn spawn_replication(
    segment: &Segment,
    config: &Config,
    stop: Arc<AtomicBool>,
) -> Result<thread::JoinHandle<()>> {
    let me = config.me().context("this box is not a cluster member")?;
    let socket = std::net::UdpSocket::bind(me.back_addr)
        .with_context(|| format!("binding the replication socket on {}", me.back_addr))?;
    let peers = config.peers().map(|m| (m.id, m.back_addr)).collect();
    let mut replicator = baton_shmem::Replicator::new(
        segment,
        baton_shmem::ReplicationConfig {
            me: config.node.id,
            key: config.cluster.key.clone(),
            peers,
        },
        socket,
    )
    .context("starting replication")?;
    // Ship at the heartbeat cadence: a peer's replica is as fresh as its
    // view of our heartbeat.
    let tick = Duration::from_millis(config.failure.heartbeat_interval_ms.max(1));
    info!(addr = %me.back_addr, "replicating the checkpoint segment to the peers");
    thread::Builder::new()
        .name("replication".into())
        .spawn(move || {
            if let Err(err) = replicator.run(&stop, tick) {
                warn!(%err, "replication stopped");
            }
        })
        .context("starting the replication thread")
}

/// Beats the box's heartbeat at the configured interval.
fn spawn_heartbeat(
    region: Region,
    config: &Config,
    stop: Arc<AtomicBool>,
) -> Result<thread::JoinHandle<()>> {
    let interval = Duration::from_millis(config.failure.heartbeat_interval_ms);
    thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            realtime_priority("heartbeat");
            pin_to_cpu("heartbeat", 0);
            while !stop.load(Ordering::Relaxed) {
                region.heartbeat(unix_ms());
                thread::sleep(interval);
            }
        })
        .context("starting the heartbeat thread")
}

/// How long a (re)started box ignores a live peer answering for its own
/// addresses: the survivor that inherited them hands them back once it sees
/// this box's new epoch (a watcher tick, plus replication on a replicated
/// segment).
const CLAIM_GRACE: Duration = Duration::from_secs(2);

/// Whether the watcher's tick shows its own box starved of CPU: it woke
/// more than two intervals after the last tick, or its own heartbeat is
/// more than two intervals old (5 ms of slack for an ordinary wakeup).
fn was_starved_tick(tick_gap: Duration, own_silence_ms: u64, interval: Duration) -> bool {
    let limit = interval * 2 + Duration::from_millis(5);
    tick_gap > limit || Duration::from_millis(own_silence_ms) > limit
}

/// Pins the calling thread to CPU `cpu` (modulo the CPUs this process may
/// use), so the box's two beating threads sit on different CPUs. Best
/// effort: a failure leaves the thread where the scheduler puts it.
fn pin_to_cpu(what: &str, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // and sched_setaffinity with pid 0 read and change only the calling
    // thread's mask, with the set's true size.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
            return;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .collect();
        if cpus.len() < 2 {
            return;
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[cpu % cpus.len()], &mut one);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) != 0 {
            warn!(thread = what, err = %std::io::Error::last_os_error(), "cannot pin to a CPU");
        }
    }
}

/// Gives the calling thread a real-time scheduling class (SCHED_FIFO,
/// priority 10) where allowed: heartbeats and their watcher sleep almost
/// all the time but must wake on time even when poll-mode workers, a load
/// client and builds share two cores; a late heartbeat reads as a dead box.
/// Without the privilege (CAP_SYS_NICE) the box runs on, with a warning.
fn realtime_priority(what: &str) {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler with pid 0 changes only the calling
    // thread's policy; `param` is a valid, initialized struct.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        warn!(
            thread = what,
            err = %std::io::Error::last_os_error(),
            "no real-time priority: under CPU contention heartbeats may be late and a live box declared dead"
        );
    }
}

/// What the control core acts with.
pub(crate) struct Control {
    pub(crate) segment: Segment,
    pub(crate) region: Region,
    pub(crate) dataplane: Arc<DataplaneHandle>,
    orphans: Arc<OrphanTable>,
    pub(crate) me: u16,
    /// The service IPs of this box's own configuration.
    own_ips: Vec<std::net::IpAddr>,
    /// Addresses inherited from dead boxes, by their id (shared with the
    /// threads that announce them, which stop once an address is handed
    /// back).
    inherited: Inherited,
    /// Every member's back-LAN address: a peer's admin API listens on its
    /// back-LAN address at the same port as ours (a cluster convention).
    members: Vec<baton_config::Member>,
    admin_port: u16,
    admin_token: String,
}

/// Watches the other boxes' heartbeats; a box silent for the configured
/// count is declared dead and its connections are taken over (seed Fig. 6
/// step 602), a box back with a new epoch is a new member.
fn spawn_watcher(
    control: Arc<Control>,
    config: &Config,
    stop: Arc<AtomicBool>,
) -> Result<thread::JoinHandle<()>> {
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
            let mut last_stats = std::time::Instant::now();
            let mut last_tick = std::time::Instant::now();
            let mut was_starved = false;
            let watching_since = std::time::Instant::now();
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
                last_tick = std::time::Instant::now();
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
                    last_stats = std::time::Instant::now();
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
                                control.fence_if_claimed(id, &info);
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
        .context("starting the watcher thread")
}

impl Control {
    /// The workers' non-zero counters, for debugging a box from its log.
    fn log_stats(&self) {
        let mut total = baton_dataplane::stats::Counters::default();
        let mut connections = 0;
        for w in self.dataplane.stats() {
            total.add(&w.counters);
            connections += w.connections;
        }
        let nonzero: Vec<String> = total
            .named()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tracing::debug!(connections, counters = %nonzero.join(" "), "dataplane");
    }

    /// A peer declared this box dead (our heartbeats stopped for longer
    /// than the detection time: the process was stopped or starved) and its
    /// survivors now serve our connections from our checkpoints. Serving
    /// them too would hand the clients two senders, and our retransmissions
    /// would end in resets: stop at once, as a crash would have.
    ///
    /// `settled`: this box has run for longer than twice the detection
    /// time. Before that a `dead` mark can only be a survivor's verdict on
    /// the previous incarnation landing just after this one started (it
    /// checked the epoch a moment before our restart): cleared, not obeyed.
    fn fence_if_declared_dead(&self, settled: bool) {
        self.fence_when(
            settled,
            |me| me.state == BoxState::Dead,
            "declared dead by a peer while alive",
        )
    }

    /// A live peer answers for one of our own addresses after this box
    /// was silent for longer than detection: the peer declared it dead and
    /// took them over (the signal also reaches a box whose segment is
    /// replicated, where no peer can mark its entry). Only after such a
    /// silence: a peer that inherited our address from a box that had
    /// inherited it keeps it across our restart. Not while we drain (the
    /// peers take our addresses on purpose).
    fn fence_if_claimed(&self, peer: u16, info: &baton_shmem::BoxInfo) {
        if !info.service_ips.iter().any(|ip| self.own_ips.contains(ip)) {
            return;
        }
        let _ = peer;
        self.fence_when(
            true,
            |me| me.state != BoxState::Draining,
            "a live peer answers for our address",
        )
    }

    /// Fences this box when `taken_over` says its own entry shows it was
    /// taken over (see [`Self::fence_if_declared_dead`]).
    fn fence_when(
        &self,
        settled: bool,
        taken_over: impl Fn(&baton_shmem::BoxInfo) -> bool,
        why: &str,
    ) {
        let Ok(me) = self.region.box_info() else {
            return;
        };
        if !taken_over(&me) {
            return;
        }
        if !settled {
            info!("a peer's verdict on this box's previous incarnation arrived late: ignored");
            self.region.set_state(BoxState::Rejoined);
            return;
        }
        tracing::error!(
            epoch = me.epoch,
            "{why}: its survivors serve our connections now; fencing this box (the dataplane stops, the process exits with status 3)"
        );
        self.dataplane.shutdown();
        thread::sleep(Duration::from_millis(20));
        std::process::exit(3);
    }

    /// Takes over the connections of dead box `dead`, judged dead from
    /// `judged` (seed Fig. 6 604-618).
    fn take_over(&self, dead: u16, judged: &baton_shmem::BoxInfo, survivors: &[u16]) {
        let started = std::time::Instant::now();
        // Tell the box, should it still be running (a stopped process, a
        // stall longer than detection), that it has been taken over: it
        // fences itself. Only the epoch judged: a box restarted meanwhile
        // is a new member. A draining box is stopping on purpose.
        if judged.state != BoxState::Draining {
            if let Ok(r) = self.segment.region(dead) {
                r.declare_dead(judged.epoch);
            }
        }
        let before = TakeoverSnapshot::of(&self.dataplane);
        let plan = takeover::plan(&self.segment, dead, self.me, survivors);
        let mut routes = Vec::with_capacity(plan.mine.len() + plan.elsewhere.len());
        for (key, owner) in &plan.elsewhere {
            match self.segment.box_info(*owner) {
                Ok(info) => routes.push((
                    *key,
                    OrphanRoute::Elsewhere(baton_dataplane::wire::ethernet::MacAddr(info.mac)),
                )),
                Err(err) => {
                    warn!(owner, %err, "survivor's box table unreadable: its orphans are not forwarded")
                }
            }
        }
        for orphan in &plan.mine {
            let key = (orphan.export.tuple.local, orphan.export.tuple.remote);
            routes.push((key, OrphanRoute::Mine(Box::new(orphan.clone()))));
        }
        self.orphans.extend(routes);
        if plan.inherit {
            for ip in &plan.service_ips {
                if let Err(err) = self.dataplane.add_service_ip(*ip) {
                    warn!(%ip, %err, "cannot take the dead box's address");
                }
            }
            self.inherited
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dead, plan.service_ips.clone());
            let inherited = self.inherited.clone();
            announce_repeatedly(
                self.dataplane.clone(),
                plan.service_ips.clone(),
                move |ip| {
                    inherited
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .values()
                        .flatten()
                        .any(|i| i == ip)
                },
            );
            self.publish_service_ips();
        }
        let mine = plan.mine.len();
        // Pacing 10,000 restores takes ~300 ms: on a thread of its own, so
        // that this watcher goes on judging the other peers meanwhile.
        let dataplane = self.dataplane.clone();
        let n_survivors = survivors.len();
        let paced = thread::Builder::new()
            .name("restore".into())
            .spawn(move || {
                restore_paced(&dataplane, plan.mine, n_survivors);
                if mine > 0 {
                    spawn_takeover_report(dataplane, dead, started, before);
                }
            });
        if let Err(err) = paced {
            warn!(%err, "cannot start the restore thread: the orphans restore lazily");
        }
        info!(
            dead,
            ?survivors,
            restoring_here = mine,
            elsewhere = plan.elsewhere.len(),
            corrupt = plan.corrupt,
            inherit_ips = plan.inherit,
            took_us = started.elapsed().as_micros() as u64,
            "taking over a dead box's connections"
        );
    }
}

impl Control {
    /// A planned move of every connection of this box (drain for
    /// maintenance): stop accepting, write every connection's exact final
    /// checkpoint, stop the workers without a word to the clients, and mark
    /// the box draining so the survivors take over at once, by the same
    /// path as a failure but with no detection delay and no stale state.
    pub(crate) fn drain(&self) -> Result<String, String> {
        let before = self.region.box_info().map(|i| i.connections).unwrap_or(0);
        self.dataplane.drain(true).map_err(|e| e.to_string())?;
        self.dataplane.freeze().map_err(|e| e.to_string())?;
        // The workers write their final checkpoints before they stop; the
        // stats command is answered only by a running worker, so wait for
        // every worker to be gone before telling the survivors.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.dataplane.stopped() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        self.region.set_state(BoxState::Draining);
        info!(
            connections = before,
            "draining: connections frozen and handed to the survivors"
        );
        Ok(format!(
            "box {} draining: {before} connections handed over",
            self.me
        ))
    }

    /// A planned move of `count` connections to box `to` (rebalancing):
    /// their final checkpoints are written and their TCBs dropped here
    /// silently, their frames forwarded to `to`, which restores them from
    /// our region through its admin API (`/adopt`); then their slots are
    /// cleared so that nobody restores them twice.
    pub(crate) fn migrate(&self, to: u16, count: usize) -> Result<String, String> {
        if to == self.me {
            return Err("a box cannot migrate connections to itself".into());
        }
        let info = self.segment.box_info(to).map_err(|e| e.to_string())?;
        if !matches!(info.state, BoxState::Alive | BoxState::Rejoined) {
            return Err(format!("box {to} is not alive"));
        }
        let member = self
            .members
            .iter()
            .find(|m| m.id == to)
            .ok_or_else(|| format!("box {to} is not a cluster member"))?;
        let mut picked = Vec::new();
        for slot in self.region.records().flatten() {
            if picked.len() == count {
                break;
            }
            let record = slot.bundle().records.iter().next().map(|r| r.view());
            if let Some(r) = record.filter(|r| {
                r.tcp.is_some_and(|t| {
                    t.tcp_state == baton_dataplane::tcp::State::Established.as_u8()
                })
            }) {
                let tuple = baton_dataplane::tcp::FourTuple {
                    local: r.local.socket_addr(),
                    remote: r.remote.socket_addr(),
                };
                picked.push((slot.slot(), tuple));
            }
        }
        if picked.is_empty() {
            return Ok(format!(
                "box {} has no established connection to move",
                self.me
            ));
        }
        let tuples = picked.iter().map(|(_, t)| *t).collect();
        let moved = self
            .dataplane
            .handoff(tuples, baton_dataplane::wire::ethernet::MacAddr(info.mac))
            .map_err(|e| e.to_string())?;
        // Only what the workers handed off: a connection that ended
        // meanwhile must not be restored elsewhere.
        let picked: Vec<_> = picked
            .into_iter()
            .filter(|(_, t)| moved.contains(t))
            .collect();
        let moved = moved.len();
        let slots: Vec<String> = picked.iter().map(|(s, _)| s.0.to_string()).collect();
        let admin = std::net::SocketAddr::new(member.back_addr.ip(), self.admin_port);
        let path = format!("/adopt?from={}&slots={}", self.me, slots.join(","));
        let answer = crate::admin::request(admin, &self.admin_token, "POST", &path);
        let mut writer = self.region.writer();
        for (slot, _) in &picked {
            let _ = writer.clear(*slot);
        }
        match answer {
            Ok((status, _)) if (200..300).contains(&status) => {
                info!(to, moved, "migrated connections");
                Ok(format!(
                    "box {}: {moved} connections moved to box {to}",
                    self.me
                ))
            }
            Ok((status, body)) => Err(format!(
                "box {to} refused the connections ({status}): {body}"
            )),
            Err(err) => Err(format!("box {to}'s admin API at {admin}: {err}")),
        }
    }

    /// Restores connections box `from` handed over (seed: "the takeover of
    /// connections can be applied specifically to load-balancing").
    pub(crate) fn adopt(&self, from: u16, slots: &[u32]) -> Result<String, String> {
        let orphans = takeover::orphans_in_slots(&self.segment, from, slots);
        let n = orphans.len();
        // Frames forwarded before the eager restore below reaches a worker
        // restore the connection lazily instead of meeting a reset.
        self.orphans.extend(orphans.iter().map(|o| {
            (
                (o.export.tuple.local, o.export.tuple.remote),
                OrphanRoute::Mine(Box::new(o.clone())),
            )
        }));
        restore_paced(&self.dataplane, orphans, 1);
        info!(from, adopted = n, "adopting connections handed over");
        Ok(format!(
            "box {} adopted {n} connections from box {from}",
            self.me
        ))
    }

    /// A dead box came back as a new member: it answers for its addresses
    /// again, so stop answering ARP for them. The connections restored here
    /// stay here; the rejoined box forwards their frames (see
    /// [`takeover::routes_to_holders`]).
    fn hand_back(&self, id: u16) {
        let ips = self
            .inherited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        for ip in ips.unwrap_or_default() {
            info!(peer = id, %ip, "peer rejoined: handing its address back");
            if let Err(err) = self.dataplane.remove_service_ip(ip) {
                warn!(%ip, %err, "cannot drop an inherited address");
            }
        }
        self.publish_service_ips();
    }

    /// Our box table entry lists every address we answer for, inherited
    /// ones included, so that whoever takes over from us takes them too.
    fn publish_service_ips(&self) {
        let Ok(info) = self.region.box_info() else {
            return;
        };
        let mut ips = self.own_ips.clone();
        let inherited = self.inherited.lock().unwrap_or_else(|p| p.into_inner());
        for ip in inherited.values().flatten() {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        if let Err(err) = self.region.set_identity(info.mac, &ips) {
            warn!(%err, "cannot publish inherited addresses (box table holds at most 4)");
        }
    }
}

/// The workers' takeover tallies at one moment, summed.
struct TakeoverSnapshot {
    restores: baton_dataplane::worker::RestoreStats,
    ring_drops: u64,
    counters: baton_dataplane::stats::Counters,
}

impl TakeoverSnapshot {
    fn of(dataplane: &DataplaneHandle) -> Self {
        let mut snap = TakeoverSnapshot {
            restores: Default::default(),
            ring_drops: 0,
            counters: Default::default(),
        };
        for w in dataplane.stats() {
            snap.restores.add(&w.restores);
            snap.ring_drops += w.ring_drops;
            snap.counters.add(&w.counters);
        }
        snap
    }
}

/// Logs how a takeover went from this box's side: how many of the
/// connections restored here synchronised with their client, how long each
/// took from restore to ready (p50/p99/max), how many could not, and what
/// the workers dropped meanwhile (full receive rings, no neighbour, TX).
/// A line one second after the takeover began (the goal: every connection
/// resumed within a second of the kill), and one when none is pending any
/// more or after 15 s. The evidence for "where did the time go".
fn spawn_takeover_report(
    dataplane: Arc<DataplaneHandle>,
    dead: u16,
    started: std::time::Instant,
    before: TakeoverSnapshot,
) {
    let _ = thread::Builder::new()
        .name("takeover-report".into())
        .spawn(move || {
            let mut reported_second = false;
            loop {
                thread::sleep(Duration::from_millis(50));
                let now = TakeoverSnapshot::of(&dataplane);
                let r = now.restores.since(&before.restores);
                let elapsed = started.elapsed();
                let done = r.pending == 0 || elapsed >= Duration::from_secs(15);
                let second = !reported_second && elapsed >= Duration::from_secs(1);
                if !(done || second) {
                    continue;
                }
                reported_second |= second;
                let ms = |q: f64| r.ready_quantile(q).map_or(-1, |d| d.as_millis() as i64);
                let c = &now.counters;
                let b = &before.counters;
                info!(
                    dead,
                    after_ms = elapsed.as_millis() as u64,
                    restored = r.restored,
                    ready = r.ready,
                    not_ready = r.not_ready,
                    pending = r.pending,
                    ready_p50_ms = ms(0.5),
                    ready_p99_ms = ms(0.99),
                    ready_max_ms = ms(1.0),
                    ring_drops = now.ring_drops.saturating_sub(before.ring_drops),
                    tx_dropped = c.tx_dropped.saturating_sub(b.tx_dropped),
                    no_neighbour = c.drop_no_neighbour.saturating_sub(b.drop_no_neighbour),
                    arp_requests = c.arp_requests_sent.saturating_sub(b.arp_requests_sent),
                    forwarded = c.tcp_forwarded.saturating_sub(b.tcp_forwarded),
                    lazy = c.tcp_lazy_restored.saturating_sub(b.tcp_lazy_restored),
                    "takeover {}: restore to ready (10 ms buckets)",
                    if done { "done" } else { "after one second" }
                );
                if done {
                    break;
                }
            }
        });
}

/// Hands restored connections to the workers in small batches: each
/// restore sends a probe at once, and every answer comes back through
/// one box, the one that inherited the dead box's address (it forwards
/// the others' share). Its receive ring holds 512 frames; at 256
/// probes per 2 ms from each of two survivors (the earlier pace) the
/// answers alone filled it every 2 ms, and a few ms of CPU starvation
/// lost thousands of them (measured: 22,850 ring drops in the first
/// second of a 10,000-connection takeover, restore-to-ready p50
/// 500 ms as probes were retried). So all survivors together send
/// [`RESTORE_BATCH`] probes per [`RESTORE_TICK`]: 10,000 connections in
/// ~320 ms, whatever the number of survivors, and the inheritor's ring
/// keeps slack for answers.
fn restore_paced(dataplane: &DataplaneHandle, orphans: Vec<takeover::Orphan>, survivors: usize) {
    let batch = (RESTORE_BATCH / survivors.max(1)).max(1);
    for (i, orphan) in orphans.into_iter().enumerate() {
        if i > 0 && i % batch == 0 {
            thread::sleep(RESTORE_TICK);
        }
        let data: RestoreData = orphan.response;
        if let Err(err) = dataplane.restore(orphan.export, Box::new(data)) {
            warn!(%err, "restore failed");
        }
    }
}

/// Restores handed to the workers per [`RESTORE_TICK`], by all survivors of
/// a takeover together (see [`restore_paced`]).
const RESTORE_BATCH: usize = 64;
/// The pace of restores.
const RESTORE_TICK: Duration = Duration::from_millis(2);

/// Addresses inherited from dead boxes, by the dead box's id.
type Inherited = Arc<std::sync::Mutex<std::collections::HashMap<u16, Vec<std::net::IpAddr>>>>;

/// Gratuitous ARP, repeated at 0, 20, 100, 300 and 1000 ms: a client that
/// misses one (loss, a busy LAN) learns from the next. Each announcement
/// first asks `still_ours`: an inherited address handed back to its
/// rejoined owner must never be announced again, or the LAN's caches
/// point at a box that no longer answers for it (new connections to the
/// rejoined box then lose their SYNs until the client re-resolves).
fn announce_repeatedly(
    dataplane: Arc<DataplaneHandle>,
    ips: Vec<std::net::IpAddr>,
    still_ours: impl Fn(&std::net::IpAddr) -> bool + Send + 'static,
) {
    let _ = thread::Builder::new().name("garp".into()).spawn(move || {
        for delay_ms in [0u64, 20, 100, 300, 1000] {
            thread::sleep(Duration::from_millis(delay_ms));
            for ip in ips.iter().filter(|ip| still_ours(ip)) {
                let _ = dataplane.announce(*ip);
            }
        }
    });
}

/// What this box believes of each peer: alive (with the epoch last seen) or
/// dead. A box is dead once its heartbeat is older than the detection time;
/// a new epoch means it restarted and is a new member.
struct PeerTracker {
    peers: Vec<(u16, PeerView)>,
    clock: HeartbeatClock,
    /// Per peer: its heartbeat counter when last seen to change, and our
    /// time of that change (for [`HeartbeatClock::Counter`]).
    beats: Vec<(u16, Option<(u64, u64)>)>,
}

/// How a heartbeat's age is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum HeartbeatClock {
    /// From the time the peer wrote with its beat: boxes sharing one
    /// segment share one host and its clock, so this is exact.
    PeerTime,
    /// From when we last saw the peer's counter change, by our own clock:
    /// replicated segments may cross hosts whose clocks differ, and a
    /// peer's clock ahead of ours would otherwise hide its death.
    Counter,
}

/// A change in a peer's life the control core acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transition {
    /// Declared dead: take its connections over.
    Died,
    /// Back with a new epoch after being dead: a new member.
    Rejoined,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PeerView {
    Unknown,
    Alive { epoch: u32 },
    Dead { epoch: u32 },
}

impl PeerTracker {
    fn new(ids: &[u16], clock: HeartbeatClock) -> Self {
        Self {
            peers: ids.iter().map(|&id| (id, PeerView::Unknown)).collect(),
            clock,
            beats: ids.iter().map(|&id| (id, None)).collect(),
        }
    }

    /// How long peer `id` has been silent, in ms.
    fn silence_ms(&mut self, id: u16, info: &baton_shmem::BoxInfo, now_ms: u64) -> u64 {
        let by_peer_time = now_ms.saturating_sub(info.heartbeat_ms);
        if self.clock == HeartbeatClock::PeerTime {
            return by_peer_time;
        }
        let Some((_, beat)) = self.beats.iter_mut().find(|(p, _)| *p == id) else {
            return by_peer_time;
        };
        match beat {
            Some((counter, at)) if *counter == info.heartbeat => now_ms.saturating_sub(*at),
            Some(b) => {
                *b = (info.heartbeat, now_ms);
                0
            }
            None => {
                // First sight: only the peer's own time can say whether
                // it beat lately (a box dead for an hour is not "alive
                // since now").
                *beat = Some((info.heartbeat, now_ms.saturating_sub(by_peer_time)));
                by_peer_time
            }
        }
    }

    /// Updates the view of peer `id`; says when it has just died or come back.
    fn observe(
        &mut self,
        id: u16,
        info: &baton_shmem::BoxInfo,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Option<Transition> {
        if info.state == BoxState::Unused {
            return None;
        }
        let silent_ms = self.silence_ms(id, info, now_ms);
        let (_, view) = self.peers.iter_mut().find(|(p, _)| *p == id)?;
        // A draining box has frozen its connections and asks to be taken
        // over now: for the survivors it is gone, without detection delay.
        let fresh = silent_ms <= deadline_ms && info.state != BoxState::Draining;
        let next = match (*view, fresh) {
            (PeerView::Dead { epoch }, true) if info.epoch == epoch => PeerView::Dead { epoch },
            (_, true) => PeerView::Alive { epoch: info.epoch },
            (PeerView::Alive { epoch }, false) => PeerView::Dead { epoch },
            (other, false) => other,
        };
        if next != *view {
            match next {
                PeerView::Alive { epoch } => info!(peer = id, epoch, "peer alive"),
                PeerView::Dead { epoch } if info.state == BoxState::Draining => {
                    info!(
                        peer = id,
                        epoch, "peer draining: taking its connections over"
                    )
                }
                PeerView::Dead { epoch } => warn!(
                    peer = id,
                    epoch, silent_ms, "peer declared dead: heartbeat missed"
                ),
                PeerView::Unknown => {}
            }
            let was_dead = matches!(*view, PeerView::Dead { .. });
            *view = next;
            return match next {
                PeerView::Dead { .. } => Some(Transition::Died),
                PeerView::Alive { .. } if was_dead => Some(Transition::Rejoined),
                _ => None,
            };
        }
        None
    }

    /// Whether peer `id` is believed alive.
    fn is_alive(&self, id: u16) -> bool {
        self.peers
            .iter()
            .any(|(p, v)| *p == id && matches!(v, PeerView::Alive { .. }))
    }

    /// The peers believed alive, and `me`.
    fn alive_with(&self, me: u16) -> Vec<u16> {
        let mut ids: Vec<u16> = self
            .peers
            .iter()
            .filter(|(_, v)| matches!(v, PeerView::Alive { .. }))
            .map(|(id, _)| *id)
            .collect();
        ids.push(me);
        ids.sort_unstable();
        ids
    }
}

/// SIGTERM, SIGINT (stop) and SIGUSR1 (drain), blocked so that `wait` can
/// take them synchronously.
struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    fn block() -> Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset; the
        // calls only touch that set and this thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            // SIGUSR1: drain (a planned move of every connection).
            libc::sigaddset(&mut set, libc::SIGUSR1);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(anyhow!(
                    "pthread_sigmask failed: {}",
                    std::io::Error::from_raw_os_error(rc)
                ));
            }
            Ok(Self { set })
        }
    }

    /// Waits for one of the signals; returns its number.
    fn wait(&self) -> i32 {
        let mut sig = 0;
        // SAFETY: the set was initialised in `block`; sig is a valid out pointer.
        unsafe { libc::sigwait(&self.set, &mut sig) };
        sig
    }
}

/// Where uploads in flight are kept: `[checkpoint] upload_dir`, beside the
/// segment, so survivors find them. Files nobody wrote for a long time
/// belong to uploads whose box died with no one to continue them (a live
/// upload writes its file, a stalled one fails after the idle timeout).
fn upload_spool(config: &baton_config::Config) -> Arc<crate::http::upload::Spool> {
    use crate::http::upload::Spool;
    if !config.checkpoint.enabled {
        return crate::http::context::private_spool();
    }
    let dir = config.checkpoint.upload_dir();
    match Spool::new(&dir) {
        Ok(spool) => {
            let stale = Duration::from_millis(config.limits.idle_timeout_ms.saturating_mul(10))
                .max(Duration::from_secs(600));
            let reaped = spool.reap(stale);
            if reaped > 0 {
                info!(dir = %dir.display(), reaped, "removed abandoned upload spool files");
            }
            Arc::new(spool)
        }
        Err(err) => {
            warn!(dir = %dir.display(), %err, "cannot use the upload directory: uploads in flight will not survive a takeover");
            crate::http::context::private_spool()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watcher_that_woke_late_or_whose_own_heartbeat_is_late_judges_nobody() {
        let i = Duration::from_millis(30);
        assert!(!was_starved_tick(Duration::from_millis(31), 29, i));
        assert!(!was_starved_tick(Duration::from_millis(65), 65, i));
        assert!(was_starved_tick(Duration::from_millis(120), 10, i));
        assert!(was_starved_tick(Duration::from_millis(30), 100, i));
    }

    fn info(epoch: u32, heartbeat_ms: u64) -> baton_shmem::BoxInfo {
        beat(epoch, 1, heartbeat_ms)
    }

    fn beat(epoch: u32, counter: u64, heartbeat_ms: u64) -> baton_shmem::BoxInfo {
        baton_shmem::BoxInfo {
            heartbeat: counter,
            heartbeat_ms,
            state: BoxState::Alive,
            epoch,
            mac: [0; 6],
            service_ips: vec![],
            connections: 0,
            checkpoints: 0,
        }
    }

    #[test]
    fn peer_is_dead_after_the_detection_time_and_rejoins_with_a_new_epoch() {
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        assert_eq!(t.observe(2, &info(1, 1000), 1010, 90), None);
        assert_eq!(t.peers[0].1, PeerView::Alive { epoch: 1 });
        assert_eq!(t.alive_with(1), vec![1, 2]);
        assert_eq!(
            t.observe(2, &info(1, 1000), 1091, 90),
            Some(Transition::Died),
            "declared dead once"
        );
        assert_eq!(t.peers[0].1, PeerView::Dead { epoch: 1 });
        assert_eq!(t.alive_with(1), vec![1]);
        // A stale beat of the old incarnation never revives it.
        t.observe(2, &info(1, 1080), 1100, 90);
        assert_eq!(t.peers[0].1, PeerView::Dead { epoch: 1 });
        assert_eq!(
            t.observe(2, &info(2, 1200), 1210, 90),
            Some(Transition::Rejoined)
        );
        assert_eq!(t.peers[0].1, PeerView::Alive { epoch: 2 });
    }

    #[test]
    fn across_hosts_a_peer_is_judged_by_its_counter_on_our_clock_not_by_its_clock() {
        // Its clock 10 s ahead: by its timestamps it would never die.
        let mut t = PeerTracker::new(&[2], HeartbeatClock::Counter);
        let ahead = 10_000;
        assert_eq!(t.observe(2, &beat(1, 7, 1000 + ahead), 1000, 90), None);
        assert_eq!(t.observe(2, &beat(1, 8, 1030 + ahead), 1030, 90), None);
        assert_eq!(t.observe(2, &beat(1, 8, 1030 + ahead), 1100, 90), None);
        assert_eq!(
            t.observe(2, &beat(1, 8, 1030 + ahead), 1121, 90),
            Some(Transition::Died),
            "silent 91 ms by our clock since its counter last moved"
        );
        // Its clock 10 s behind: alive as long as its counter moves.
        let mut t = PeerTracker::new(&[2], HeartbeatClock::Counter);
        let behind = 10_000;
        assert_eq!(
            t.observe(2, &beat(1, 1, 100_000 - behind), 100_000, 90),
            None
        );
        assert_eq!(
            t.peers[0].1,
            PeerView::Unknown,
            "first sight: its time says stale"
        );
        for (i, now) in (100_030..100_400).step_by(30).enumerate() {
            assert_eq!(
                t.observe(2, &beat(1, 2 + i as u64, now - behind), now, 90),
                None
            );
            assert_eq!(t.peers[0].1, PeerView::Alive { epoch: 1 });
        }
    }
}
