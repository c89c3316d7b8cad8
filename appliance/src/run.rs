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
use crate::notify;
use crate::orphans::OrphanTable;
use crate::serve::checkpoint::{Cadence, Checkpointer};
use crate::serve::{BoxShared, CacheApp};
use crate::spool::Spool;
use crate::strays::Strays;
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
    /// The `[tls]` files cannot be used (checked at start too).
    #[error("[tls] files: {0}")]
    Tls(String),
    /// This box's id is not among the cluster's members.
    #[error("this box is not a cluster member")]
    NotMember,
    /// This start's epoch could not be recorded.
    #[error("beginning this start's epoch")]
    Epoch(#[source] crate::incarnation::IncarnationError),
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
    /// The view's Raft (replicated mode) did not start.
    #[error("starting the view's Raft")]
    Raft(#[source] baton_raft::StartError),
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
        slot_size: config.checkpoint.slot_bytes,
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
    // A panicked thread stops the whole box (crate::fatal).
    crate::fatal::install_panic_policy();
    notify::status("starting: mapping the checkpoint segment");

    let segment = open_segment(config)?;
    let region = segment
        .region(config.node.id)
        .map_err(RunError::OwnRegion)?;
    let previous = region.box_info().ok();
    let started = std::time::Instant::now();
    // This start's epoch, reserved (durably) before anything names it: the
    // Raft's transport names it in every datagram.
    let epoch_file = crate::incarnation::epoch_path(config);
    let durable = crate::incarnation::read_last(&epoch_file).map_err(RunError::Epoch)?;
    let epoch = crate::incarnation::reserve(&epoch_file, durable, region.epoch())
        .map_err(RunError::Epoch)?;
    let stores = control::view::store_for(config, &segment, epoch).map_err(RunError::Raft)?;
    // A restarted box whose previous incarnation is still a member of the
    // view stays silent, its region untouched, until the survivors have
    // taken that incarnation's connections over; then it routes each of
    // them to the survivor that holds it.
    // The previous incarnation is the newest the box table or the epoch
    // file knows: after a reboot that wiped the segment only the file
    // remembers it, and the durable view may still hold it.
    let in_table = previous
        .as_ref()
        .filter(|p| p.state != BoxState::Unused)
        .map(|p| p.epoch);
    let mut claimed_elsewhere = Vec::new();
    if let Some(prev_epoch) = in_table.max((durable > 0).then_some(durable)) {
        notify::status("waiting until the previous incarnation has left the view");
        claimed_elsewhere = await_predecessor(config, &segment, &stores, prev_epoch);
    }
    crate::incarnation::apply(&region, epoch);
    let state = match previous.as_ref().map(|p| p.state) {
        None | Some(BoxState::Unused) => BoxState::Alive,
        Some(_) => BoxState::Rejoined,
    };
    let mac = config.dataplane.mac.map(|m| m.0).unwrap_or([0; 6]);
    region
        .set_identity(mac, &config.service.ips)
        .map_err(RunError::BoxTable)?;
    region.set_connections(0);
    // The previous incarnation's load says nothing of this one.
    region.clear_load();
    // Nothing of the previous incarnation is restored here: its
    // survivors took it over, or it is lost (see above). Their claims
    // on its slots go too: what this incarnation writes there is its own.
    region.clear_all();
    region.clear_claims();
    region.heartbeat(unix_ms());
    region.set_state(state);
    info!(
        box_id = config.node.id,
        name = %config.node.name,
        epoch,
        ?state,
        segment = %config.checkpoint.segment_path.display(),
        slots = config.checkpoint.slots,
        slot_bytes = config.checkpoint.slot_bytes,
        segment_bytes_per_slot = segment.layout().bytes_per_slot().round() as u64,
        "box started"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = spawn_heartbeat(region.clone(), config, stop.clone())?;
    let (replication, replication_stats) = match config.checkpoint.mode {
        SegmentMode::Shared => (None, None),
        SegmentMode::Replicated => {
            // The view's other members: their replicas must be current
            // before the routes to connections they hold are read below.
            let members: Vec<u16> = stores
                .store
                .read()
                .map(|v| v.ids().filter(|&id| id != config.node.id).collect())
                .unwrap_or_default();
            let (thread, stats) = spawn_replication(&segment, config, &members, stop.clone())?;
            (Some(thread), Some(stats))
        }
    };
    let orphans = Arc::new(OrphanTable::default());
    let strays = Arc::new(Strays::new(segment.clone(), config.node.id));

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
    // Only the view's members hold connections: a dead box's stale records
    // must not route anything to it. The committed view, read through the
    // store: in replicated mode a restarted Raft node's own applied view
    // lags until the leader's commit reaches it, and an old view without
    // a member that holds connections now would leave those connections
    // unrouted (reset). No view (none readable, or none committed yet):
    // no filter.
    let members: Option<Vec<u16>> = stores
        .store
        .read()
        .ok()
        .filter(|v| v.number.0 > 0)
        .map(|v| v.ids().collect());
    let mut held_elsewhere = control::routes::routes_to_holders_among(
        &segment,
        config.node.id,
        &config.service.ips,
        &|h| members.as_ref().is_none_or(|m| m.contains(&h)),
    );
    let from_replicas = held_elsewhere.len();
    let from_previous = claimed_elsewhere.len();
    held_elsewhere.extend(claimed_elsewhere);
    if !held_elsewhere.is_empty() {
        info!(
            connections = held_elsewhere.len(),
            from_records = from_replicas,
            from_previous_incarnation = from_previous,
            "connections to our addresses live on other boxes (taken over earlier): forwarding them"
        );
        orphans.extend(held_elsewhere);
    }
    let http_workers = HttpWorkers::default();
    notify::status("starting the dataplane");
    let dataplane = Arc::new(start_dataplane(
        config,
        &region,
        cache.clone(),
        (orphans.clone(), strays.clone()),
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
        strays,
    ));
    // Start-up order (docs/MEMBERSHIP.md): the dataplane serves, the box
    // beats once more, and only then may it join: the watcher's first tick
    // proposes the join, and nobody judged this incarnation before.
    region.heartbeat(unix_ms());
    let mut agreed = control::view::AgreedView::new(
        Member {
            id: config.node.id,
            epoch,
        },
        stores.store,
    );
    if config.takeover.assignment == baton_config::Assignment::LeastLoaded {
        // The loads ride in the removals this box commits, so every
        // survivor splits its changes alike (TAKEOVER.md, "Load-aware
        // assignment").
        agreed.commit_loads(control::placement::LoadReader::new(
            segment.clone(),
            config.takeover.capacity,
        ));
    }
    agreed.started();
    // Replicated mode: a box cut off from the Raft's quorum stops serving.
    let quorum = match stores.raft {
        Some(raft) => Some(
            control::quorum::spawn_quorum_guard(
                control.clone(),
                raft,
                started,
                Duration::from_millis(config.raft.startup_grace_ms),
                Duration::from_millis(config.failure.heartbeat_interval_ms),
                stop.clone(),
            )
            .map_err(|e| RunError::Thread("quorum", e))?,
        ),
        None => None,
    };
    let watcher = control::spawn_watcher(control.clone(), config, agreed, stop.clone())
        .map_err(|e| RunError::Thread("watcher", e))?;
    let balancer = control::balance::spawn_balancer(
        control.clone(),
        config.balance,
        config.takeover.capacity,
        stop.clone(),
    )
    .map_err(|e| RunError::Thread("balancer", e))?;
    let admin = crate::admin::spawn(
        config.admin.listen,
        config.admin.token.clone(),
        Arc::new(
            BoxAdmin::new(control.clone(), cache.clone(), http_workers, config)
                .with_replication(replication_stats),
        ),
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
    notify::stopping(signal);
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if let Some(b) = balancer {
        let _ = b.join();
    }
    if let Some(q) = quorum {
        let _ = q.join();
    }
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

/// Waits, before a restarted box beats, until its previous incarnation
/// (`prev_epoch`) has left the agreed view and its survivors have taken
/// its connections over (`docs/MEMBERSHIP.md`, start-up); returns the
/// routes of those connections to the survivors that hold them.
///
/// Shared mode: the survivors' claims on the region's slots say when
/// each has read its share and where each connection went. Replicated
/// mode keeps no shared claims: every survivor splits the removed
/// incarnation by the committed change alone (its split by slot, `split_of`, on
/// its replica), reading its share as it acts on the commit, one tick
/// after it (plus a read's wait on the leader); so the box waits that
/// long after the removal and computes the same split from its own
/// region.
fn await_predecessor(
    config: &Config,
    segment: &Segment,
    stores: &control::view::Stores,
    prev_epoch: u32,
) -> Vec<(baton_dataplane::tcp::FourTuple, crate::orphans::OrphanRoute)> {
    let me = config.node.id;
    let interval = Duration::from_millis(config.failure.heartbeat_interval_ms);
    let predecessor = Member {
        id: me,
        epoch: prev_epoch,
    };
    let limit = Duration::from_millis(3 * config.failure.detection_ms() + 200);
    let store = stores.store.as_ref();
    match &stores.raft {
        None => {
            let grace = interval * 2 + Duration::from_millis(20);
            let taken_over = |since: u32| control::routes::region_taken_over(segment, me, since);
            control::view::await_predecessor_leaving(store, predecessor, &taken_over, grace, limit)
                .map(|since| control::routes::routes_from_claims(segment, me, me, since))
                .unwrap_or_default()
        }
        Some(raft) => {
            let grace = interval * 2 + raft.timings().deadline;
            let Some(since) = control::view::await_predecessor_leaving(
                store,
                predecessor,
                &|_| true,
                grace,
                limit,
            ) else {
                return Vec::new();
            };
            match control::view::removal_change(store, predecessor, since) {
                Some(change) => {
                    let split = baton_membership::split_of(&change);
                    control::routes::routes_from_split(segment, me, &|slot| split.owner(slot))
                }
                None => {
                    warn!(
                        view = since,
                        "the view changed again since it removed the previous incarnation: its connections are routed from the survivors' checkpoints only"
                    );
                    Vec::new()
                }
            }
        }
    }
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
    if config.tls.enabled {
        // HTTPS beside HTTP (issue 14).
        opts.listen_ports.push(config.tls.port);
    }
    if config.ftp.enabled {
        // FTP's control port and its passive data ports (issue 17).
        opts.listen_ports.push(config.ftp.port);
        opts.listen_ports
            .extend(config.ftp.passive_port_min..=config.ftp.passive_port_max);
    }
    if config.rtsp.enabled {
        // RTSP's control port; its RTP/RTCP server ports take datagrams
        // (RTCP receiver reports) (issue 18).
        opts.listen_ports.push(config.rtsp.port);
        opts.udp_ports = config.rtsp.udp_port_min..=config.rtsp.udp_port_max;
    }
    // Limits are per box in the config, per worker in the dataplane.
    opts.max_connections = config
        .limits
        .max_connections
        .min(dp.max_connections)
        .div_ceil(dp.workers.max(1));
    // Per box in the config; each worker holds its share of a client's
    // connections (the port spreads a client's 4-tuples over workers).
    opts.max_connections_per_client = dp.max_connections_per_client.div_ceil(dp.workers.max(1));
    opts.syn_backlog = dp.syn_backlog;
    // FTP's data connections reach their control connection's worker.
    opts.steer = crate::serve::ftp::steer(config);
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
    // Each worker starts its own count with this limit (SECURITY.md,
    // "Memory limits").
    opts.tcp.buffer_budget = baton_dataplane::tcp::BufferBudget::new(
        usize::try_from(config.dataplane.tcp_buffer_budget).unwrap_or(usize::MAX),
    );
    opts
}

/// Starts the workers, each with its HTTP cache app and checkpoint slots.
fn start_dataplane(
    config: &Config,
    region: &Region,
    cache: Arc<Cache>,
    (orphans, strays): (Arc<OrphanTable>, Arc<Strays>),
    http_workers: HttpWorkers,
) -> Result<DataplaneHandle> {
    let port = crate::port_config::port_config(config)?;
    // Built once: every worker's handshakes clone these settings.
    let tls = crate::tls_files::load(config)
        .map_err(|problems| RunError::Tls(problems.join("; ")))?
        .map(|settings| {
            Arc::new(crate::serve::tls::TlsServe {
                config: settings,
                port: config.tls.port,
                cluster_key: config.cluster.key.clone(),
            })
        });
    let opts = dataplane_options(config);
    let workers = opts.workers;
    let shared = BoxShared {
        cache,
        orphans,
        strays,
        spool: Spool::for_box(config),
        http_workers,
        limits: Limits::from_config(&config.limits),
        max_sessions: opts.max_connections,
        tls,
        ftp: crate::serve::ftp::FtpServe::from_config(config),
        rtsp: crate::serve::rtsp::RtspServe::from_config(config),
    };
    let cadence = Cadence::from_config(&config.checkpoint);
    let checkpoints = config.checkpoint.enabled;
    let region = region.clone();
    let box_id = config.node.id;
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
        let mut app = CacheApp::new(worker, checkpointer, &shared);
        app.arm_test_panic(crate::fatal::TestPanic::from_env(box_id, worker));
        app
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

/// Receive buffer of the replication socket: a 300,000-slot snapshot
/// window is 32 datagrams per peer, a busy tick a few hundred; 4 MiB also
/// absorbs ~60 flood datagrams of 64 KiB, or thousands of small ones,
/// while the thread is off the CPU.
const REPLICATION_RCVBUF: usize = 4 << 20;
/// Receive buffer of the heartbeat socket: heartbeats are small, but each
/// queued datagram is charged a page or more of buffer.
const HEARTBEAT_RCVBUF: usize = 1 << 20;

/// Replication for boxes that share no mapping (`checkpoint.mode =
/// "replicated"`): ships this box's dirty slots to every peer's back-LAN
/// address and its heartbeat to the next port (its own socket, so a flood
/// at the replication port cannot delay it), and applies theirs to the
/// local replica, over UDP authenticated with the cluster key (see
/// baton_shmem::replication). It must run on the same `Segment` the
/// workers write through: it finds changed slots in that mapping's dirty
/// bitmap. Real-time priority like the heartbeat thread: in this mode the
/// heartbeat reaches the peers only through this thread. If replication
/// cannot go on, the box stops (crate::fatal): serving unreplicated would
/// let the peers take its connections over while it still answers them.
///
/// Before it returns, it brings the replicas of `members` up to date (at
/// most [`CATCH_UP_LIMIT`]): a replica is wiped and resynced when its peer
/// is first heard after this box starts, and only changed slots are
/// shipped otherwise, so until the resync ends the replica lacks the
/// slots of connections that made no progress since (a download in
/// retransmission backoff after a takeover). The routes to connections
/// our addresses have on other boxes are read from these replicas.
fn spawn_replication(
    segment: &Segment,
    config: &Config,
    members: &[u16],
    stop: Arc<AtomicBool>,
) -> Result<(thread::JoinHandle<()>, Arc<baton_shmem::ReplicationStats>)> {
    let me = config.me().ok_or(RunError::NotMember)?;
    let bind = |addr: SocketAddr, rcvbuf: usize| -> Result<std::net::UdpSocket> {
        let socket = std::net::UdpSocket::bind(addr)
            .map_err(|source| RunError::ReplicationSocket { addr, source })?;
        if let Err(err) = baton_shmem::size_receive_buffer(&socket, rcvbuf) {
            warn!(%addr, %err, "replication socket keeps the default receive buffer");
        }
        Ok(socket)
    };
    let socket = bind(me.back_addr, REPLICATION_RCVBUF)?;
    let hb_addr = baton_shmem::heartbeat_addr(me.back_addr).ok_or(RunError::Replication(
        baton_shmem::ReplicationError::NoHeartbeatPort(me.back_addr),
    ))?;
    let hb_socket = bind(hb_addr, HEARTBEAT_RCVBUF)?;
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
    .and_then(|r| r.with_heartbeat_socket(hb_socket))
    .map_err(RunError::Replication)?;
    let stats = replicator.stats();
    // Ship at the heartbeat cadence: a peer's replica is as fresh as its
    // view of our heartbeat (which goes out three times per tick).
    let tick = Duration::from_millis(config.failure.heartbeat_interval_ms.max(1));
    info!(addr = %me.back_addr, heartbeats = %hb_addr, "replicating the checkpoint segment to the peers");
    catch_up(&mut replicator, members, tick);
    let thread = thread::Builder::new()
        .name("replication".into())
        .spawn(move || {
            realtime_priority("replication");
            if let Err(err) = replicator.run(&stop, tick) {
                crate::fatal::stop_box("replication", &err);
            }
        })
        .map_err(|e| RunError::Thread("replication", e))?;
    Ok((thread, stats))
}

/// How long a starting box waits at most for its replicas of the view's
/// members to catch up.
const CATCH_UP_LIMIT: Duration = Duration::from_millis(1500);

/// Runs `replicator` a tick at a time until its replicas of `members`
/// are complete, or [`CATCH_UP_LIMIT`].
fn catch_up(replicator: &mut baton_shmem::Replicator, members: &[u16], tick: Duration) {
    if members.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    loop {
        let behind: Vec<u16> = members
            .iter()
            .copied()
            .filter(|&m| !replicator.in_sync(m))
            .collect();
        if behind.is_empty() {
            info!(
                waited_ms = started.elapsed().as_millis() as u64,
                "replicas of the view's members are up to date"
            );
            return;
        }
        if started.elapsed() >= CATCH_UP_LIMIT {
            warn!(
                ?behind,
                waited_ms = started.elapsed().as_millis() as u64,
                "replicas still catching up: routes to connections those boxes hold may be missing"
            );
            return;
        }
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(tick);
                done.store(true, Ordering::Relaxed);
            });
            if let Err(err) = replicator.run(&done, tick) {
                warn!(%err, "replication while catching up");
            }
        });
    }
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
