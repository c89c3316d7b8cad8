//! The record layer against a rustls client: alerts, bad input,
//! KeyUpdate, renegotiation, SNI.

use super::harness::*;
use crate::error::{alert, TlsError};
use crate::keys::{Aead, DirectionKeys, Version};
use crate::record::{self, content};
use crate::session::Event;

/// The client's keys, taken out of rustls so a test can forge records.
fn client_keys(
    pair: Pair,
) -> (
    crate::session::Session,
    DirectionKeys,
    DirectionKeys,
    Version,
) {
    let version = pair.server.version();
    let aead = Aead::from_suite(pair.server.suite()).unwrap();
    let secrets = pair.client.dangerous_extract_secrets().unwrap();
    let keys = |(seq, s): (u64, rustls::ConnectionTrafficSecrets)| match s {
        rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            DirectionKeys::from_key_iv(aead, key.as_ref(), iv.as_ref(), seq).unwrap()
        }
        _ => unreachable!(),
    };
    (pair.server, keys(secrets.tx), keys(secrets.rx), version)
}

fn extracting_pair(i: usize) -> Pair {
    let (v, s) = SUITES[i];
    let cert = cert(&[NAME]);
    connect(client(&cert, v, s, true), &server_config(&cert))
}

/// The alert in the server's output, opened with the client's read keys.
fn alert_sent(out: &[u8], rx: &DirectionKeys, version: Version) -> [u8; 2] {
    let o = record::open(rx, version, rx.seq, out).unwrap().unwrap();
    assert_eq!(o.content_type, content::ALERT);
    o.plaintext.try_into().unwrap()
}

/// RFC 8446 §5.2: "If the decryption fails, the receiver MUST terminate
/// the connection with a "bad_record_mac" alert."
#[test]
fn flipped_bit_is_bad_record_mac_and_the_client_sees_the_alert() {
    for (v, s) in SUITES {
        let cert = cert(&[NAME]);
        let mut pair = connect(client(&cert, v, s, false), &server_config(&cert));
        std::io::Write::write_all(&mut pair.client.writer(), b"hello").unwrap();
        let mut bytes = client_output(&mut pair.client);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            pair.server.handle_input(&bytes),
            Err(TlsError::BadRecordMac)
        );
        assert!(pair.server.is_closed());
        let out = pair.server.take_output();
        pair.client.read_tls(&mut &out[..]).unwrap();
        let err = pair.client.process_new_packets().unwrap_err();
        assert_eq!(
            err,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac),
            "{s:#x}"
        );
        assert_eq!(pair.server.handle_input(b"more"), Err(TlsError::Closed));
    }
}

/// RFC 8446 §5.2: a record over 2^14 + 256 bytes is record_overflow,
/// refused from its header alone.
#[test]
fn oversized_record_is_record_overflow() {
    for i in [0, 3] {
        let (mut server, _tx, rx, v) = client_keys(extracting_pair(i));
        let len = record::MAX_CIPHERTEXT + 1;
        let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
        assert_eq!(
            server.handle_input(&hdr),
            Err(TlsError::RecordOverflow(len))
        );
        assert_eq!(
            alert_sent(&server.take_output(), &rx, v),
            [2, alert::RECORD_OVERFLOW]
        );
    }
}

#[test]
fn client_close_notify_ends_the_read_side_only() {
    for (v, s) in SUITES {
        let cert = cert(&[NAME]);
        let mut pair = connect(client(&cert, v, s, false), &server_config(&cert));
        pair.client.send_close_notify();
        let bytes = client_output(&mut pair.client);
        pair.server.handle_input(&bytes).unwrap();
        assert_eq!(pair.server.poll_event(), Some(Event::PeerClosed));
        assert!(!pair.server.is_closed());
        pair.server.send(b"bye").unwrap();
        pair.server.close().unwrap();
        let (plain, eof) = pair.deliver();
        assert_eq!((plain, eof), (b"bye".to_vec(), true));
        assert!(pair.server.is_closed());
    }
}

#[test]
fn fatal_alert_from_the_peer_closes_without_an_answer() {
    for i in [0, 3] {
        let pair = extracting_pair(i);
        let (mut server, mut tx, _rx, v) = client_keys(pair);
        let mut wire = Vec::new();
        record::seal(
            &tx,
            v,
            tx.seq,
            content::ALERT,
            &[2, alert::HANDSHAKE_FAILURE],
            &mut wire,
        )
        .unwrap();
        tx.seq += 1;
        assert_eq!(
            server.handle_input(&wire),
            Err(TlsError::PeerAlert(alert::HANDSHAKE_FAILURE))
        );
        assert!(server.is_closed() && server.take_output().is_empty());
    }
}

/// RFC 5746 §4.4 / issue 14: a TLS 1.2 client that starts a renegotiation
/// gets an alert and the connection closes.
#[test]
fn tls12_renegotiation_is_refused_with_an_alert() {
    for i in 3..6 {
        let pair = extracting_pair(i);
        let (mut server, tx, rx, v) = client_keys(pair);
        assert_eq!(v, Version::Tls12);
        let hello = [1u8, 0, 0, 4, 3, 3, 0, 0];
        let mut wire = Vec::new();
        record::seal(&tx, v, tx.seq, content::HANDSHAKE, &hello, &mut wire).unwrap();
        assert_eq!(server.handle_input(&wire), Err(TlsError::Renegotiation));
        assert_eq!(
            alert_sent(&server.take_output(), &rx, v),
            [2, alert::NO_RENEGOTIATION]
        );
        assert!(server.is_closed());
    }
}

/// RFC 8446 §4.6.3: after a KeyUpdate, the peer's next record is under
/// the next key, and update_requested makes us send one.
#[test]
fn key_update_from_the_server_is_followed_by_the_client() {
    for i in 0..3 {
        let mut pair = extracting_pair(i);
        pair.server.update_keys(true).unwrap();
        pair.server.send(b"after").unwrap();
        let (plain, _) = pair.deliver();
        assert_eq!(plain, b"after");
        // The client answered with its own KeyUpdate, then sends data.
        assert_eq!(pair.client_sends(b"ping"), b"ping");
        assert_eq!(
            pair.server.read_seq(),
            1,
            "KeyUpdate then one record under the new key"
        );
        assert_eq!(pair.server.checkpoint().read.generation, 1);
        assert_eq!(pair.server.checkpoint().write.generation, 1);
    }
}

#[test]
fn tls12_has_no_key_update() {
    let mut pair = extracting_pair(3);
    assert_eq!(
        pair.server.update_keys(false),
        Err(TlsError::KeyUpdateWithoutSecret)
    );
}

#[test]
fn sni_picks_the_certificate_and_unknown_names_get_the_default() {
    use crate::config::CertifiedKeys;
    let a = cert(&["a.baton.test"]);
    let b = cert(&["b.baton.test"]);
    let mut keys = CertifiedKeys::new();
    let ka = CertifiedKeys::load(vec![a.der.clone()], a.key.clone_key()).unwrap();
    let kb = CertifiedKeys::load(vec![b.der.clone()], b.key.clone_key()).unwrap();
    keys.add("a.baton.test", ka.clone());
    keys.add("B.baton.test", kb.clone());
    keys.set_default(ka.clone());
    assert!(std::sync::Arc::ptr_eq(
        &keys.pick(Some("b.BATON.test")).unwrap(),
        &kb
    ));
    assert!(std::sync::Arc::ptr_eq(
        &keys.pick(Some("c.baton.test")).unwrap(),
        &ka
    ));
    assert!(std::sync::Arc::ptr_eq(&keys.pick(None).unwrap(), &ka));
    assert!(CertifiedKeys::new().pick(Some("x")).is_none());
}

#[test]
fn garbage_client_hello_gets_an_alert_not_a_panic() {
    let cert = cert(&[NAME]);
    let cfg = server_config(&cert);
    let mut hs = crate::handshake::Handshake::new(&cfg).unwrap();
    let mut out = Vec::new();
    let garbage = [22u8, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef];
    assert!(matches!(
        hs.handle_input(&garbage, &mut out),
        Err(TlsError::Handshake(_))
    ));
    assert_eq!(out.first(), Some(&21), "an alert record went out: {out:?}");
    assert!(hs.handle_input(b"x", &mut Vec::new()).is_err());
}

proptest::proptest! {
    #[test]
    fn random_bytes_after_the_handshake_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
        let cert = cert(&[NAME]);
        let mut pair = connect(client(&cert, SUITES[0].0, SUITES[0].1, false), &server_config(&cert));
        let _ = pair.server.handle_input(&bytes);
        let _ = pair.server.take_output();
    }
}

/// A client KeyUpdate in the same flight as its Finished is handled by
/// rustls before the switch: Baton's keys must follow it (generation 1 on
/// both sides) rather than restart from the handshake's secrets.
#[test]
fn key_update_right_behind_the_client_finished_is_followed() {
    for tickets in [false, true] {
        key_update_right_behind_the_client_finished(tickets);
    }
}

/// With tickets on, the server's KeyUpdate answer follows the tickets
/// sealed under the same first key: its sequence number is their count.
fn key_update_right_behind_the_client_finished(tickets: bool) {
    for (v, s) in SUITES.into_iter().take(3) {
        let cert = cert(&[NAME]);
        let mut cfg = server_config(&cert);
        if tickets {
            cfg = cfg.with_tickets(std::sync::Arc::new(crate::ClusterTicketer::new(
                b"a cluster key of 32 bytes, test.",
                3_600,
            )));
        }
        let mut client = client(&cert, v, s, false);
        let mut hs = crate::handshake::Handshake::new(&cfg).unwrap();
        let mut updated = false;
        let mut pair = None;
        let mut delivered = 0u64;
        for _ in 0..10 {
            let mut bytes = client_output(&mut client);
            if !client.is_handshaking() && !updated {
                client.refresh_traffic_keys().unwrap();
                bytes.extend(client_output(&mut client));
                updated = true;
            }
            let mut out = Vec::new();
            let p = hs.handle_input(&bytes, &mut out).unwrap();
            delivered += out.len() as u64;
            client_input(&mut client, &out);
            if let crate::handshake::Progress::Established(e) = p {
                pair = Some(Pair {
                    client,
                    server: e.session,
                    delivered,
                    sni: e.sni,
                    alpn: e.alpn,
                });
                break;
            }
        }
        let mut pair = pair.expect("handshake done");
        assert!(updated);
        assert_eq!(pair.client_sends(b"ping"), b"ping");
        pair.server.send(b"pong").unwrap();
        assert_eq!(pair.deliver().0, b"pong");
        let cp = pair.server.checkpoint();
        assert_eq!(
            (cp.read.generation, cp.write.generation),
            (1, 1),
            "{s:#x} tickets {tickets}"
        );
    }
}
