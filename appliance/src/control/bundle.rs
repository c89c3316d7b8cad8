//! A slot's bundle as the unit of takeover and migration (issue 17): the
//! records one seqlock write published together (an FTP control
//! connection, its passive listener and its data connection) are restored
//! all or none, by one box, and handed off together.
//!
//! The split already goes by slot (`takeover::plan_with`), so a bundle
//! reaches one survivor; this module adds the rest: one refused member
//! refuses the bundle (half an FTP session is no session), and migrate
//! hands off every member of the bundles it picks. It knows records and
//! bundles, not how slots are split nor how frames are forwarded.
use std::net::IpAddr;

use baton_dataplane::tcp::{FourTuple, State};
use baton_shmem::ArchivedBundle;

use crate::orphans::Orphan;
use crate::record::{check_restorable, orphan_of, tuple_of, Refused};

/// The orphans of `bundle` if every one of its records may be restored
/// (`check_restorable` against `allowed`); otherwise the first refusal and
/// how many records the bundle loses with it.
pub(crate) fn bundle_orphans(
    bundle: &ArchivedBundle<'_>,
    allowed: &[IpAddr],
) -> Result<Vec<Orphan>, (Refused, usize)> {
    let mut out = Vec::with_capacity(bundle.records.len());
    for record in bundle.records.iter() {
        check_restorable(record, allowed).map_err(|why| (why, bundle.records.len()))?;
        out.extend(orphan_of(record));
    }
    Ok(out)
}

/// True when `bundle` goes to the survivor that inherits the dead box's
/// address rather than by slot: an FTP session (its first record FTP),
/// whose next data connection — a new 4-tuple to the dead box's address,
/// which no orphan route names — reaches the address's heir; the session
/// and its passive ports must be there.
pub(crate) fn follows_the_address(bundle: &ArchivedBundle<'_>) -> bool {
    bundle.records.iter().next().is_some_and(|r| {
        let p = r.view().app_protocol;
        // RTSP: RTP leaves from the address the client knows, and its
        // RTCP reports reach the address's holder.
        p == baton_shmem::APP_PROTOCOL_FTP || p == baton_shmem::APP_PROTOCOL_RTSP
    })
}

/// The survivor that restores `bundle`: `by_slot` (the split by slot
/// number), or `heir` for a bundle that follows the address.
pub(crate) fn survivor_for(bundle: &ArchivedBundle<'_>, by_slot: u16, heir: Option<u16>) -> u16 {
    match heir {
        Some(h) if follows_the_address(bundle) => h,
        _ => by_slot,
    }
}

/// The connections migrate hands off for `bundle`: every TCP member, when
/// its first record (the control connection, or the only one) is
/// established; none otherwise. An address-following bundle (FTP, RTSP)
/// moves only as a running FTP transfer: the control and the data
/// connection both established, so no passive listener waits for a new
/// 4-tuple to the address, which stays with this box (docs/FTP.md,
/// "Takeover").
pub(crate) fn movable_tuples(bundle: &ArchivedBundle<'_>) -> Option<Vec<FourTuple>> {
    let first = bundle.records.iter().next()?.view();
    let established = |r: &baton_shmem::record::ConnRecord<'_>| {
        r.tcp
            .is_some_and(|t| t.tcp_state == State::Established.as_u8())
    };
    if !established(&first) {
        return None;
    }
    if follows_the_address(bundle) {
        let running = first.app_protocol == baton_shmem::APP_PROTOCOL_FTP
            && bundle.records.len() == 2
            && bundle.records.iter().all(|r| established(&r.view()));
        if !running {
            return None;
        }
    }
    Some(
        bundle
            .records
            .iter()
            .map(|r| r.view())
            .filter(|r| r.tcp.is_some())
            .map(|r| tuple_of(&r))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use baton_dataplane::tcp::{SeqNum, TcbExport};
    use baton_shmem::record::{ConnRecord, Transport, APP_PROTOCOL_HTTP};
    use baton_shmem::{Layout, Segment, SlotId};

    use super::*;
    use crate::control::takeover::{orphans_in_slots, plan};
    use crate::record::tcp_block;

    struct TempSegment(PathBuf);

    impl Drop for TempSegment {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn segment(tag: &str) -> (TempSegment, Segment) {
        let path =
            std::env::temp_dir().join(format!("baton-bundle-{tag}-{}.seg", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let layout = Layout {
            regions: 4,
            slots_per_region: 16,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        };
        let seg = Segment::open_or_create(&path, layout).expect("segment");
        (TempSegment(path), seg)
    }

    const DEAD_IP: [u8; 4] = [198, 18, 0, 11];

    /// An FTP-like member: local port 21 (control) or a passive port.
    fn member(
        local_port: u16,
        remote_port: u16,
        state: State,
        local_ip: [u8; 4],
    ) -> ConnRecord<'static> {
        let e = TcbExport {
            tuple: FourTuple {
                local: (local_ip, local_port).into(),
                remote: ([198, 18, 0, 100], remote_port).into(),
            },
            state,
            iss: 1_000,
            irs: 2_000,
            snd_una: 1_001,
            snd_nxt: 1_001,
            rcv_nxt: 2_001,
            snd_wnd: 65_535,
            rcv_wnd: 65_535,
            mss: 1_460,
            snd_wscale: 7,
            rcv_wscale: 7,
            sack_permitted: true,
            timestamps: false,
            ts_recent: 0,
            ts_last_sent: 0,
            acks_covered: false,
        };
        ConnRecord {
            owner: 1,
            worker: 0,
            epoch: 1,
            checkpoint_ms: 0,
            local: e.tuple.local.into(),
            remote: e.tuple.remote.into(),
            transport: Transport::Tcp,
            app_protocol: APP_PROTOCOL_HTTP,
            tcp: Some(tcp_block(&e, SeqNum(e.rcv_nxt), false)),
            app: None,
            app_lost: false,
            tls: None,
            app_state: None,
        }
    }

    /// Box 1 dead with, per slot s, a bundle: control (port 21, client port
    /// 50000 + s) and data (port 40000 + s).
    fn dead_box_with_bundles(seg: &Segment, n: u32) {
        let region = seg.region(1).expect("region 1");
        region
            .set_identity([2, 0, 0, 0, 0, 1], &[DEAD_IP.into()])
            .expect("identity");
        let mut w = region.writer();
        for s in 0..n {
            let p = s as u16;
            let control = member(21, 50_000 + p, State::Established, DEAD_IP);
            let data = member(40_000 + p, 51_000 + p, State::Established, DEAD_IP);
            w.write(SlotId(s), &[control, data]).expect("bundle fits");
        }
    }

    #[test]
    fn a_bundle_goes_whole_to_one_survivor() {
        let (_f, seg) = segment("split");
        dead_box_with_bundles(&seg, 3);
        let two = plan(&seg, 1, 2, &[2, 3]);
        let three = plan(&seg, 1, 3, &[2, 3]);
        let pairs = |p: &crate::control::takeover::Plan| -> Vec<(u16, u16)> {
            p.mine
                .iter()
                .map(|o| (o.export.tuple.local.port(), o.export.tuple.remote.port()))
                .collect()
        };
        // Slots 0 and 2 to box 2, slot 1 to box 3: control and data together.
        assert_eq!(
            pairs(&two),
            vec![
                (21, 50_000),
                (40_000, 51_000),
                (21, 50_002),
                (40_002, 51_002)
            ]
        );
        assert_eq!(pairs(&three), vec![(21, 50_001), (40_001, 51_001)]);
        assert_eq!(
            two.mine_slots
                .iter()
                .map(|at| (at.region, at.slot))
                .collect::<Vec<_>>(),
            vec![
                (1, SlotId(0)),
                (1, SlotId(0)),
                (1, SlotId(2)),
                (1, SlotId(2))
            ]
        );
        assert!(two.elsewhere.iter().all(|(_, by)| *by == 3));
        assert_eq!(two.elsewhere.len(), 2);
    }

    #[test]
    fn ftp_bundles_go_to_the_address_heir_and_migrate_only_while_a_transfer_runs() {
        let (_f, seg) = segment("heir");
        let region = seg.region(1).expect("region 1");
        region
            .set_identity([2, 0, 0, 0, 0, 1], &[DEAD_IP.into()])
            .expect("identity");
        let mut w = region.writer();
        for s in 0..3u16 {
            let ftp = |r: ConnRecord<'static>| ConnRecord {
                app_protocol: baton_shmem::APP_PROTOCOL_FTP,
                ..r
            };
            let control = ftp(member(21, 50_000 + s, State::Established, DEAD_IP));
            let data = ftp(member(40_000 + s, 51_000 + s, State::Established, DEAD_IP));
            w.write(SlotId(u32::from(s)), &[control, data])
                .expect("fits");
        }
        // Box 2, the lowest survivor, inherits the address: every session.
        let two = plan(&seg, 1, 2, &[2, 3]);
        let three = plan(&seg, 1, 3, &[2, 3]);
        assert_eq!(two.mine.len(), 6);
        assert!(three.mine.is_empty());
        assert!(three.elsewhere.iter().all(|(_, by)| *by == 2));
        let slot = region.read(SlotId(1)).expect("readable").expect("written");
        assert!(follows_the_address(slot.bundle()));
        // A running transfer (control and data established) moves whole.
        let tuples = movable_tuples(slot.bundle()).expect("a running transfer moves");
        assert_eq!(
            tuples.iter().map(|t| t.local.port()).collect::<Vec<_>>(),
            vec![21, 40_001]
        );
        let ftp = |r: ConnRecord<'static>| ConnRecord {
            app_protocol: baton_shmem::APP_PROTOCOL_FTP,
            ..r
        };
        // A session between transfers (its next data connection, maybe to a
        // passive port, is a new 4-tuple to this box's address) stays.
        let mut w = region.writer();
        w.write(
            SlotId(1),
            &[ftp(member(21, 50_001, State::Established, DEAD_IP))],
        )
        .expect("fits");
        let slot = region.read(SlotId(1)).expect("readable").expect("written");
        assert_eq!(movable_tuples(slot.bundle()), None);
        // A data connection not yet established (or closing): stays too.
        let control = ftp(member(21, 50_001, State::Established, DEAD_IP));
        let data = ftp(member(40_001, 51_001, State::FinWait1, DEAD_IP));
        w.write(SlotId(1), &[control, data]).expect("fits");
        let slot = region.read(SlotId(1)).expect("readable").expect("written");
        assert_eq!(movable_tuples(slot.bundle()), None);
        // RTSP follows the address and never migrates.
        let rtsp = |r: ConnRecord<'static>| ConnRecord {
            app_protocol: baton_shmem::APP_PROTOCOL_RTSP,
            ..r
        };
        let control = rtsp(member(554, 50_001, State::Established, DEAD_IP));
        let data = rtsp(member(40_001, 51_001, State::Established, DEAD_IP));
        w.write(SlotId(1), &[control, data]).expect("fits");
        let slot = region.read(SlotId(1)).expect("readable").expect("written");
        assert_eq!(movable_tuples(slot.bundle()), None);
    }

    #[test]
    fn one_refused_member_loses_the_whole_bundle() {
        let (_f, seg) = segment("refused");
        dead_box_with_bundles(&seg, 2);
        let mut w = seg.region(1).expect("region 1").writer();
        // Slot 1's data member names an address no box has.
        let control = member(21, 50_001, State::Established, DEAD_IP);
        let data = member(40_001, 51_001, State::Established, [198, 18, 0, 99]);
        w.write(SlotId(1), &[control, data]).expect("fits");
        let p = plan(&seg, 1, 2, &[2]);
        assert_eq!(p.refused, 2);
        assert_eq!(p.mine.len(), 2, "slot 0's bundle only");
        assert!(p
            .mine
            .iter()
            .all(|o| o.export.tuple.remote.port() % 1_000 == 0));
        assert_eq!(orphans_in_slots(&seg, 1, &[0, 1]).len(), 2);
    }

    #[test]
    fn migrate_hands_off_every_member_of_an_established_bundle() {
        let (_f, seg) = segment("migrate");
        dead_box_with_bundles(&seg, 1);
        let region = seg.region(1).expect("region 1");
        let slot = region.read(SlotId(0)).expect("readable").expect("written");
        let tuples = movable_tuples(slot.bundle()).expect("established");
        assert_eq!(
            tuples.iter().map(|t| t.local.port()).collect::<Vec<_>>(),
            vec![21, 40_000]
        );
        let mut w = region.writer();
        let syn = member(21, 50_000, State::SynReceived, DEAD_IP);
        let data = member(40_000, 51_000, State::Established, DEAD_IP);
        w.write(SlotId(0), &[syn, data]).expect("fits");
        let slot = region.read(SlotId(0)).expect("readable").expect("written");
        assert_eq!(movable_tuples(slot.bundle()), None);
    }
}
