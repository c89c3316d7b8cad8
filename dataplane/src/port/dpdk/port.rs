//! [`DpdkPort`]: one queue pair of a DPDK device as a [`Port`], with the
//! steering of frames to the worker that owns their flow.

use super::eal::DpdkEal;
use super::error::{rte_errno, strerror, DpdkError};
use super::ffi;
use super::options::{DpdkOptions, MAX_IDLE_SLEEP};
use crate::port::fanout::{run_cbpf, FANOUT_PROGRAM};
use crate::port::{Port, PortError, RxMeta, TxBatch};
use crate::wire::ethernet::MacAddr;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::ffi::{CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Mbufs taken from the device per `rte_eth_rx_burst` call.
const RX_BURST: usize = 64;
/// Descriptors per RX and TX queue.
const RING_DESC: u16 = 1024;
/// Per-lcore mbuf cache of the pool (`RTE_MEMPOOL_CACHE_MAX_SIZE` is 512).
const POOL_CACHE: u32 = 256;
/// Frames waiting in one worker's inbox before steering drops them.
const INBOX_DEPTH: usize = 4096;

/// Counters of one [`DpdkPort`] (the worker keeps its own per-frame
/// counters; these are what only the port can see).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpdkPortStats {
    /// Frames received from this port's queue.
    pub rx_frames: u64,
    /// Frames handed to another worker's inbox (steering).
    pub steered_out: u64,
    /// Frames received through this port's inbox from other queues.
    pub steered_in: u64,
    /// Frames dropped because the owner's inbox was full.
    pub steer_dropped: u64,
    /// Chained mbufs dropped on receive.
    pub rx_multiseg_dropped: u64,
    /// Frames not sent: no mbuf, too long for one, or refused by the device.
    pub tx_dropped: u64,
}

/// How a steering port wakes the worker of another queue that sleeps in
/// [`Port::wait`] (DPDK gives it no fd to sleep on, so without this a
/// steered frame would wait out the sleep).
#[derive(Debug, Default)]
struct WakeSlot {
    /// Set while the queue's worker sleeps (or is about to).
    sleeping: AtomicBool,
    /// Our duplicate of the worker's wake eventfd, -1 if none yet.
    fd: AtomicI32,
    /// Owns every duplicate ever stored in `fd`: none is closed before the
    /// device goes, so a peer never writes to a reused descriptor number.
    owned: Mutex<Vec<OwnedFd>>,
}

impl WakeSlot {
    fn new() -> WakeSlot {
        WakeSlot {
            sleeping: AtomicBool::new(false),
            fd: AtomicI32::new(-1),
            owned: Mutex::new(Vec::new()),
        }
    }

    /// Wakes the worker if it sleeps. The caller has already put the
    /// frames in its inbox: with both sides SeqCst, either the sleeper
    /// sees them when it re-checks its inbox after raising `sleeping`, or
    /// we see `sleeping` here.
    fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            let fd = self.fd.load(Ordering::SeqCst);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: `fd` is an eventfd we own (in `owned`) for the
                // device's life; writing 8 bytes is its protocol.
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            }
        }
    }
}

/// A received mbuf in transit between workers.
struct Mbuf(*mut ffi::rte_mbuf);

// SAFETY: an mbuf belongs to whoever holds the pointer; DPDK's mempools
// are multi-producer/multi-consumer, so any thread may free it.
unsafe impl Send for Mbuf {}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is freed once.
        unsafe { ffi::baton_pktmbuf_free(self.0) };
    }
}

/// One started ethdev and its pool, shared by the ports of its queues;
/// stopped, closed and unplugged when the last port is dropped.
struct Device {
    port: u16,
    name: String,
    pool: *mut ffi::rte_mempool,
    mac: MacAddr,
    eal: DpdkEal,
}

// SAFETY: the port id and pool pointer are plain handles; DPDK allows
// per-queue RX/TX from different threads and MP/MC mempool use.
unsafe impl Send for Device {}
// SAFETY: as above; nothing is mutated through `&Device`.
unsafe impl Sync for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        let _g = self
            .eal
            .inner
            .plug
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // SAFETY: our port, started in open_group; no queue is polled any
        // more (every DpdkPort holding this Device is gone).
        unsafe {
            ffi::rte_eth_dev_stop(self.port);
            ffi::rte_eth_dev_close(self.port);
        }
        // A vdev's driver is removed too, so opening it again creates
        // fresh sockets (net_af_packet closes them on stop).
        if let Ok(c) = CString::new(self.name.as_str()) {
            // SAFETY: a valid C string; harmless for a non-vdev name.
            unsafe { ffi::rte_vdev_uninit(c.as_ptr()) };
        }
        // SAFETY: the device no longer uses the pool; mbufs still held
        // elsewhere are gone with every port (their inboxes drained).
        unsafe { ffi::rte_mempool_free(self.pool) };
    }
}

static POOL_SEQ: AtomicU32 = AtomicU32::new(0);

/// This thread's lcore id from `rte_thread_register`, given back when the
/// thread exits so short-lived threads do not use up the ids.
struct LcoreRegistration {
    registered: bool,
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: this thread registered itself; the EAL is never torn
            // down in this process.
            unsafe { ffi::rte_thread_unregister() };
        }
    }
}

thread_local! {
    static LCORE: std::cell::OnceCell<LcoreRegistration> = const { std::cell::OnceCell::new() };
}

/// Gives the calling (non-EAL) thread an lcore id once, so the mempool's
/// per-lcore cache serves its allocations and frees instead of the shared
/// ring. Without a free id (more threads than `RTE_MAX_LCORE`) the thread
/// simply goes on without a cache. EAL threads keep the id they have.
fn register_thread() {
    LCORE.with(|l| {
        l.get_or_init(|| {
            // SAFETY: reads this thread's lcore id.
            let has_id = unsafe { ffi::baton_lcore_id() } != u32::MAX;
            LcoreRegistration {
                // SAFETY: the EAL is initialised (a port exists).
                registered: !has_id && unsafe { ffi::rte_thread_register() } == 0,
            }
        });
    });
}

/// One RX/TX queue pair of a DPDK ethdev, used by one worker.
pub struct DpdkPort {
    queue: u16,
    queues: u16,
    inbox: Option<Receiver<Mbuf>>,
    peers: Vec<Sender<Mbuf>>,
    rx: Vec<*mut ffi::rte_mbuf>,
    tx: Vec<*mut ffi::rte_mbuf>,
    stats: DpdkPortStats,
    /// Shared so a control thread can read them while the worker runs.
    shared_stats: Arc<[AtomicU64; 6]>,
    /// Longest sleep in `wait`.
    idle_sleep: Duration,
    /// The wake fd last passed to `wait`, whose duplicate is in our slot.
    last_wake: Option<RawFd>,
    /// Per queue: whether its worker sleeps in `wait`, and how to wake it.
    slots: Arc<[WakeSlot]>,
    /// Last field, so it is dropped last: the inbox channels (which may
    /// still hold mbufs until their last handle goes) must be gone before
    /// the last port frees the pool with the device.
    dev: Arc<Device>,
}

// SAFETY: the raw mbuf arrays are scratch space owned by this value (empty
// between calls); the device is Send + Sync.
unsafe impl Send for DpdkPort {}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("device", &self.dev.name)
            .field("port", &self.dev.port)
            .field("queue", &self.queue)
            .field("queues", &self.queues)
            .field("mac", &self.dev.mac)
            .finish()
    }
}

fn dev_err(call: &'static str, port: u16, name: &str, r: c_int) -> DpdkError {
    DpdkError::Device {
        call,
        port,
        name: name.to_string(),
        reason: strerror(r),
    }
}

impl DpdkPort {
    /// Initialises the EAL from `opts` (or joins the running one) and opens
    /// its first vdev with `opts.queues` queue pairs.
    ///
    /// Logs the EAL arguments, and warns when the device's MAC is not
    /// [`DpdkOptions::expected_mac`].
    pub fn open_with(opts: &DpdkOptions) -> Result<Vec<DpdkPort>, DpdkError> {
        tracing::info!(eal_args = ?opts.eal_args(), "starting the DPDK EAL");
        let eal = DpdkEal::from_options(opts)?;
        let name = opts.device_name().ok_or_else(|| DpdkError::NoDevice {
            name: String::new(),
            avail: eal.ports_available(),
            hint: "no vdev configured".into(),
        })?;
        let mut ports = Self::open_group(&eal, name, opts.queues, opts.mbufs)?;
        for p in &mut ports {
            p.set_idle_sleep(opts.idle_sleep);
        }
        if let (Some(want), Some(port)) = (opts.expected_mac, ports.first()) {
            let have = port.mac();
            if have != want {
                tracing::warn!(configured = %want, device = %have, "the configured MAC differs from the DPDK device's MAC; the device's is used");
            }
        }
        Ok(ports)
    }

    /// Configures the ethdev `device` (e.g. `net_af_packet0`) with `queues`
    /// RX/TX queue pairs and a pool of `mbufs` mbufs, starts it with
    /// promiscuous mode off, and returns port `i` for worker `i`.
    pub fn open_group(
        eal: &DpdkEal,
        device: &str,
        queues: u16,
        mbufs: u32,
    ) -> Result<Vec<DpdkPort>, DpdkError> {
        let queues = queues.max(1);
        let port = eal.port_of(device)?;
        let name = device.to_string();

        // SAFETY: zeroed rte_eth_dev_info is valid; the call fills it.
        let mut info: ffi::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: a valid port id and a live out-parameter.
        let r = unsafe { ffi::rte_eth_dev_info_get(port, &mut info) };
        if r != 0 {
            return Err(dev_err("rte_eth_dev_info_get", port, &name, r));
        }
        let max = info.max_rx_queues.min(info.max_tx_queues);
        if max < queues {
            return Err(DpdkError::Queues {
                name,
                max,
                asked: queues,
            });
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: the driver's static, NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // net_af_packet opens one socket per qpair when the vdev is
        // created, all in one fanout group: the kernel hashes frames to
        // every one of them whether we configure its queue or not.
        if driver == "net_af_packet" && max != queues {
            return Err(DpdkError::QueuesUnpolled {
                name,
                qpairs: max,
                asked: queues,
            });
        }

        // All defaults: no RSS, no offloads (frames carry full checksums).
        let conf = ffi::rte_eth_conf::default();
        // SAFETY: valid port and configuration.
        let r = unsafe { ffi::rte_eth_dev_configure(port, queues, queues, &conf) };
        if r != 0 {
            return Err(dev_err("rte_eth_dev_configure", port, &name, r));
        }
        // SAFETY: valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(port) };
        // A NIC fills every RX descriptor with an mbuf up front and holds
        // the TX ones until sent, and each lcore's cache keeps some: a pool
        // smaller than that starves RX under load.
        let need = u32::from(queues) * (2 * u32::from(RING_DESC) + POOL_CACHE) + POOL_CACHE;
        let mbufs = mbufs.max(need);
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        // Pool names are global to the EAL and at most 25 characters.
        let pool_name = CString::new(format!("baton{port}_{seq}"))
            .map_err(|_| DpdkError::BadArgument(name.clone()))?;
        // SAFETY: a valid name; sizes within their types.
        let pool = unsafe {
            ffi::rte_pktmbuf_pool_create(
                pool_name.as_ptr(),
                mbufs.max(1023),
                POOL_CACHE,
                0,
                ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        if pool.is_null() {
            return Err(DpdkError::Mempool {
                mbufs,
                reason: strerror(rte_errno()),
            });
        }
        let mut dev = Device {
            port,
            name: name.clone(),
            pool,
            mac: MacAddr([0; 6]),
            eal: eal.clone(),
        };
        // From here on, dropping `dev` stops, closes and unplugs the device.
        let sock = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..queues {
            // SAFETY: valid port and queue; default (NULL) queue configs.
            let r = unsafe {
                ffi::rte_eth_rx_queue_setup(port, q, RING_DESC, sock, std::ptr::null(), pool)
            };
            if r != 0 {
                return Err(dev_err("rte_eth_rx_queue_setup", port, &name, r));
            }
            // SAFETY: as above.
            let r =
                unsafe { ffi::rte_eth_tx_queue_setup(port, q, RING_DESC, sock, std::ptr::null()) };
            if r != 0 {
                return Err(dev_err("rte_eth_tx_queue_setup", port, &name, r));
            }
        }
        // SAFETY: configured above.
        let r = unsafe { ffi::rte_eth_dev_start(port) };
        if r != 0 {
            return Err(dev_err("rte_eth_dev_start", port, &name, r));
        }
        // Frames for our MAC, broadcast ARP (and multicast, below): nothing
        // else is ours to see.
        // SAFETY: started port.
        let r = unsafe { ffi::rte_eth_promiscuous_disable(port) };
        if r != 0 && r != -libc::ENOTSUP {
            return Err(dev_err("rte_eth_promiscuous_disable", port, &name, r));
        }
        // IPv6 neighbour discovery arrives at multicast MACs (33:33:…,
        // the solicited-node groups of our addresses and all-nodes): a
        // NIC filters those unless told to take every multicast frame.
        // The worker keeps only the groups of its addresses.
        // SAFETY: started port.
        let r = unsafe { ffi::rte_eth_allmulticast_enable(port) };
        if r != 0 && r != -libc::ENOTSUP {
            return Err(dev_err("rte_eth_allmulticast_enable", port, &name, r));
        }
        let mut mac = ffi::rte_ether_addr::default();
        // SAFETY: valid port, live out-parameter.
        let r = unsafe { ffi::rte_eth_macaddr_get(port, &mut mac) };
        if r != 0 {
            return Err(dev_err("rte_eth_macaddr_get", port, &name, r));
        }
        dev.mac = MacAddr(mac.addr_bytes);
        tracing::info!(
            device = %name,
            port,
            driver = %driver,
            queues,
            mbufs,
            mac = %dev.mac,
            "DPDK port started"
        );
        let dev = Arc::new(dev);

        let (senders, receivers): (Vec<_>, Vec<_>) = (0..queues)
            .map(|_| crossbeam_channel::bounded::<Mbuf>(INBOX_DEPTH))
            .unzip();
        let steer = queues > 1;
        let slots: Arc<[WakeSlot]> = (0..queues).map(|_| WakeSlot::new()).collect();
        Ok(receivers
            .into_iter()
            .enumerate()
            .map(|(q, rx)| DpdkPort {
                dev: Arc::clone(&dev),
                queue: q as u16,
                queues,
                inbox: steer.then_some(rx),
                peers: if steer { senders.clone() } else { Vec::new() },
                rx: vec![std::ptr::null_mut(); RX_BURST],
                tx: Vec::new(),
                stats: DpdkPortStats::default(),
                shared_stats: Arc::new(Default::default()),
                idle_sleep: MAX_IDLE_SLEEP,
                last_wake: None,
                slots: Arc::clone(&slots),
            })
            .collect())
    }

    /// Sets the longest sleep of [`Port::wait`] (see
    /// [`DpdkOptions::idle_sleep`]).
    pub fn set_idle_sleep(&mut self, d: Duration) {
        self.idle_sleep = d;
    }

    /// The queue (= worker index) this port serves.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The DPDK port id of the device.
    pub fn port_id(&self) -> u16 {
        self.dev.port
    }

    /// The device name (e.g. `net_af_packet0`).
    pub fn device_name(&self) -> &str {
        &self.dev.name
    }

    /// This port's counters.
    pub fn stats(&self) -> DpdkPortStats {
        self.stats
    }

    /// A handle reading this port's counters from another thread
    /// (published after every burst).
    pub fn stats_handle(&self) -> DpdkStatsHandle {
        DpdkStatsHandle(Arc::clone(&self.shared_stats))
    }

    fn publish(&self) {
        let s = &self.stats;
        for (slot, v) in self.shared_stats.iter().zip([
            s.rx_frames,
            s.steered_out,
            s.steered_in,
            s.steer_dropped,
            s.rx_multiseg_dropped,
            s.tx_dropped,
        ]) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The queue whose worker owns `frame` by the dataplane's rule.
    fn owner(&self, frame: &[u8]) -> u16 {
        if frame.len() < 14 {
            return 0;
        }
        let proto = u16::from_be_bytes([frame[12], frame[13]]);
        let w = run_cbpf(&FANOUT_PROGRAM, proto, &frame[14..]);
        // The kernel takes the program's result modulo the group size.
        (w % u32::from(self.queues)) as u16
    }

    /// Lends the frame of `m` to `f`; false if it was not a single-segment
    /// frame (dropped). Does not free `m`.
    fn deliver<F: FnMut(&[u8], RxMeta)>(m: *mut ffi::rte_mbuf, f: &mut F) -> bool {
        let (mut data_len, mut pkt_len, mut trusted) = (0u16, 0u32, 0 as c_int);
        // SAFETY: `m` is a live mbuf we own.
        let p = unsafe { ffi::baton_pktmbuf_view(m, &mut data_len, &mut pkt_len, &mut trusted) };
        if p.is_null() || u32::from(data_len) != pkt_len {
            return false;
        }
        // SAFETY: the first segment holds `data_len` bytes at `p`, alive
        // until we free the mbuf after `f` returns.
        let frame = unsafe { std::slice::from_raw_parts(p, usize::from(data_len)) };
        f(
            frame,
            RxMeta {
                checksum_trusted: trusted != 0,
            },
        );
        true
    }

    /// The first segment's bytes, borrowed as long as `m` is held.
    fn view(m: &Mbuf) -> &[u8] {
        let (mut data_len, mut pkt_len, mut trusted) = (0u16, 0u32, 0 as c_int);
        // SAFETY: `m` is a live mbuf we own.
        let p = unsafe { ffi::baton_pktmbuf_view(m.0, &mut data_len, &mut pkt_len, &mut trusted) };
        if p.is_null() {
            return &[];
        }
        // SAFETY: as in `deliver`; the slice borrows `m`, which frees the
        // mbuf only when dropped.
        unsafe { std::slice::from_raw_parts(p, usize::from(data_len)) }
    }
}

/// Reads a [`DpdkPort`]'s counters from another thread.
#[derive(Clone, Debug)]
pub struct DpdkStatsHandle(Arc<[AtomicU64; 6]>);

impl DpdkStatsHandle {
    /// The counters as last published by the port.
    pub fn get(&self) -> DpdkPortStats {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        DpdkPortStats {
            rx_frames: v(0),
            steered_out: v(1),
            steered_in: v(2),
            steer_dropped: v(3),
            rx_multiseg_dropped: v(4),
            tx_dropped: v(5),
        }
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        // Frames other workers handed us go back to the pool before the
        // device (and the pool) may go.
        if let Some(inbox) = &self.inbox {
            while inbox.try_recv().is_ok() {}
        }
    }
}

impl Port for DpdkPort {
    fn mac(&self) -> MacAddr {
        self.dev.mac
    }

    fn rx_burst<F: FnMut(&[u8], RxMeta)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, PortError> {
        register_thread();
        let mut n = 0;
        // Frames other queues received for our flows come first: they are
        // older than anything in our own queue.
        if let Some(inbox) = &self.inbox {
            while n < max {
                let Ok(m) = inbox.try_recv() else { break };
                self.stats.steered_in += 1;
                if Self::deliver(m.0, &mut f) {
                    n += 1;
                } else {
                    self.stats.rx_multiseg_dropped += 1;
                }
                // `m` is freed here, after the callback.
            }
        }
        while n < max {
            let want = (max - n).min(self.rx.len()) as u16;
            // SAFETY: `rx` has room for `want` pointers; port and queue
            // were set up in open_group.
            let got = unsafe {
                ffi::baton_rx_burst(self.dev.port, self.queue, self.rx.as_mut_ptr(), want)
            };
            if got == 0 {
                break;
            }
            self.stats.rx_frames += u64::from(got);
            // Queues we handed frames to in this burst (bit per queue;
            // beyond 64 queues every queue is woken).
            let mut woken: u64 = 0;
            for i in 0..usize::from(got) {
                let m = Mbuf(self.rx[i]);
                if !self.peers.is_empty() {
                    let owner = self.owner(Self::view(&m));
                    if owner != self.queue {
                        match self.peers.get(usize::from(owner)).map(|p| p.try_send(m)) {
                            Some(Ok(())) => {
                                self.stats.steered_out += 1;
                                woken |= 1u64.checked_shl(u32::from(owner)).unwrap_or(u64::MAX);
                            }
                            // Full or gone: the frame is dropped (and
                            // freed by the returned value's drop); TCP
                            // retransmits.
                            Some(Err(TrySendError::Full(_)))
                            | Some(Err(TrySendError::Disconnected(_)))
                            | None => self.stats.steer_dropped += 1,
                        }
                        continue;
                    }
                }
                if Self::deliver(m.0, &mut f) {
                    n += 1;
                } else {
                    self.stats.rx_multiseg_dropped += 1;
                }
            }
            if woken != 0 {
                for (q, slot) in self.slots.iter().enumerate() {
                    if q >= 64 || woken & (1 << q) != 0 {
                        slot.wake();
                    }
                }
            }
            if usize::from(got) < usize::from(want) {
                break;
            }
        }
        self.publish();
        Ok(n)
    }

    fn tx_burst(&mut self, batch: &mut TxBatch) -> Result<usize, PortError> {
        register_thread();
        let total = batch.len();
        if total == 0 {
            return Ok(0);
        }
        self.tx.clear();
        self.tx.resize(total, std::ptr::null_mut());
        // SAFETY: `tx` has room for `total` pointers.
        let mut have = if unsafe {
            ffi::baton_pktmbuf_alloc_bulk(self.dev.pool, self.tx.as_mut_ptr(), total as u32)
        } == 0
        {
            total
        } else {
            // The pool cannot cover the whole burst: take what it has.
            let mut k = 0;
            // SAFETY: one pointer slot at index k < total.
            while k < total
                && unsafe {
                    ffi::baton_pktmbuf_alloc_bulk(self.dev.pool, self.tx.as_mut_ptr().add(k), 1)
                } == 0
            {
                k += 1;
            }
            k
        };
        // Copy each frame into its mbuf; a frame that does not fit is
        // dropped and its mbuf reused for the next one.
        let mut filled = 0;
        for fr in batch.frames() {
            if filled == have {
                break;
            }
            let m = self.tx[filled];
            let len = match u16::try_from(fr.len()) {
                Ok(l) if l > 0 => l,
                _ => continue,
            };
            // SAFETY: `m` is a fresh mbuf of our pool.
            let dst = unsafe { ffi::baton_pktmbuf_append(m, len) };
            if dst.is_null() {
                continue;
            }
            // SAFETY: append reserved `len` bytes at `dst`.
            unsafe { std::ptr::copy_nonoverlapping(fr.as_ptr(), dst, fr.len()) };
            filled += 1;
        }
        // Mbufs left without a frame go back.
        for m in self.tx.drain(filled..have) {
            // SAFETY: allocated above, never handed on.
            unsafe { ffi::baton_pktmbuf_free(m) };
        }
        have = filled;
        let mut sent = 0usize;
        let mut idle = 0;
        while sent < have && idle < 3 {
            let n = (have - sent).min(usize::from(u16::MAX)) as u16;
            // SAFETY: `tx[sent..have]` are filled mbufs; the device takes
            // ownership of the ones it accepts.
            let k = unsafe {
                ffi::baton_tx_burst(self.dev.port, self.queue, self.tx.as_mut_ptr().add(sent), n)
            };
            if k == 0 {
                idle += 1;
            }
            sent += usize::from(k);
        }
        for &m in &self.tx[sent..have] {
            // SAFETY: not accepted by the device, still ours.
            unsafe { ffi::baton_pktmbuf_free(m) };
        }
        self.tx.clear();
        self.stats.tx_dropped += (total - sent) as u64;
        batch.clear();
        self.publish();
        Ok(sent)
    }

    fn wait(&mut self, timeout: Option<Duration>, wake: Option<RawFd>) -> Result<(), PortError> {
        let t = timeout.map_or(self.idle_sleep, |t| t.min(self.idle_sleep));
        if t.is_zero() {
            return Ok(());
        }
        let slot = self.slots.get(usize::from(self.queue));
        if let (Some(slot), Some(w)) = (slot, wake) {
            if self.last_wake != Some(w) {
                // Keep our own duplicate: the caller's descriptor may be
                // closed while a peer still wants to wake us.
                // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller passed.
                let d = unsafe { libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 0) };
                if d >= 0 {
                    // SAFETY: a fresh descriptor we own.
                    let owned = unsafe { OwnedFd::from_raw_fd(d) };
                    slot.owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(owned);
                    slot.fd.store(d, Ordering::SeqCst);
                    self.last_wake = Some(w);
                }
            }
        }
        if let Some(slot) = slot {
            slot.sleeping.store(true, Ordering::SeqCst);
        }
        // Frames steered to us before we raised the flag: no sleep.
        if self.inbox.as_ref().is_some_and(|i| !i.is_empty()) {
            if let Some(slot) = slot {
                slot.sleeping.store(false, Ordering::SeqCst);
            }
            return Ok(());
        }
        let ts = libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        };
        let mut pfd = libc::pollfd {
            fd: wake.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        // ppoll, not poll: the sleep may be shorter than a millisecond.
        // SAFETY: one valid pollfd (a negative fd is ignored, and ppoll
        // then just sleeps) and a valid timespec.
        let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        let err = std::io::Error::last_os_error();
        if let Some(slot) = slot {
            slot.sleeping.store(false, Ordering::SeqCst);
        }
        if r < 0 && err.raw_os_error() != Some(libc::EINTR) {
            return Err(PortError::Os {
                call: "ppoll",
                source: err,
            });
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}
