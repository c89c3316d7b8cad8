//! Checkpoint records ↔ what the appliance restores: the one place where a
//! dataplane [`TcbExport`] becomes the segment's [`TcpBlock`] and back, a
//! record's endpoints become a [`FourTuple`], and raw 32-bit sequence
//! numbers become [`SeqNum`]s.
//!
//! The segment's format keeps raw `u32`s (baton-shmem must not know the
//! dataplane); everything above this module compares sequence numbers as
//! [`SeqNum`], modulo 2^32 (RFC 9293 §3.4), never by hand. The application
//! block is HTTP's to fill and read (`crate::http::checkpoint`); this module
//! only carries it, marks a record whose block could not be stored, and
//! checks what a record read for a restore may ask of this box (its
//! strings reach origin requests; its local address becomes ours). It
//! knows nothing of slot layout, cadence or takeover plans.
use std::net::IpAddr;

use baton_dataplane::tcp::{FourTuple, SeqNum, State, TcbExport};
use baton_shmem::record::{AppBlock, ArchivedConnRecord, ConnRecord, TcpBlock, Transport};
use baton_shmem::{SlotId, SlotWriter, WriteError};

use crate::http::ResponseCheckpoint;
use crate::orphans::Orphan;

/// The sequence variables of an export, as sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seqs {
    /// Our initial sequence number.
    pub(crate) iss: SeqNum,
    /// The client's initial sequence number.
    pub(crate) irs: SeqNum,
    /// SND.UNA.
    pub(crate) snd_una: SeqNum,
    /// SND.NXT.
    pub(crate) snd_nxt: SeqNum,
    /// RCV.NXT.
    pub(crate) rcv_nxt: SeqNum,
}

/// The sequence variables of `e`.
pub(crate) fn seqs(e: &TcbExport) -> Seqs {
    Seqs {
        iss: SeqNum(e.iss),
        irs: SeqNum(e.irs),
        snd_una: SeqNum(e.snd_una),
        snd_nxt: SeqNum(e.snd_nxt),
        rcv_nxt: SeqNum(e.rcv_nxt),
    }
}

/// Where a response's object starts in our byte stream.
pub(crate) fn object_start(cp: &ResponseCheckpoint) -> SeqNum {
    cp.object_start_seq
}

/// The client sequence number up to which an upload's spool holds the
/// body, if `cp` is an upload.
pub(crate) fn upload_covered(cp: &ResponseCheckpoint) -> Option<SeqNum> {
    cp.upload.as_ref().map(|u| u.covered_seq())
}

/// The TCP block of `e`, covering the client's bytes up to `rcv_nxt` (an
/// upload may hold it below the TCB's RCV.NXT, see `serve::checkpoint`),
/// with `acks_covered` as the writer judged it.
pub(crate) fn tcp_block(e: &TcbExport, rcv_nxt: SeqNum, acks_covered: bool) -> TcpBlock {
    TcpBlock {
        iss: e.iss,
        irs: e.irs,
        snd_una: e.snd_una,
        snd_nxt: e.snd_nxt,
        rcv_nxt: rcv_nxt.0,
        snd_wnd: e.snd_wnd,
        rcv_wnd: e.rcv_wnd,
        mss: e.mss,
        snd_wscale: e.snd_wscale,
        rcv_wscale: e.rcv_wscale,
        sack_permitted: e.sack_permitted,
        timestamps: e.timestamps,
        ts_recent: e.ts_recent,
        ts_last_sent: e.ts_last_sent,
        tcp_state: e.state.as_u8(),
        acks_covered,
    }
}

/// The export a survivor restores from `block` of the connection `tuple`;
/// `None` for a TCP state this build does not know.
pub(crate) fn export_of(tuple: FourTuple, block: &TcpBlock) -> Option<TcbExport> {
    Some(TcbExport {
        tuple,
        state: State::from_u8(block.tcp_state)?,
        iss: block.iss,
        irs: block.irs,
        snd_una: block.snd_una,
        snd_nxt: block.snd_nxt,
        rcv_nxt: block.rcv_nxt,
        snd_wnd: block.snd_wnd,
        rcv_wnd: block.rcv_wnd,
        mss: block.mss,
        snd_wscale: block.snd_wscale,
        rcv_wscale: block.rcv_wscale,
        sack_permitted: block.sack_permitted,
        timestamps: block.timestamps,
        ts_recent: block.ts_recent,
        ts_last_sent: block.ts_last_sent,
        acks_covered: block.acks_covered,
    })
}

/// The connection a record belongs to.
pub(crate) fn tuple_of(r: &ConnRecord<'_>) -> FourTuple {
    FourTuple {
        local: r.local.socket_addr(),
        remote: r.remote.socket_addr(),
    }
}

/// A record as the dataplane and HTTP restore it; `None` for records that
/// cannot be resumed (UDP members, unknown TCP states). A record whose
/// application state was lost restores with [`ResponseCheckpoint::unrecorded`],
/// which the session resets at once.
pub(crate) fn orphan_of(record: &ArchivedConnRecord<'_>) -> Option<Orphan> {
    let r = record.view();
    if r.transport != Transport::Tcp {
        return None;
    }
    let export = export_of(tuple_of(&r), &r.tcp?)?;
    let response = match (&r.app, r.app_lost) {
        (Some(app), _) => Some(ResponseCheckpoint::from_app_block(app)),
        (None, true) => Some(ResponseCheckpoint::unrecorded()),
        (None, false) => None,
    };
    Some(Orphan {
        export,
        response,
        tls: r.tls.map(<[u8]>::to_vec),
        app_state: r.app_state.map(<[u8]>::to_vec),
    })
}

/// The application block of a record for the response `app`, with
/// `bytes_sent` body bytes sent, and whether the response's state is lost
/// (a string beyond the record's limits: the record says so instead of
/// posing as an idle connection).
pub(crate) fn app_fields(
    app: Option<&ResponseCheckpoint>,
    bytes_sent: u64,
) -> (Option<AppBlock<'_>>, bool) {
    match app.map(|cp| cp.to_app_block(bytes_sent)) {
        None => (None, false),
        Some(Some(block)) => (Some(block), false),
        Some(None) => (None, true),
    }
}

/// Writes `record` into `slot`. A bundle the segment cannot hold with its
/// application block (the overflow area full, or larger than an entry) is
/// written without it and marked lost, so a survivor resets the connection
/// at once rather than restoring it as idle and stalling the client.
/// Returns whether the block was lost.
pub(crate) fn write_record(
    writer: &mut SlotWriter,
    slot: SlotId,
    record: ConnRecord<'_>,
) -> Result<bool, WriteError> {
    match writer.write(slot, &[record]) {
        Ok(()) => Ok(record.app_lost),
        Err(WriteError::OverflowFull | WriteError::TooLarge) if record.app.is_some() => {
            let bare = ConnRecord {
                app: None,
                app_lost: true,
                ..record
            };
            writer.write(slot, &[bare]).map(|()| true)
        }
        Err(err) => Err(err),
    }
}

/// Why a record read for a restore is refused: restoring it would put a
/// string from the segment into a request line or header, or take over an
/// address that was not the dead box's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// A control character (or, in the URL, a space) in a string that
    /// becomes part of an origin request.
    #[error("control character or space in the record's {0}")]
    ControlCharacter(&'static str),
    /// The record's local address is not one of the dead box's addresses.
    #[error("local address {0} is not one of the box's service addresses")]
    ForeignAddress(IpAddr),
}

/// Checks a record read for a restore: its strings can go into an origin
/// request unquoted (no CTL, RFC 9110 §5.5; no space in the request
/// target, RFC 9112 §3.2), and its local address is one of `service_ips`,
/// the addresses of the box that wrote it.
pub(crate) fn check_restorable(
    record: &ArchivedConnRecord<'_>,
    service_ips: &[IpAddr],
) -> Result<(), Refused> {
    let r = record.view();
    let local = r.local.socket_addr().ip();
    if !service_ips.contains(&local) {
        return Err(Refused::ForeignAddress(local));
    }
    let Some(app) = r.app else {
        return Ok(());
    };
    let ctl = |s: &str| s.bytes().any(|b| b < 0x20 || b == 0x7f);
    if ctl(app.name) || app.name.contains(' ') {
        return Err(Refused::ControlCharacter("URL"));
    }
    if app.etag.is_some_and(ctl) {
        return Err(Refused::ControlCharacter("ETag"));
    }
    if app.last_modified.is_some_and(ctl) {
        return Err(Refused::ControlCharacter("Last-Modified"));
    }
    if app.upload.and_then(|u| u.content_type).is_some_and(ctl) {
        return Err(Refused::ControlCharacter("Content-Type"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The config checks `checkpoint.slot_bytes` with its own copy of the
    /// segment's slot sizes (it knows no segment crate).
    #[test]
    fn the_configs_slot_sizes_are_the_segments() {
        assert_eq!(
            baton_config::MAX_SLOT_BYTES as usize,
            baton_shmem::SLOT_SIZE
        );
        assert_eq!(
            baton_config::MIN_SLOT_BYTES as usize,
            baton_shmem::MIN_SLOT_SIZE
        );
        assert_eq!(
            baton_config::SLOT_BYTES_STEP as usize,
            baton_shmem::SLOT_SIZE_STEP
        );
    }

    fn state() -> impl Strategy<Value = State> {
        (0u8..=u8::MAX).prop_filter_map("a known state", State::from_u8)
    }

    prop_compose! {
        fn export()(
            ports in (1u16.., 1u16..),
            state in state(),
            seqs in any::<[u32; 5]>(),
            wnds in any::<(u32, u32)>(),
            mss in any::<u16>(),
            scales in (0u8..=14, 0u8..=14),
            flags in any::<(bool, bool, bool)>(),
            ts in any::<(u32, u32)>(),
        ) -> TcbExport {
            TcbExport {
                tuple: FourTuple {
                    local: ([198, 18, 0, 11], ports.0).into(),
                    remote: ([198, 18, 0, 100], ports.1).into(),
                },
                state,
                iss: seqs[0],
                irs: seqs[1],
                snd_una: seqs[2],
                snd_nxt: seqs[3],
                rcv_nxt: seqs[4],
                snd_wnd: wnds.0,
                rcv_wnd: wnds.1,
                mss,
                snd_wscale: scales.0,
                rcv_wscale: scales.1,
                sack_permitted: flags.0,
                timestamps: flags.1,
                ts_recent: ts.0,
                ts_last_sent: ts.1,
                acks_covered: flags.2,
            }
        }
    }

    proptest! {
        #[test]
        fn a_tcb_survives_the_trip_through_its_tcp_block(e in export()) {
            let block = tcp_block(&e, SeqNum(e.rcv_nxt), e.acks_covered);
            let back = export_of(e.tuple, &block).expect("a known state");
            prop_assert_eq!(back, e);
        }

        #[test]
        fn the_block_carries_the_covered_client_sequence_not_the_tcbs(
            e in export(), below in 0u32..1_000_000,
        ) {
            let covered = SeqNum(e.rcv_nxt) - below;
            let block = tcp_block(&e, covered, false);
            let back = export_of(e.tuple, &block).expect("a known state");
            prop_assert_eq!(SeqNum(back.rcv_nxt), covered);
            prop_assert!(!back.acks_covered);
        }
    }

    /// Runs `f` on `record` as a survivor reads it: written into box 1's
    /// region of a scratch segment and read back.
    fn read_back<T>(record: ConnRecord<'_>, f: impl FnOnce(&ArchivedConnRecord<'_>) -> T) -> T {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "baton-record-test-{}-{}.seg",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let layout = baton_shmem::Layout {
            regions: 2,
            slots_per_region: 4,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        };
        let seg = baton_shmem::Segment::open_or_create(&path, layout).expect("scratch segment");
        let region = seg.region(1).expect("region 1");
        region.writer().write(SlotId(0), &[record]).expect("fits");
        let slot = region.read(SlotId(0)).expect("valid").expect("written");
        let out = f(&slot.bundle().records[0]);
        let _ = std::fs::remove_file(&path);
        out
    }

    fn http(url: &str, etag: Option<&str>) -> ConnRecord<'static> {
        let url: &'static str = Box::leak(url.to_string().into_boxed_str());
        let etag = etag.map(|e| &*Box::leak(e.to_string().into_boxed_str()));
        ConnRecord {
            owner: 1,
            worker: 0,
            epoch: 1,
            checkpoint_ms: 0,
            local: "198.18.0.11:80"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
            remote: "198.18.0.100:40000"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
            transport: Transport::Tcp,
            app_protocol: baton_shmem::APP_PROTOCOL_HTTP,
            tcp: Some(TcpBlock {
                tcp_state: State::Established.as_u8(),
                ..TcpBlock::default()
            }),
            app: Some(AppBlock {
                object_start_seq: 1,
                version: 11,
                method: 1,
                status: 200,
                body_len: Some(10),
                name: url,
                etag,
                last_modified: None,
                range_start: None,
                range_end: None,
                persistent: true,
                bytes_sent: 0,
                request_count: 1,
                upload: None,
            }),
            app_lost: false,
            tls: None,
            app_state: None,
        }
    }

    fn check(record: ConnRecord<'_>, ips: &[IpAddr]) -> Result<(), Refused> {
        read_back(record, |r| check_restorable(r, ips))
    }

    const BOX_IP: [u8; 4] = [198, 18, 0, 11];

    #[test]
    fn strings_bound_for_an_origin_request_carry_no_control_characters() {
        let ips = [IpAddr::from(BOX_IP)];
        assert_eq!(
            check(http("/a.bin?sig=x%20y", Some("\"v1\"")), &ips),
            Ok(())
        );
        for url in ["/a\r\nX-Injected: 1", "/a b", "/a\0", "/a\x7f"] {
            assert_eq!(
                check(http(url, None), &ips),
                Err(Refused::ControlCharacter("URL")),
                "{url:?}"
            );
        }
        assert_eq!(
            check(http("/a", Some("\"v1\"\r\nX: y")), &ips),
            Err(Refused::ControlCharacter("ETag"))
        );
        let mut lm = http("/a", None);
        let mut app = lm.app.unwrap();
        app.last_modified = Some("Wed, 21 Oct 2015\n07:28:00 GMT");
        lm.app = Some(app);
        assert_eq!(
            check(lm, &ips),
            Err(Refused::ControlCharacter("Last-Modified"))
        );
    }

    #[test]
    fn a_record_for_an_address_the_box_never_had_is_refused() {
        let other: IpAddr = "198.18.0.12".parse().unwrap();
        assert_eq!(
            check(http("/a", None), &[other]),
            Err(Refused::ForeignAddress(IpAddr::from(BOX_IP)))
        );
        assert_eq!(
            check(http("/a", None), &[]),
            Err(Refused::ForeignAddress(IpAddr::from(BOX_IP)))
        );
        assert_eq!(
            check(http("/a", None), &[other, IpAddr::from(BOX_IP)]),
            Ok(())
        );
    }

    #[test]
    fn a_record_whose_app_state_was_lost_restores_as_unrecorded() {
        let lost = ConnRecord {
            app: None,
            app_lost: true,
            ..http("/a", None)
        };
        let orphan = read_back(lost, orphan_of).expect("a TCP record");
        assert!(orphan.response.is_some_and(|r| r.is_unrecorded()));
        let idle = ConnRecord {
            app: None,
            ..http("/a", None)
        };
        assert!(read_back(idle, orphan_of).unwrap().response.is_none());
    }

    #[test]
    fn a_response_too_long_for_the_record_is_written_marked_lost() {
        let cp = ResponseCheckpoint {
            url: format!("/{}", "u".repeat(baton_shmem::MAX_NAME_LEN)),
            ..ResponseCheckpoint::unrecorded()
        };
        let (block, lost) = app_fields(Some(&cp), 0);
        assert!(block.is_none() && lost);
        assert!(!app_fields(None, 0).1);
    }

    #[test]
    fn a_record_the_overflow_area_cannot_take_is_written_bare_and_marked_lost() {
        let path =
            std::env::temp_dir().join(format!("baton-record-full-{}.seg", std::process::id()));
        let layout = baton_shmem::Layout {
            regions: 2,
            slots_per_region: 2048,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        };
        let seg = baton_shmem::Segment::open_or_create(&path, layout).expect("scratch segment");
        let region = seg.region(1).expect("region 1");
        let mut writer = region.writer();
        let long = format!("/v.bin?sig={}", "s".repeat(2_000));
        let entries = layout.overflow_entries();
        for i in 0..entries {
            let lost = write_record(&mut writer, SlotId(i), http(&long, None)).expect("written");
            assert!(!lost, "entry {i} is free");
        }
        let lost = write_record(&mut writer, SlotId(entries), http(&long, None)).expect("written");
        assert!(
            lost,
            "no entry left: the block is dropped, the record says so"
        );
        let slot = region
            .read(SlotId(entries))
            .expect("valid")
            .expect("written");
        let r = slot.bundle().records[0].view();
        assert!(r.app.is_none() && r.app_lost);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_block_with_an_unknown_state_is_not_restored() {
        let unknown = (0u8..=u8::MAX)
            .find(|&s| State::from_u8(s).is_none())
            .expect("some code is no state");
        let block = TcpBlock {
            tcp_state: unknown,
            ..TcpBlock::default()
        };
        let tuple = FourTuple {
            local: ([198, 18, 0, 11], 80).into(),
            remote: ([198, 18, 0, 100], 40000).into(),
        };
        assert!(export_of(tuple, &block).is_none());
    }
}
