//! Takeover in memory: the server is checkpointed mid-body, its state
//! dropped, a new record layer restored from the sealed block, and the
//! rustls client must get the rest byte-exact with no alert.

use super::harness::*;
use crate::checkpoint::Checkpoint;
use crate::keys::Version;
use crate::seal::CheckpointSealer;
use crate::session::{Event, Session};

const CLUSTER_KEY: &[u8] = b"cluster.key of the test cluster";
const CONN: &[u8] = b"198.18.0.1:443>198.18.1.2:40000";
const REQUEST: &[u8] = b"GET /obj HTTP/1.1\r\nHost: lab.baton.test\r\n\r\n";

/// Where the server dies: after `records` body records were sealed, with
/// the client having `acked_back` bytes fewer than all that was sealed.
struct Kill {
    records: u64,
    acked_back: u64,
}

/// Handshake, request, headers and a body; the server dies per `kill`; a
/// restored server finishes. Returns what the client received.
fn run(
    version: &'static rustls::SupportedProtocolVersion,
    suite: u16,
    kill: Kill,
    key_update: bool,
) -> Vec<u8> {
    let cert = cert(&[NAME]);
    let cfg = server_config(&cert);
    let mut pair = connect(client(&cert, version, suite, false), &cfg);
    assert_eq!(pair.sni.as_deref(), Some(NAME));
    assert_eq!(pair.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(pair.server.suite(), suite);
    assert_eq!(pair.client_sends(REQUEST), REQUEST);

    let body = body(300_000 + 123);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    pair.server.send(head.as_bytes()).unwrap();
    let mut received = pair.deliver().0;
    pair.server.start_body(body.len() as u64).unwrap();
    assert_eq!(pair.server.send_body_records(&body, 3).unwrap(), 3);
    received.extend(pair.deliver().0);

    if key_update {
        // The client rolls its keys and asks the server to roll its own.
        pair.client.refresh_traffic_keys().unwrap();
        let again = b"GET /again HTTP/1.1\r\n\r\n";
        assert_eq!(
            pair.client_sends(again),
            again,
            "read side follows the client's new key"
        );
        let events: Vec<_> = std::iter::from_fn(|| pair.server.poll_event()).collect();
        assert!(events.is_empty(), "data already drained: {events:?}");
        received.extend(pair.deliver().0);
        assert_eq!(
            pair.server.body().map(|a| a.body_offset),
            Some(3 * 16384),
            "re-anchored"
        );
    }

    // More records go out; the client gets only part of them.
    let sent = pair.server.send_body_records(&body, kill.records).unwrap();
    assert_eq!(sent, kill.records);
    let out = pair.server.take_output();
    let keep = out.len() - kill.acked_back as usize;
    received.extend(pair.deliver_bytes(&out[..keep]).0);

    // The dead box's last checkpoint, sealed as it would sit in the segment.
    let sealed = pair
        .server
        .checkpoint()
        .seal(&CheckpointSealer::new(CLUSTER_KEY).unwrap(), CONN)
        .unwrap();
    assert!(Checkpoint::open(&sealed, b"another cluster's key", CONN).is_err());
    let acked = pair.delivered;
    let old = std::mem::replace(
        &mut pair.server,
        Session::restore(&Checkpoint::open(&sealed, CLUSTER_KEY, CONN).unwrap()).unwrap(),
    );
    drop(old);

    pair.server.resume_body(&body, acked).unwrap();
    received.extend(pair.deliver().0);
    while pair.server.send_body_records(&body, 4).unwrap() > 0 {
        received.extend(pair.deliver().0);
    }
    // The connection goes on after the body: a second request and close.
    assert_eq!(
        pair.client_sends(b"GET /next HTTP/1.1\r\n\r\n"),
        b"GET /next HTTP/1.1\r\n\r\n"
    );
    pair.server
        .send(b"HTTP/1.1 204 No Content\r\n\r\n")
        .unwrap();
    pair.server.close().unwrap();
    let (tail, eof) = pair.deliver();
    received.extend(tail);
    assert!(eof, "the client saw close_notify");

    let mut expected = head.into_bytes();
    expected.extend_from_slice(&body);
    expected.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "byte-exact after the takeover");
    received
}

#[test]
fn takeover_at_a_record_boundary_every_suite() {
    for (v, s) in SUITES {
        run(
            v,
            s,
            Kill {
                records: 4,
                acked_back: 0,
            },
            false,
        );
        // The client has all but the last two whole records.
        let full = 16384
            + crate::record::overhead(
                if v.version == rustls::ProtocolVersion::TLSv1_3 {
                    Version::Tls13
                } else {
                    Version::Tls12
                },
                crate::keys::Aead::from_suite(s).unwrap(),
            );
        run(
            v,
            s,
            Kill {
                records: 4,
                acked_back: 2 * full as u64,
            },
            false,
        );
    }
}

#[test]
fn takeover_mid_record_every_suite() {
    for (v, s) in SUITES {
        // Not a record boundary: 5000 bytes into the last record's tail,
        // and a cut inside a record header.
        run(
            v,
            s,
            Kill {
                records: 5,
                acked_back: 5000,
            },
            false,
        );
        run(
            v,
            s,
            Kill {
                records: 2,
                acked_back: 16384 + 3,
            },
            false,
        );
    }
}

#[test]
fn takeover_across_a_client_key_update_tls13() {
    for (v, s) in SUITES
        .into_iter()
        .filter(|(v, _)| v.version == rustls::ProtocolVersion::TLSv1_3)
    {
        run(
            v,
            s,
            Kill {
                records: 3,
                acked_back: 777,
            },
            true,
        );
    }
}

#[test]
fn request_sent_behind_the_client_finished_reaches_the_session() {
    for (v, s) in SUITES {
        let cert = cert(&[NAME]);
        let cfg = server_config(&cert);
        let mut client = client(&cert, v, s, false);
        let mut hs = crate::handshake::Handshake::new(&cfg).unwrap();
        // Early writes are buffered by rustls and sent right behind the
        // client's Finished, in the same flight.
        std::io::Write::write_all(&mut client.writer(), REQUEST).unwrap();
        let mut got = Vec::new();
        for _ in 0..10 {
            let mut out = Vec::new();
            let p = hs
                .handle_input(&client_output(&mut client), &mut out)
                .unwrap();
            client_input(&mut client, &out);
            if let crate::handshake::Progress::Established(mut e) = p {
                while let Some(Event::Data(d)) = e.session.poll_event() {
                    got.extend(d);
                }
                if got.is_empty() {
                    e.session.handle_input(&client_output(&mut client)).unwrap();
                    while let Some(Event::Data(d)) = e.session.poll_event() {
                        got.extend(d);
                    }
                }
                break;
            }
        }
        assert_eq!(got, REQUEST, "{s:#x}");
    }
}

proptest::proptest! {
    /// Whatever the anchor and the acknowledged offset, a restored session
    /// resumes or refuses: it never panics.
    #[test]
    fn resume_from_any_anchor_never_panics(
        body_len in 0usize..70_000,
        anchor_records in 0u64..6,
        write_seq in proptest::prelude::any::<u64>(),
        stream_offset in proptest::prelude::any::<u64>(),
        write_stream_offset in proptest::prelude::any::<u64>(),
        next_body_record in proptest::prelude::any::<u64>(),
        acked in proptest::prelude::any::<u64>(),
        near in proptest::prelude::any::<bool>(),
        delta in 0u64..100_000,
        tls12 in proptest::prelude::any::<bool>(),
    ) {
        use crate::body::BodyAnchor;
        use crate::checkpoint::DirectionState;
        use crate::keys::{Aead, DirectionKeys};
        let (version, suite, w, r) = if tls12 {
            (Version::Tls12, 0xc02f, DirectionKeys::from_key_iv(Aead::Aes128Gcm, &[1; 16], &[2; 12], 3).unwrap(),
             DirectionKeys::from_key_iv(Aead::Aes128Gcm, &[4; 16], &[5; 12], 6).unwrap())
        } else {
            (Version::Tls13, 0x1303, DirectionKeys::from_secret(Aead::Chacha20Poly1305, &[1; 32], 3, 0).unwrap(),
             DirectionKeys::from_secret(Aead::Chacha20Poly1305, &[2; 32], 6, 0).unwrap())
        };
        let body_offset = (anchor_records * 16384).min(body_len as u64 / 16384 * 16384);
        let cp = Checkpoint {
            version,
            suite,
            write: DirectionState::of(&w),
            read: DirectionState::of(&r),
            write_stream_offset,
            peer_closed: false,
            sent_close_notify: false,
            body: Some(BodyAnchor { body_len: body_len as u64, body_offset, write_seq, stream_offset, record_size: 16384 }),
            next_body_record,
            pending_input: Default::default(),
            pending_lost: false,
        };
        let body = body(body_len);
        let mut s = Session::restore(&cp).unwrap();
        let acked = if near { stream_offset.wrapping_add(delta) } else { acked };
        if s.resume_body(&body, acked).is_ok() {
            let _ = s.send_body_records(&body, 3);
        }
        let _ = s.take_output();
    }
}

/// A caller that has the body piece by piece (the worker, streaming from
/// its cache) seals the same bytes record by record as one with the whole
/// body, and resumes a cut the same way: `send_body_record` and
/// `resume_at` + `resume_record` against `send_body_records` and
/// `resume_body`.
#[test]
fn record_by_record_sealing_and_resuming_match_the_whole_body_calls() {
    let cert = cert(&[NAME]);
    let cfg = server_config(&cert);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let suite = if version.version == rustls::ProtocolVersion::TLSv1_3 {
            0x1301
        } else {
            0xc02b
        };
        let mut pair = connect(client(&cert, version, suite, false), &cfg);
        let body = body(100_000 + 7);
        pair.server.start_body(body.len() as u64).unwrap();
        let cp = pair.server.checkpoint();

        let mut whole = Session::restore(&cp).unwrap();
        while whole.send_body_records(&body, 2).unwrap() > 0 {}
        let mut pieces = Session::restore(&cp).unwrap();
        let mut at = 0;
        while pieces.body_record_len() > 0 {
            let n = pieces.body_record_len();
            pieces.send_body_record(&body[at..at + n]).unwrap();
            at += n;
        }
        assert_eq!(at, body.len());
        assert!(
            pieces.send_body_record(&body[..1]).is_err(),
            "past the body"
        );
        let wire = whole.take_output();
        assert_eq!(pieces.take_output(), wire, "{version:?}");
        assert_eq!(pieces.write_seq(), whole.write_seq());

        // A cut mid-record, resumed both ways.
        let acked = cp.write_stream_offset + 40_000;
        let mut a = Session::restore(&cp).unwrap();
        a.resume_body(&body, acked).unwrap();
        let mut b = Session::restore(&cp).unwrap();
        let p = b.resume_at(acked).unwrap().expect("mid-body");
        b.resume_record(&p, &body[p.plain.start as usize..p.plain.end as usize])
            .unwrap();
        let out = b.take_output();
        assert_eq!(out, a.take_output());
        let from = (acked - cp.write_stream_offset) as usize;
        assert_eq!(&out[..], &wire[from..from + out.len()], "the same bytes");
        assert!(b.resume_record(&p, &body[..10]).is_err(), "wrong piece");
    }
}

/// A body closed right after its last record (`Connection: close`): the
/// checkpoint holds the body's anchor and the close_notify behind it (the
/// box puts the anchor back, as `serve::tls` does). Restored, the session
/// gives a client that lacks the close_notify, or body records and the
/// close_notify, the rest and the close_notify sealed again; one that has
/// it all (its acknowledgement may count the FIN) gets nothing more.
#[test]
fn a_body_closed_right_after_resumes_with_its_close_notify() {
    for (version, suite) in SUITES.into_iter().take(4) {
        let cert = cert(&[NAME]);
        let cfg = server_config(&cert);
        let probe = connect(client(&cert, version, suite, false), &cfg);
        let notify = probe.server.close_notify_len() as u64;
        for lacking in [notify, notify + 20_000, 0, u64::MAX] {
            let mut pair = connect(client(&cert, version, suite, false), &cfg);
            assert_eq!(pair.client_sends(REQUEST), REQUEST);
            let body = body(100_000 + 7);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            pair.server.send(head.as_bytes()).unwrap();
            let mut received = pair.deliver().0;
            let anchor = pair.server.start_body(body.len() as u64).unwrap();
            while pair.server.send_body_records(&body, 8).unwrap() > 0 {}
            pair.server.close().unwrap();
            let out = pair.server.take_output();
            let mut cp = pair.server.checkpoint();
            assert!(cp.body.is_none() && cp.sent_close_notify);
            cp.body = Some(anchor);
            cp.next_body_record = anchor.record_count();
            // u64::MAX: the client has everything and acknowledged the FIN.
            let keep = match lacking {
                u64::MAX => out.len(),
                n => out.len() - n as usize,
            };
            let (got, eof) = pair.deliver_bytes(&out[..keep]);
            received.extend(got);
            let acked = pair.delivered + u64::from(lacking == u64::MAX);
            pair.server = Session::restore(&cp).unwrap();
            if let Some(p) = pair.server.resume_at(acked).unwrap() {
                let plain = &body[p.plain.start as usize..p.plain.end as usize];
                pair.server.resume_record(&p, plain).unwrap();
                while pair.server.send_body_records(&body, 8).unwrap() > 0 {}
            }
            let (tail, eof_after) = pair.deliver();
            received.extend(tail);
            let mut expected = head.into_bytes();
            expected.extend_from_slice(&body);
            assert!(
                received == expected,
                "{suite:#x} lacking {lacking}: byte-exact"
            );
            assert!(
                eof || eof_after,
                "{suite:#x} lacking {lacking}: close_notify"
            );
            if lacking == 0 || lacking == u64::MAX {
                assert!(!eof_after, "nothing sent twice");
            }
        }
    }
}
