//! `baton run`: one appliance box, wired. It maps the checkpoint segment,
//! (with a shared segment) waits until its previous incarnation has left
//! the agreed view, announces the box in the box table (new epoch, state,
//! MAC, service IPs), clears its slots, starts the heartbeat, the
//! replication of the segment where boxes share no mapping, the origin
//! fetchers, the dataplane workers (one cache app each), beats once more and
//! only then starts the control core's watcher (whose first tick proposes
//! the join) and the admin API; then runs until SIGTERM or SIGINT (SIGUSR1
//! drains).
//!
//! Only wiring lives here: what the threads do is in `crate::control`,
//! `crate::serve` and `crate::admin`; the OS calls in `crate::sys`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use baton_config::{Config, PollMode, SegmentMode};
use baton_dataplane::{DataplaneHandle, DataplaneOptions};
use baton_membership::Member;
use baton_shmem::{BoxState, BoxTableError, Layout, Region, Segment, SegmentError};
use tracing::{info, warn};

use crate::boxadmin::BoxAdmin;
use crate::cache::{Cache, CacheSettings, Origin};
use crate::clock::unix_ms;
use crate::control::{self, announce_repeatedly, Control};
use crate::http::{HttpWorkers, Limits};
use crate::orphans::OrphanTable;
use crate::serve::checkpoint::{Cadence, Checkpointer};
use crate::serve::{BoxShared, CacheApp};
use crate::spool::Spool;
use crate::sys::{pin_to_cpu, realtime_priority, StopSignals};

/// Why a box could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The stop signals could not be blocked.
    #[error("blocking the stop signals")]
    Signals(#[source] std::io::Error),
    /// The checkpoint segment cannot be mapped.
    #[error("checkpoint segment {}", path.display())]
    Segment {
        /// The configured segment.
        path: PathBuf,
        /// Why.
        #[source]
        source: SegmentError,
    },
    /// The segment has no region for this box.
    #[error("own region of the segment")]
    OwnRegion(#[source] SegmentError),
    /// The box table entry cannot hold the box's identity.
    #[error("writing the box table entry")]
    BoxTable(#[source] BoxTableError),
    /// `cache.origin` resolves to no address.
    #[error("cache.origin {0:?} names no reachable address")]
    Origin(String),
    /// The origin fetcher threads did not start.
    #[error("starting the origin fetchers")]
    Fetchers(#[source] std::io::Error),
    /// The dataplane did not start.
    #[error("starting the dataplane: {backend}")]
    Dataplane {
        /// The port, as its backend names it ("AF_PACKET on front0").
        backend: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The `[dataplane]` table names no port this build can open.
    #[error(transparent)]
    Port(#[from] crate::port_config::PortConfigError),
    /// This box's id is not among the cluster's members.
    #[error("this box is not a cluster member")]
    NotMember,
    /// The replication socket cannot be bound.
    #[error("binding the replication socket on {addr}")]
    ReplicationSocket {
        /// The box's back-LAN address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Replication did not start.
    #[error("starting replication")]
    Replication(#[source] baton_shmem::ReplicationError),
    /// A thread of the box did not start.
    #[error("starting the {0} thread")]
    Thread(&'static str, #[source] std::io::Error),
    /// The admin API cannot listen.
    #[error("admin API on {addr}")]
    Admin {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The ready file cannot be written.
    #[error("writing ready file {}", path.display())]
    ReadyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What [`run`] returns.
pub type Result<T, E = RunError> = std::result::Result<T, E>;

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
    Segment::open_or_create(path, layout_of(config)).map_err(|source| RunError::Segment {
        path: path.clone(),
        source,
    })
}

/// Runs the box `config` describes until SIGTERM or SIGINT; creates
/// `ready_file` (if any) once it serves. Logging is the caller's to set up.
pub fn run(config: &Config, ready_file: Option<&Path>) -> Result<()> {
    // Block the stop signals before any thread starts, so every thread
    // inherits the mask and the main thread alone takes them in sigwait.
    let signals = StopSignals::block().map_err(RunError::Signals)?;

    let segment = open_segment(config)?;
    let region = segment
        .region(config.node.id)
        .map_err(RunError::OwnRegion)?;
    let previous = region.box_info().ok();
    let store = control::view::store_for(config, &segment);
    // A restarted box whose previous incarnation is still a member of the
    // view stays silent, its region untouched, until the survivors have
    // taken that incarnation's connections over; the claims they made
    // then say where each went.
    let mut claimed_elsewhere = Vec::new();
    if let (Some(store), Some(prev)) = (&store, previous.as_ref()) {
        if prev.state != BoxState::Unused {
            let interval = Duration::from_millis(config.failure.heartbeat_interval_ms);
            let predecessor = Member {
                id: config.node.id,
                epoch: prev.epoch,
            };
            let limit = Duration::from_millis(3 * config.failure.detection_ms() + 200);
            let grace = interval * 2 + Duration::from_millis(20);
            let taken_over =
                |since: u32| control::takeover::region_taken_over(&segment, config.node.id, since);
            if let Some(since) = control::view::await_predecessor_leaving(
                store.as_ref(),
                predecessor,
                &taken_over,
                grace,
                limit,
            ) {
                claimed_elsewhere =
                    control::takeover::routes_from_claims(&segment, config.node.id, since);
            }
        }
    }
    let epoch = region.begin_epoch();
    let state = match previous.as_ref().map(|p| p.state) {
        None | Some(BoxState::Unused) => BoxState::Alive,
        Some(_) => BoxState::Rejoined,
    };
    let mac = config.dataplane.mac.map(|m| m.0).unwrap_or([0; 6]);
    region
        .set_identity(mac, &config.service.ips)
        .map_err(RunError::BoxTable)?;
    region.set_connections(0);
    if store.is_some() {
        // Nothing of the previous incarnation is restored here: its
        // survivors took it over, or it is lost (see above).
        region.clear_all();
    }
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
    let heartbeat = spawn_heartbeat(region.clone(), config, stop.clone())?;
    let replication = match config.checkpoint.mode {
        SegmentMode::Shared => None,
        SegmentMode::Replicated => Some(spawn_replication(&segment, config, stop.clone())?),
    };
    let orphans = Arc::new(OrphanTable::default());

    let origin = Origin::from_config(&config.cache)
        .ok_or_else(|| RunError::Origin(config.cache.origin.clone()))?;
    let (cache, fetchers) = Cache::start(
        CacheSettings::from_config(&config.cache),
        origin,
        config.cache.fetchers,
    )
    .map_err(RunError::Fetchers)?;
    // Before the dataplane answers for our addresses: frames of connections
    // to them that other boxes hold now must be forwarded, never reset.
    // With an agreed view only its members hold connections: a dead box's
    // stale records must not route anything to it.
    let members: Option<Vec<u16>> = store
        .as_ref()
        .and_then(|s| s.read().ok())
        .map(|v| v.ids().collect());
    let mut held_elsewhere = control::takeover::routes_to_holders_among(
        &segment,
        config.node.id,
        &config.service.ips,
        &|h| members.as_ref().is_none_or(|m| m.contains(&h)),
    );
    held_elsewhere.extend(claimed_elsewhere);
    if !held_elsewhere.is_empty() {
        info!(
            connections = held_elsewhere.len(),
            "connections to our addresses live on other boxes (taken over earlier): forwarding them"
        );
        orphans.extend(held_elsewhere);
    }
    let http_workers = HttpWorkers::default();
    let dataplane = Arc::new(start_dataplane(
        config,
        &region,
        cache.clone(),
        orphans.clone(),
        http_workers.clone(),
    )?);
    region
        .set_identity(dataplane.mac().0, &config.service.ips)
        .map_err(RunError::BoxTable)?;
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

    let control = Arc::new(Control::new(
        config,
        segment.clone(),
        region.clone(),
        dataplane.clone(),
        orphans,
    ));
    // Start-up order (docs/MEMBERSHIP.md): the dataplane serves, the box
    // beats once more, and only then may it join: the watcher's first tick
    // proposes the join, and nobody judged this incarnation before.
    region.heartbeat(unix_ms());
    let agreed = store.map(|store| {
        let mut view = control::view::AgreedView::new(
            Member {
                id: config.node.id,
                epoch,
            },
            store,
        );
        view.started();
        view
    });
    let watcher = control::spawn_watcher(control.clone(), config, agreed, stop.clone())
        .map_err(|e| RunError::Thread("watcher", e))?;
    let admin = crate::admin::spawn(
        config.admin.listen,
        config.admin.token.clone(),
        Arc::new(BoxAdmin::new(
            control.clone(),
            cache.clone(),
            http_workers,
            config,
        )),
    )
    .map_err(|source| RunError::Admin {
        addr: config.admin.listen,
        source,
    })?;

    if let Some(ready) = ready_file {
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
    // With checkpoints, requests and FINs are acknowledged only by the
    // checkpoint that covers them (a survivor then never finds a client
    // ahead of what it acknowledged); without, nothing would commit them.
    opts.tcp.hold_acks = config.checkpoint.enabled;
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
    http_workers: HttpWorkers,
) -> Result<DataplaneHandle> {
    let port = crate::port_config::port_config(config)?;
    let opts = dataplane_options(config);
    let workers = opts.workers;
    let shared = BoxShared {
        cache,
        orphans,
        spool: Spool::for_box(config),
        http_workers,
        limits: Limits::from_config(&config.limits),
        max_sessions: opts.max_connections,
    };
    let cadence = Cadence::from_config(&config.checkpoint);
    let checkpoints = config.checkpoint.enabled;
    let region = region.clone();
    let factory = move |worker: usize| {
        let checkpointer = if checkpoints {
            match Checkpointer::new(&region, worker, workers, cadence) {
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
    baton_dataplane::start(port, opts, factory).map_err(|e| RunError::Dataplane {
        backend,
        source: Box::new(e),
    })
}

fn mark_ready(path: &Path) -> Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
        RunError::ReadyFile {
            path: path.to_path_buf(),
            source,
        }
    })
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
    let me = config.me().ok_or(RunError::NotMember)?;
    let socket =
        std::net::UdpSocket::bind(me.back_addr).map_err(|source| RunError::ReplicationSocket {
            addr: me.back_addr,
            source,
        })?;
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
    .map_err(RunError::Replication)?;
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
        .map_err(|e| RunError::Thread("replication", e))
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
        .map_err(|e| RunError::Thread("heartbeat", e))
}
