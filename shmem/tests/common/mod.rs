//! Helpers shared by the segment tests: temporary segment files that are
//! removed even when a test fails, and typical HTTP checkpoint records.
#![allow(dead_code)]

mod hammer;
mod tap;
#[allow(unused_imports)]
pub use hammer::Hammer;
#[allow(unused_imports)]
pub use tap::Tap;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use baton_shmem::{
    AppBlock, ConnRecord, Endpoint, Region, SlotId, TcpBlock, Transport, APP_PROTOCOL_HTTP,
};

/// A segment path in /dev/shm (or the temp dir) removed on drop.
pub struct TempSeg(pub PathBuf);

impl TempSeg {
    pub fn new(tag: &str) -> TempSeg {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempSeg(dir.join(format!("baton-test-{tag}-{}-{n}.seg", std::process::id())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempSeg {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A typical HTTP checkpoint: client 198.18.0.100:port downloading a URL
/// from the service IP of box `owner`.
pub fn http_record<'a>(
    owner: u16,
    client_port: u16,
    url: &'a str,
    etag: Option<&'a str>,
) -> ConnRecord<'a> {
    ConnRecord {
        owner,
        worker: 0,
        epoch: 1,
        checkpoint_ms: 1_790_000_000_000,
        local: Endpoint::from(
            format!("198.18.0.{}:80", 10 + owner)
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        ),
        remote: Endpoint::from(
            format!("198.18.0.100:{client_port}")
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        ),
        transport: Transport::Tcp,
        app_protocol: APP_PROTOCOL_HTTP,
        tcp: Some(TcpBlock {
            iss: 1_000,
            irs: 77_000,
            snd_una: 401_000,
            snd_nxt: 465_000,
            rcv_nxt: 77_120,
            snd_wnd: 65_535 << 7,
            rcv_wnd: 64_240,
            mss: 1460,
            snd_wscale: 7,
            rcv_wscale: 7,
            sack_permitted: true,
            timestamps: true,
            ts_recent: 123_456,
            ts_last_sent: 99_999,
            tcp_state: 4,
            acks_covered: false,
        }),
        app: Some(AppBlock {
            object_start_seq: 1_300,
            version: 11,
            method: 1,
            status: 200,
            body_len: Some(50 << 20),
            name: url,
            etag,
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            range_start: None,
            range_end: None,
            persistent: true,
            bytes_sent: 464_000,
            request_count: 1,
            upload: None,
        }),
        app_lost: false,
        tls: None,
        app_state: None,
    }
}

/// Slot-for-slot and box-entry equality of an owner's region and its replica.
pub fn same(src: &Region, dst: &Region) -> Result<(), String> {
    for s in 0..src.slot_count() {
        let a = src
            .read(SlotId(s))
            .map_err(|e| format!("src slot {s}: {e}"))?;
        let b = dst
            .read(SlotId(s))
            .map_err(|e| format!("replica slot {s}: {e}"))?;
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) if a.bytes() == b.bytes() => {}
            (a, b) => {
                return Err(format!(
                    "slot {s}: owner has {:?}, replica has {:?}",
                    a.map(|v| v.seq()),
                    b.map(|v| v.seq())
                ))
            }
        }
    }
    let (a, b) = (src.box_info().unwrap(), dst.box_info().unwrap());
    if a != b {
        return Err(format!("box entry: owner {a:?}, replica {b:?}"));
    }
    Ok(())
}
