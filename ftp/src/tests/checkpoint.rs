//! The bundle's records: round trips, refusals of bad bytes, restore.

use std::net::IpAddr;

use proptest::prelude::*;

use super::{addr, catalog, codes, config, Host, CLIENT, LOCAL};
use crate::checkpoint::{
    CheckpointError, ControlRecord, DataRecord, DecodeError, CONTROL_LEN, DATA_LEN,
};
use crate::command::TransferType;
use crate::session::{Action, Data, DataKind, Login, Session, Transfer, TransferKind};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

fn round_trip(s: &Session, seq: u32) -> (ControlRecord, Option<DataRecord>) {
    let (c, d) = s.checkpoint(seq).expect("checkpoint");
    let c2 = ControlRecord::decode(&c.encode()).expect("control decodes");
    assert_eq!(c, c2);
    let d2 = d
        .as_ref()
        .map(|d| DataRecord::decode(&d.encode().expect("encodes")).expect("data decodes"));
    assert_eq!(d, d2);
    (c2, d2)
}

#[test]
fn mid_retr_the_survivor_sends_226_and_serves_the_next_command() {
    let mut h = Host::logged_in();
    h.cmd("TYPE I");
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    h.cmd("REST 100");
    h.cmd("RETR 1k.bin");
    let (c, d) = round_trip(&h.s, 0xffff_fff0);
    assert_eq!(c.awaited_reply(), 226);
    assert_eq!(c.ty, TransferType::Image);
    let d = d.expect("a data record during a transfer");
    assert_eq!(
        (d.kind, d.object.as_str(), d.offset, d.size, d.first_seq),
        (TransferKind::Retr, "1k.bin", 100, 1024, 0xffff_fff0)
    );
    let cat = catalog();
    let (mut s, out) =
        Session::restore(config(), addr(CLIENT), addr(LOCAL), &c, Some(&d), &cat, 50)
            .expect("restore");
    assert!(
        out.is_empty(),
        "the running data connection is the host's to resume: {out:?}"
    );
    assert_eq!(
        s.transfer(),
        Some(&Transfer::Running(DataKind::Retr {
            object: "1k.bin".into(),
            offset: 100,
            size: 1024
        }))
    );
    let free = |_p: u16| true;
    assert_eq!(codes(&s.transfer_done(60, &cat, &free)), vec![226]);
    assert_eq!(
        codes(&s.on_input(b"SIZE 1k.bin\r\n", 61, &cat, &free)),
        vec![213]
    );
    assert_eq!(s.login(), Login::LoggedIn);
}

#[test]
fn between_epsv_and_the_data_connection_the_listener_reopens() {
    let mut h = Host::logged_in();
    let port = match h.cmd("EPSV")[0] {
        Action::OpenPassive { port } => port,
        ref a => panic!("{a:?}"),
    };
    let (c, d) = round_trip(&h.s, 0);
    assert!(d.is_none());
    assert_eq!(c.awaited_reply(), 0);
    let cat = catalog();
    let (mut s, out) =
        Session::restore(config(), addr(CLIENT), addr(LOCAL), &c, None, &cat, 0).expect("restore");
    assert_eq!(out, vec![Action::OpenPassive { port }]);
    assert_eq!(
        s.data(),
        Data::Passive {
            port,
            connected: false
        }
    );
    let free = |_p: u16| true;
    assert!(s.on_input(b"RETR 1k.bin\r\n", 0, &cat, &free).is_empty());
    assert_eq!(codes(&s.data_connected(ip("198.18.0.10"), 0)), vec![150]);
}

#[test]
fn a_pending_retr_and_rest_survive() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.cmd("RETR 1k.bin");
    let (c, d) = round_trip(&h.s, 0);
    assert_eq!(c.awaited_reply(), 150);
    let cat = catalog();
    let (mut s, _) = Session::restore(config(), addr(CLIENT), addr(LOCAL), &c, d.as_ref(), &cat, 0)
        .expect("restore");
    assert_eq!(codes(&s.data_connected(ip("198.18.0.10"), 0)), vec![150]);

    let mut h = Host::logged_in();
    h.cmd("REST 7");
    let (c, _) = round_trip(&h.s, 0);
    assert_eq!(c.rest, Some(7));
    assert_eq!(
        Session::restore(
            config(),
            addr(CLIENT),
            addr(LOCAL),
            &ControlRecord {
                transfer: Some((true, TransferKind::Retr)),
                ..c
            },
            None,
            &cat,
            0
        )
        .err(),
        Some(CheckpointError::MissingData)
    );
}

#[test]
fn active_mode_and_listings_round_trip() {
    let mut h = Host::logged_in();
    h.cmd("EPRT |1|198.18.0.10|50001|");
    h.cmd("MLSD");
    let (c, d) = round_trip(&h.s, 0);
    assert_eq!(
        c.data,
        Data::Active {
            addr: addr("198.18.0.10:50001"),
            connected: false
        }
    );
    assert_eq!(d.as_ref().map(|d| d.kind), Some(TransferKind::Mlsd));
    let cat = catalog();
    let (_, out) = Session::restore(config(), addr(CLIENT), addr(LOCAL), &c, d.as_ref(), &cat, 0)
        .expect("restore");
    assert_eq!(
        out,
        vec![Action::ConnectActive {
            addr: addr("198.18.0.10:50001")
        }]
    );
}

#[test]
fn an_active_data_connections_local_port_round_trips_and_only_in_active_mode() {
    let mut h = Host::logged_in();
    h.cmd("EPRT |1|198.18.0.10|50001|");
    h.cmd("RETR 1k.bin");
    h.s.data_connected(ip("198.18.0.10"), 0);
    let (mut c, _) = h.s.checkpoint(0).expect("checkpoint");
    assert_eq!(c.active_port, 0, "the session does not know it");
    c.active_port = 40_007;
    let back = ControlRecord::decode(&c.encode()).expect("decodes");
    assert_eq!(back.active_port, 40_007);
    assert_eq!(back, c);
    let mut p = Host::logged_in();
    p.cmd("EPSV");
    let (c, _) = p.s.checkpoint(0).expect("checkpoint");
    assert_eq!(
        ControlRecord::decode(&c.encode())
            .expect("decodes")
            .active_port,
        0
    );
}

#[test]
fn a_record_cannot_make_the_survivor_bounce_or_listen_outside_the_range() {
    let mut h = Host::logged_in();
    h.cmd("EPRT |1|198.18.0.10|50001|");
    h.cmd("RETR 1k.bin");
    let (c, d) = round_trip(&h.s, 0);
    let cat = catalog();
    let third = ControlRecord {
        data: Data::Active {
            addr: addr("10.0.0.1:50001"),
            connected: false,
        },
        ..c.clone()
    };
    assert_eq!(
        Session::restore(
            config(),
            addr(CLIENT),
            addr(LOCAL),
            &third,
            d.as_ref(),
            &cat,
            0
        )
        .err(),
        Some(CheckpointError::Bounce(addr("10.0.0.1:50001")))
    );
    let outside = ControlRecord {
        data: Data::Passive {
            port: 22,
            connected: false,
        },
        ..c
    };
    assert_eq!(
        Session::restore(
            config(),
            addr(CLIENT),
            addr(LOCAL),
            &outside,
            d.as_ref(),
            &cat,
            0
        )
        .err(),
        Some(CheckpointError::PassivePort(22))
    );
}

#[test]
fn bad_bytes_are_errors() {
    let h = Host::logged_in();
    let (c, _) = h.s.checkpoint(0).expect("checkpoint");
    let good = c.encode();
    assert_eq!(
        ControlRecord::decode(&good[..10]),
        Err(DecodeError::Truncated {
            need: CONTROL_LEN,
            got: 10
        })
    );
    let mut b = good;
    b[0] = b'X';
    assert_eq!(ControlRecord::decode(&b), Err(DecodeError::BadMagic));
    let mut b = good;
    b[4] = 9;
    assert_eq!(
        ControlRecord::decode(&b),
        Err(DecodeError::UnsupportedVersion(9))
    );
    let mut b = good;
    b[6] = 3;
    assert_eq!(
        ControlRecord::decode(&b),
        Err(DecodeError::BadField("login"))
    );
    let mut b = good;
    b[46] = 200;
    assert_eq!(
        ControlRecord::decode(&b),
        Err(DecodeError::BadField("user"))
    );
    let d = DataRecord {
        kind: TransferKind::Retr,
        object: "x".into(),
        offset: 1,
        size: 2,
        first_seq: 3,
        passive_port: 4,
    };
    let mut b = d.encode().expect("encodes");
    b[8] = 9;
    assert_eq!(DataRecord::decode(&b), Err(DecodeError::BadField("offset")));
    assert_eq!(
        DataRecord::decode(&[0u8; DATA_LEN]),
        Err(DecodeError::BadMagic)
    );
    let long = DataRecord {
        object: "a".repeat(257),
        ..d
    };
    assert_eq!(long.encode().err(), Some(CheckpointError::ObjectTooLong));
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = ControlRecord::decode(&bytes);
        let _ = DataRecord::decode(&bytes);
    }

    /// Valid headers with random bodies: decoded records re-encode to
    /// bytes that decode to the same record.
    #[test]
    fn decoded_records_re_encode(body in proptest::collection::vec(any::<u8>(), DATA_LEN)) {
        let mut c = body.clone();
        c[0..4].copy_from_slice(b"BFTC");
        c[4..6].copy_from_slice(&1u16.to_le_bytes());
        if let Ok(r) = ControlRecord::decode(&c) {
            prop_assert_eq!(ControlRecord::decode(&r.encode()), Ok(r));
        }
        let mut d = body;
        d[0..4].copy_from_slice(b"BFTD");
        d[4..6].copy_from_slice(&1u16.to_le_bytes());
        if let Ok(r) = DataRecord::decode(&d) {
            prop_assert_eq!(DataRecord::decode(&r.encode().expect("fits")), Ok(r));
        }
    }
}
