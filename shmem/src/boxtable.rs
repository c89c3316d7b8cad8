//! The box table: one entry at the start of each region, written by the
//! box that owns the region and read by everyone for failure detection
//! (Fig. 6: a box that stops heartbeating is declared dead by the
//! survivors) and for the lab's status view.
//!
//! Every field is an aligned atomic word, so no read is ever torn. MAC and
//! service IPs change together under a small seqlock of their own.
//!
//! Entry layout (offsets within the entry's first 256 bytes, little-endian;
//! bytes 256..1024 hold the ring of committed loads, `crate::loads`):
//!
//! | off | field |
//! |---|---|
//! | 0 | heartbeat counter (u64) |
//! | 8 | heartbeat time, unix ms (u64) |
//! | 16 | state (u32: 0 unused, 1 alive, 2 dead, 3 draining, 4 rejoined) |
//! | 20 | epoch (u32) |
//! | 24 | connections owned (i64) |
//! | 32 | checkpoints written (u64) |
//! | 40 | identity seqlock (u64, odd while MAC/IPs change) |
//! | 48 | MAC (low 48 bits of a u64, first octet in the lowest byte) |
//! | 56 | service IP count (bits 0..8) and v6 flags (bit 8+i for IP i) |
//! | 64 | service IPs 0..4, 16 bytes each (v4 in the first 4 bytes) |
//! | 128 | load version (u32: 0 none published, 1 this layout) |
//! | 132 | worker busy fraction, parts per million (u32) |
//! | 136 | bytes per second served (u64) |
//! | 144 | reserved (zero), room for more load words |
//! | 192 | service IPs 4..8, 16 bytes each |
//!
//! The load words were added to the reserved tail (layout unchanged for
//! older readers, who never look there; an older writer leaves version 0,
//! read as "no load published"). Service IPs 4..8 came with layout
//! version 5: a box that inherits two dual-stack boxes holds six
//! addresses, and its own successor must find all of them here. A
//! version-4 reader would reject a count above 4 as corrupt, hence the
//! version bump rather than a silent extension.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};

use crate::segment::Region;

/// Service IPs a box table entry can hold: a dual-stack box and three
/// dual-stack boxes it inherited (or any eight addresses).
pub const MAX_SERVICE_IPS: usize = 8;
/// Service IPs in the entry's first block (offset 64); the rest follow at
/// [`E_IPS_HIGH`].
const IPS_LOW: usize = 4;

const E_HEARTBEAT: usize = 0;
const E_HEARTBEAT_MS: usize = 8;
const E_STATE: usize = 16;
const E_EPOCH: usize = 20;
const E_CONNECTIONS: usize = 24;
const E_CHECKPOINTS: usize = 32;
const E_IDENT_SEQ: usize = 40;
const E_MAC: usize = 48;
const E_IP_META: usize = 56;
const E_IPS: usize = 64;
const E_LOAD_VERSION: usize = 128;
const E_LOAD_BUSY: usize = 132;
const E_LOAD_BPS: usize = 136;
const E_IPS_HIGH: usize = 192;

// Every service IP fits the entry, and the high block starts past the load words.
const _: () = assert!(ip_offset(MAX_SERVICE_IPS - 1) + 16 <= crate::segment::BOX_ENTRY_SIZE);
const _: () = assert!(E_IPS_HIGH >= E_LOAD_BPS + 8);

/// Offset of service IP `i` (0..MAX_SERVICE_IPS) in the entry.
const fn ip_offset(i: usize) -> usize {
    if i < IPS_LOW {
        E_IPS + i * 16
    } else {
        E_IPS_HIGH + (i - IPS_LOW) * 16
    }
}

/// The load layout this build writes (`E_LOAD_VERSION`).
pub const LOAD_VERSION: u32 = 1;

/// What a box publishes of its load with its heartbeat (issue 20): read
/// by placement (`takeover.assignment = "least_loaded"`, rebalancing) and
/// shown by `/metrics` and the admin status. Connections owned are the
/// entry's own counter, not repeated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoxLoad {
    /// Bytes per second the box sent to clients, over its last interval.
    pub bytes_per_sec: u64,
    /// Fraction of time its workers were busy, in parts per million
    /// (clamped to 1 000 000).
    pub busy_ppm: u32,
}

/// Lifecycle of a box as recorded in its box table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxState {
    /// The entry was never written: no box has used this member id.
    Unused,
    /// Serving and heartbeating.
    Alive,
    /// Declared dead by the survivors; its connections are orphans.
    Dead,
    /// Handing its connections over for maintenance (planned move).
    Draining,
    /// Restarted with a new epoch after having been dead.
    Rejoined,
}

impl BoxState {
    fn code(self) -> u32 {
        match self {
            BoxState::Unused => 0,
            BoxState::Alive => 1,
            BoxState::Dead => 2,
            BoxState::Draining => 3,
            BoxState::Rejoined => 4,
        }
    }

    fn from_code(c: u32) -> Option<BoxState> {
        Some(match c {
            0 => BoxState::Unused,
            1 => BoxState::Alive,
            2 => BoxState::Dead,
            3 => BoxState::Draining,
            4 => BoxState::Rejoined,
            _ => return None,
        })
    }
}

/// A consistent copy of one box table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxInfo {
    /// Heartbeat counter, bumped on every heartbeat.
    pub heartbeat: u64,
    /// Unix time in ms of the last heartbeat.
    pub heartbeat_ms: u64,
    /// Lifecycle state.
    pub state: BoxState,
    /// Incarnation number, bumped each time the box (re)starts.
    pub epoch: u32,
    /// MAC address of the box's front interface.
    pub mac: [u8; 6],
    /// Service IPs the box answers for.
    pub service_ips: Vec<IpAddr>,
    /// Connections the box currently owns.
    pub connections: i64,
    /// Checkpoints the box has written.
    pub checkpoints: u64,
    /// The load it published, `None` if it never did (an older build, or a
    /// box that has not beaten since it started).
    pub load: Option<BoxLoad>,
}

/// Why a box table entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxTableError {
    /// The box id is outside the segment.
    #[error("no box {0} in this segment")]
    NoSuchBox(u16),
    /// The state word holds no known state: the entry is corrupt.
    #[error("box {id}: state word {code} is not a known state")]
    BadState {
        /// Box id.
        id: u16,
        /// The raw state word.
        code: u32,
    },
    /// The IP count or flags are out of range: the entry is corrupt.
    #[error("box {id}: service IP word {raw:#x} is out of range")]
    BadIps {
        /// Box id.
        id: u16,
        /// The raw count/flags word.
        raw: u64,
    },
    /// MAC/IPs were being rewritten on every attempt (or their writer died
    /// mid-update).
    #[error("box {0}: identity is being rewritten, try again")]
    Busy(u16),
    /// More service IPs were given than an entry holds.
    #[error("at most {MAX_SERVICE_IPS} service IPs fit a box table entry, got {0}")]
    TooManyIps(usize),
}

impl Region {
    fn entry_u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: fixed, aligned offset inside this region's box table entry.
        unsafe { self.inner().u64_at(self.offset() + off) }
    }

    fn entry_u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.inner().u32_at(self.offset() + off) }
    }

    fn entry_i64(&self, off: usize) -> &AtomicI64 {
        // SAFETY: AtomicI64 has the layout of AtomicU64; offset as above.
        unsafe { &*(self.entry_u64(off) as *const AtomicU64 as *const AtomicI64) }
    }

    /// Records a heartbeat at `now_ms` (unix ms): bumps the counter and sets
    /// the time. The time is stored first so a reader that sees the new
    /// counter also sees a time at least that recent.
    pub fn heartbeat(&self, now_ms: u64) {
        // Several threads may beat for one box: the time never goes back.
        self.entry_u64(E_HEARTBEAT_MS)
            .fetch_max(now_ms, Ordering::AcqRel);
        self.entry_u64(E_HEARTBEAT).fetch_add(1, Ordering::Release);
    }

    /// A peer declares this box dead at `epoch` (it took the box's
    /// connections over): the box, if it still runs that epoch, reads this
    /// from its own entry and must stop serving them. False when the box
    /// has begun another epoch since (a restart is never declared dead).
    pub fn declare_dead(&self, epoch: u32) -> bool {
        if self.epoch() != epoch {
            return false;
        }
        self.set_state(BoxState::Dead);
        true
    }

    /// Sets the lifecycle state.
    pub fn set_state(&self, state: BoxState) {
        self.entry_u32(E_STATE)
            .store(state.code(), Ordering::Release);
    }

    /// Sets the epoch (used by the replication receiver to mirror a peer).
    pub fn set_epoch(&self, epoch: u32) {
        self.entry_u32(E_EPOCH).store(epoch, Ordering::Release);
    }

    /// Starts a new incarnation of this box: bumps the epoch and marks the
    /// box alive (first start) or rejoined (any later start). Returns the
    /// new epoch.
    pub fn begin_epoch(&self) -> u32 {
        let prev = self.entry_u32(E_EPOCH).fetch_add(1, Ordering::AcqRel);
        let state = if prev == 0 {
            BoxState::Alive
        } else {
            BoxState::Rejoined
        };
        self.set_state(state);
        prev.wrapping_add(1)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.entry_u32(E_EPOCH).load(Ordering::Acquire)
    }

    /// Adds `delta` (may be negative) to the connections-owned counter.
    pub fn add_connections(&self, delta: i64) {
        self.entry_i64(E_CONNECTIONS)
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// Sets the connections-owned counter (replication mirrors it).
    pub fn set_connections(&self, n: i64) {
        self.entry_i64(E_CONNECTIONS).store(n, Ordering::Relaxed);
    }

    /// Adds `n` to the checkpoints-written counter.
    pub fn add_checkpoints(&self, n: u64) {
        self.entry_u64(E_CHECKPOINTS)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the checkpoints-written counter (replication mirrors it).
    pub fn set_checkpoints(&self, n: u64) {
        self.entry_u64(E_CHECKPOINTS).store(n, Ordering::Relaxed);
    }

    /// Sets the heartbeat counter and time together (replication mirrors a
    /// peer's values rather than counting its own).
    pub fn set_heartbeat(&self, counter: u64, ms: u64) {
        self.entry_u64(E_HEARTBEAT_MS).store(ms, Ordering::Release);
        self.entry_u64(E_HEARTBEAT)
            .store(counter, Ordering::Release);
    }

    /// Publishes this box's load (beside its heartbeat). The two words are
    /// independent atomics: a reader may pair a fresh busy fraction with
    /// the previous rate, which placement tolerates (it is a hint, never a
    /// decision that must be exact).
    pub fn set_load(&self, load: BoxLoad) {
        self.entry_u64(E_LOAD_BPS)
            .store(load.bytes_per_sec, Ordering::Relaxed);
        self.entry_u32(E_LOAD_BUSY)
            .store(load.busy_ppm.min(1_000_000), Ordering::Relaxed);
        self.entry_u32(E_LOAD_VERSION)
            .store(LOAD_VERSION, Ordering::Release);
    }

    /// The load this box published, if any (a version this build does not
    /// know reads as none rather than as garbage).
    pub fn load(&self) -> Option<BoxLoad> {
        if self.entry_u32(E_LOAD_VERSION).load(Ordering::Acquire) != LOAD_VERSION {
            return None;
        }
        Some(BoxLoad {
            bytes_per_sec: self.entry_u64(E_LOAD_BPS).load(Ordering::Relaxed),
            busy_ppm: self
                .entry_u32(E_LOAD_BUSY)
                .load(Ordering::Relaxed)
                .min(1_000_000),
        })
    }

    /// Forgets the published load (replication mirrors a peer that
    /// publishes none).
    pub fn clear_load(&self) {
        self.entry_u32(E_LOAD_VERSION).store(0, Ordering::Release);
    }

    /// Sets the MAC and service IPs (at most [`MAX_SERVICE_IPS`]). An
    /// unchanged identity is not written again: replication applies it with
    /// every heartbeat, and each write makes readers retry (a writer
    /// preempted mid-write on a busy core would have them report `Busy`).
    pub fn set_identity(&self, mac: [u8; 6], ips: &[IpAddr]) -> Result<(), BoxTableError> {
        if ips.len() > MAX_SERVICE_IPS {
            return Err(BoxTableError::TooManyIps(ips.len()));
        }
        if self
            .identity()
            .is_ok_and(|(m, current)| m == mac && current == ips)
        {
            return Ok(());
        }
        let seq = self.entry_u64(E_IDENT_SEQ);
        let s = seq.load(Ordering::Relaxed) & !1;
        seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let mut mac8 = [0u8; 8];
        mac8[..6].copy_from_slice(&mac);
        self.entry_u64(E_MAC)
            .store(u64::from_le_bytes(mac8), Ordering::Relaxed);
        let mut meta = ips.len() as u64;
        for (i, ip) in ips.iter().enumerate() {
            let bytes = match ip {
                IpAddr::V4(a) => {
                    let mut b = [0u8; 16];
                    b[..4].copy_from_slice(&a.octets());
                    b
                }
                IpAddr::V6(a) => {
                    meta |= 1 << (8 + i);
                    a.octets()
                }
            };
            let (lo, hi) = bytes.split_at(8);
            let mut w = [0u8; 8];
            w.copy_from_slice(lo);
            self.entry_u64(ip_offset(i))
                .store(u64::from_le_bytes(w), Ordering::Relaxed);
            w.copy_from_slice(hi);
            self.entry_u64(ip_offset(i) + 8)
                .store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        self.entry_u64(E_IP_META).store(meta, Ordering::Relaxed);
        seq.store(s + 2, Ordering::Release);
        Ok(())
    }

    /// A consistent copy of this box's entry. Counters are read one by one
    /// (each is atomic); MAC and IPs are read under their seqlock.
    pub fn box_info(&self) -> Result<BoxInfo, BoxTableError> {
        let code = self.entry_u32(E_STATE).load(Ordering::Acquire);
        let state =
            BoxState::from_code(code).ok_or(BoxTableError::BadState { id: self.id, code })?;
        let (mac, service_ips) = self.identity()?;
        Ok(BoxInfo {
            heartbeat: self.entry_u64(E_HEARTBEAT).load(Ordering::Acquire),
            heartbeat_ms: self.entry_u64(E_HEARTBEAT_MS).load(Ordering::Acquire),
            state,
            epoch: self.epoch(),
            mac,
            service_ips,
            connections: self.entry_i64(E_CONNECTIONS).load(Ordering::Relaxed),
            checkpoints: self.entry_u64(E_CHECKPOINTS).load(Ordering::Relaxed),
            load: self.load(),
        })
    }

    fn identity(&self) -> Result<([u8; 6], Vec<IpAddr>), BoxTableError> {
        let seq = self.entry_u64(E_IDENT_SEQ);
        // Identity changes rarely; a handful of retries covers a concurrent
        // update, and a writer that died mid-update reports Busy instead of
        // spinning forever.
        for _ in 0..64 {
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mac = self.entry_u64(E_MAC).load(Ordering::Relaxed).to_le_bytes();
            let meta = self.entry_u64(E_IP_META).load(Ordering::Relaxed);
            let mut words = [0u64; MAX_SERVICE_IPS * 2];
            for (i, w) in words.iter_mut().enumerate() {
                *w = self
                    .entry_u64(ip_offset(i / 2) + (i % 2) * 8)
                    .load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            let count = (meta & 0xff) as usize;
            if count > MAX_SERVICE_IPS || meta >> (8 + MAX_SERVICE_IPS) != 0 {
                return Err(BoxTableError::BadIps {
                    id: self.id,
                    raw: meta,
                });
            }
            let mut ips = Vec::with_capacity(count);
            for i in 0..count {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&words[i * 2].to_le_bytes());
                b[8..].copy_from_slice(&words[i * 2 + 1].to_le_bytes());
                if meta & (1 << (8 + i)) != 0 {
                    ips.push(IpAddr::V6(Ipv6Addr::from(b)));
                } else {
                    ips.push(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])));
                }
            }
            let mut m = [0u8; 6];
            m.copy_from_slice(&mac[..6]);
            return Ok((m, ips));
        }
        Err(BoxTableError::Busy(self.id))
    }
}
