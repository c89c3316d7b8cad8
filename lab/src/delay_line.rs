//! The delay line (`baton lab delay-line`): a userspace relay that stands in
//! for netem, which this kernel lacks (LAB.md, "Impairment without netem").
//!
//! `lab impair` rewires a node's bridge port through it: the bridge hands
//! frames for the node to the `lan` device, the relay holds each for
//! delay ± jitter and sends it out of the `node` device; frames from the
//! node pass the other way at once. Both sockets are AF_PACKET raw sockets
//! with a virtio-net header (PACKET_VNET_HDR, packet(7)), so GSO
//! super-frames and frames whose checksum is left to offload cross the
//! relay intact: the kernel describes them in the header on receive and
//! rebuilds them from it on send.
//!
//! The loop sleeps in ppoll until a socket is readable or the next held
//! frame is due; it never spins. It knows two devices and a delay: nothing
//! of the lab's names or of what the frames carry.
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Result};
use tracing::{info, warn};

/// Arguments of the hidden `baton lab delay-line`.
#[derive(clap::Args, Debug, Clone)]
pub struct DelayArgs {
    /// Device toward the node: held frames leave here, the node's frames
    /// arrive here.
    #[arg(long)]
    pub node_dev: String,
    /// Device toward the bridge: frames for the node arrive here.
    #[arg(long)]
    pub lan_dev: String,
    /// Mean delay added to frames toward the node, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub delay: f64,
    /// Uniform jitter (±) around the delay, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub jitter: f64,
    /// Percent of frames that skip the delay, overtaking earlier ones.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Percent of frames delivered twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    /// File created once both sockets are bound.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// linux/if_packet.h: deliver and accept a struct virtio_net_hdr before
/// each frame.
const PACKET_VNET_HDR: libc::c_int = 15;
/// linux/if_packet.h: do not loop our own transmissions back to us.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Largest frame we relay: a 64 KiB GSO frame plus the virtio-net header.
const MAX_FRAME: usize = 65_536 + 256;
/// Bytes the line may hold before it drops new frames, like a queue limit.
const MAX_HELD_BYTES: usize = 64 << 20;

/// A small xorshift64* generator: the line needs cheap coin flips, not
/// cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced, xorshift needs a
    /// non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: f64) -> bool {
        percent > 0.0 && self.unit() * 100.0 < percent
    }
}

/// How long each frame toward the node is held.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Mean delay.
    pub delay: Duration,
    /// Uniform ± spread around it.
    pub jitter: Duration,
    /// Percent of frames that are not held at all.
    pub reorder: f64,
    /// Percent of frames sent twice.
    pub duplicate: f64,
}

impl Shape {
    /// Hold time of the next frame.
    pub fn hold(&self, rng: &mut Rng) -> Duration {
        if rng.chance(self.reorder) {
            return Duration::ZERO;
        }
        let spread = self.jitter.as_secs_f64() * (2.0 * rng.unit() - 1.0);
        Duration::from_secs_f64((self.delay.as_secs_f64() + spread).max(0.0))
    }
}

/// A frame waiting for its time.
struct Held {
    due: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due && self.seq == o.seq
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first;
    // frames due at the same instant leave in arrival order.
    fn cmp(&self, o: &Self) -> Ordering {
        o.due.cmp(&self.due).then(o.seq.cmp(&self.seq))
    }
}

/// Frames held until they are due, earliest first, bounded in bytes.
#[derive(Default)]
pub struct DelayQueue {
    heap: BinaryHeap<Held>,
    seq: u64,
    bytes: usize,
    /// Frames dropped because the queue was full.
    pub dropped: u64,
}

impl DelayQueue {
    /// Holds `frame` until `due`; drops it when the queue is full.
    pub fn push(&mut self, due: Instant, frame: Vec<u8>) {
        if self.bytes + frame.len() > MAX_HELD_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += frame.len();
        self.seq += 1;
        self.heap.push(Held {
            due,
            seq: self.seq,
            frame,
        });
    }

    /// When the earliest frame is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|h| h.due)
    }

    /// Takes the earliest frame if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.heap.peek()?.due > now {
            return None;
        }
        let h = self.heap.pop()?;
        self.bytes -= h.frame.len();
        Some(h.frame)
    }

    /// Number of frames held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Opens a raw AF_PACKET socket on `dev` with virtio-net headers.
fn open_socket(dev: &str) -> Result<OwnedFd> {
    let name = CString::new(dev).context("device name")?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("no device {dev}: {}", io::Error::last_os_error());
    }
    // Protocol 0 at creation: the socket receives nothing until bound to the
    // one device, so no frame of another device slips in (packet(7)).
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        bail!("socket(AF_PACKET): {}", io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let set = |level: libc::c_int, opt: libc::c_int, val: libc::c_int| -> Result<()> {
        // SAFETY: val lives across the call; its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                opt,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            bail!(
                "setsockopt({level}, {opt}) on {dev}: {}",
                io::Error::last_os_error()
            );
        }
        Ok(())
    };
    set(libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    set(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
    // Room for a burst while the line sleeps; root may exceed rmem_max.
    let _ = set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
    let _ = set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
    // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll and its size is passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        bail!("bind to {dev}: {}", io::Error::last_os_error());
    }
    Ok(fd)
}

/// Receives one frame; None when nothing is waiting.
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: sll and len are valid out-parameters; buf is ours.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_TRUNC,
            &mut sll as *mut libc::sockaddr_ll as *mut libc::sockaddr,
            &mut len,
        )
    };
    if n < 0 {
        return None;
    }
    let n = n as usize;
    // Our own transmissions are filtered by PACKET_IGNORE_OUTGOING; this is
    // the same check for kernels that predate it. Truncated frames cannot
    // be relayed faithfully: drop them (count as 0-length).
    if sll.sll_pkttype == libc::PACKET_OUTGOING || n > buf.len() {
        return Some(0);
    }
    Some(n)
}

fn send(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: frame is a valid slice for the duration of the call.
    let r = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
    if r < 0 {
        // A full queue or a shaped device below us drops the frame, which is
        // what a congested link does too.
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN)) {
            warn!("send: {e}");
        }
    }
}

/// Runs the delay line until killed.
pub fn run(args: DelayArgs) -> Result<()> {
    let shape = Shape {
        delay: Duration::from_secs_f64(args.delay.max(0.0) / 1000.0),
        jitter: Duration::from_secs_f64(args.jitter.max(0.0) / 1000.0),
        reorder: args.reorder,
        duplicate: args.duplicate,
    };
    let node = open_socket(&args.node_dev)?;
    let lan = open_socket(&args.lan_dev)?;
    info!(
        "delay line {} -> {}: {:?} ± {:?}, reorder {} %, duplicate {} %",
        args.lan_dev, args.node_dev, shape.delay, shape.jitter, shape.reorder, shape.duplicate
    );
    if let Some(ready) = &args.ready_file {
        std::fs::write(ready, b"relaying\n")
            .with_context(|| format!("cannot write {}", ready.display()))?;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let mut rng = Rng::new(seed);
    let mut queue = DelayQueue::default();
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let now = Instant::now();
        while let Some(frame) = queue.pop_due(now) {
            send(&node, &frame);
        }
        let timeout = queue
            .next_due()
            .map(|d| d.saturating_duration_since(Instant::now()));
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let mut fds = [
            libc::pollfd {
                fd: lan.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: node.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds and ts outlive the call; a null timeout waits forever.
        let r = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                ts.as_ref()
                    .map_or(std::ptr::null(), |t| t as *const libc::timespec),
                std::ptr::null(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            bail!("ppoll: {e}");
        }
        // Toward the node: held. A bounded batch per wake keeps both
        // directions moving under load.
        for _ in 0..256 {
            let Some(n) = recv(&lan, &mut buf) else { break };
            if n == 0 {
                continue;
            }
            let arrived = Instant::now();
            let copies = if rng.chance(shape.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                let hold = shape.hold(&mut rng);
                if hold.is_zero() {
                    // Sent at once: it overtakes whatever is held.
                    send(&node, &buf[..n]);
                } else {
                    queue.push(arrived + hold, buf[..n].to_vec());
                }
            }
        }
        // From the node: at once.
        for _ in 0..256 {
            let Some(n) = recv(&node, &mut buf) else {
                break;
            };
            if n > 0 {
                send(&lan, &buf[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_releases_frames_in_due_order_not_arrival_order() {
        let t0 = Instant::now();
        let mut q = DelayQueue::default();
        q.push(t0 + Duration::from_millis(20), vec![1]);
        q.push(t0 + Duration::from_millis(5), vec![2]);
        q.push(t0 + Duration::from_millis(20), vec![3]);
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(5)));
        assert_eq!(q.pop_due(t0), None, "nothing is due yet");
        assert_eq!(q.pop_due(t0 + Duration::from_millis(5)), Some(vec![2]));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(19)), None);
        let later = t0 + Duration::from_millis(30);
        assert_eq!(
            q.pop_due(later),
            Some(vec![1]),
            "same due time keeps arrival order"
        );
        assert_eq!(q.pop_due(later), Some(vec![3]));
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_drops_new_frames() {
        let t0 = Instant::now();
        let mut q = DelayQueue::default();
        for _ in 0..(MAX_HELD_BYTES / 65_536) {
            q.push(t0, vec![0; 65_536]);
        }
        q.push(t0, vec![0; 65_536]);
        assert_eq!(q.dropped, 1);
        assert_eq!(q.len(), MAX_HELD_BYTES / 65_536);
    }

    #[test]
    fn hold_times_stay_within_delay_plus_minus_jitter() {
        let shape = Shape {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            reorder: 0.0,
            duplicate: 0.0,
        };
        let mut rng = Rng::new(7);
        let holds: Vec<Duration> = (0..10_000).map(|_| shape.hold(&mut rng)).collect();
        assert!(holds
            .iter()
            .all(|h| *h >= Duration::from_millis(15) && *h <= Duration::from_millis(25)));
        let mean = holds.iter().map(Duration::as_secs_f64).sum::<f64>() / holds.len() as f64;
        assert!((mean - 0.020).abs() < 0.0005, "mean {mean}");
    }

    #[test]
    fn reorder_percent_of_frames_skip_the_delay() {
        let shape = Shape {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            reorder: 25.0,
            duplicate: 0.0,
        };
        let mut rng = Rng::new(11);
        let skipped = (0..10_000)
            .filter(|_| shape.hold(&mut rng).is_zero())
            .count();
        assert!((2_200..2_800).contains(&skipped), "{skipped}");
    }
}
