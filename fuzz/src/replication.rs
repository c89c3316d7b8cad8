//! Target `replication`: datagrams into a real replicator (header and HMAC
//! check, anti-replay, epochs, slot updates, heartbeats, snapshot
//! requests and chunks), then every replica slot read back as a takeover
//! would.
//!
//! Forged datagrams stop at the tag, so a record's control byte can ask
//! for the datagram to be sealed with the test key first: the fuzzer then
//! reaches everything behind the check.

use baton_shmem::{DatagramSocket, Layout, ReplicationConfig, Replicator};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The cluster key of the target's replicator (and of the seeds).
pub const KEY: &[u8] = b"fuzz-cluster-key-0123456789";
/// The replicator's box id; its peers are 1 and 2.
pub const ME: u16 = 0;
/// Header length of a replication datagram (docs/CHECKPOINT_FORMAT.md).
pub const HDR: usize = 36;

/// A socket that sends nowhere and never receives.
pub struct NullSocket;

impl DatagramSocket for NullSocket {
    fn send_to(&self, buf: &[u8], _: SocketAddr) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn recv_from(&self, _: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the body length and appends the HMAC-SHA256 tag under [`KEY`],
/// as a peer's sender does; `d` is header and body.
pub fn seal(d: &mut Vec<u8>) {
    if d.len() < HDR || d.len() - HDR > usize::from(u16::MAX) {
        return;
    }
    let body = (d.len() - HDR) as u16;
    d[14..16].copy_from_slice(&body.to_le_bytes());
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(KEY) else {
        return;
    };
    m.update(d);
    d.extend_from_slice(&m.finalize().into_bytes());
}

/// Each record of `data` (see [`crate::records`]) is one datagram from
/// peer 1's address; control byte bit 0: seal it first; bits 1..8: how
/// many 10 ms pass before it.
pub fn run(data: &[u8]) {
    let seg = crate::record::scratch_segment(
        "replication",
        Layout {
            regions: 3,
            slots_per_region: 4,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    );
    let from: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 7700));
    let cfg = ReplicationConfig {
        me: ME,
        key: KEY.to_vec(),
        peers: vec![(1, from), (2, SocketAddr::from(([192, 0, 2, 2], 7700)))],
    };
    let Ok(mut r) = Replicator::new(&seg, cfg, NullSocket) else {
        panic!("the replicator must build");
    };
    let mut now_ms = 1_700_000_000_000u64;
    for (ctl, d) in crate::records(data) {
        now_ms += u64::from(ctl >> 1) * 10;
        let mut d = d.to_vec();
        if ctl & 1 == 1 {
            seal(&mut d);
        }
        let _ = r.handle(&d, from, now_ms);
    }
    let _ = r.tick(now_ms + 1000);
    for peer in 1..3 {
        if let Ok(region) = seg.region(peer) {
            for item in region.records().flatten() {
                for rec in item.bundle().records.iter() {
                    let _ = rec.view();
                }
            }
            let _ = region.box_info();
        }
    }
}
