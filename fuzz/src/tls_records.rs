//! Target `tls_records`: Baton's own post-handshake TLS record layer
//! (`baton_tls::Session`) as a client drives it: raw bytes, valid records,
//! records with a flipped byte or cut short, KeyUpdates, close_notify, a
//! body in flight, and checkpoints taken, parsed and restored between
//! them. Nothing a client sends, and no checkpoint block, may panic it.
//!
//! Input: a setup byte (version and suite), then [`crate::records`] whose
//! control byte picks the operation.

use baton_tls::keys::DirectionKeys;
use baton_tls::{Aead, Checkpoint, Session, Version};

/// The suites the record layer serves: TLS 1.3's three, then TLS 1.2's.
const SUITES: [(Version, u16); 6] = [
    (Version::Tls13, 0x1301),
    (Version::Tls13, 0x1302),
    (Version::Tls13, 0x1303),
    (Version::Tls12, 0xc02f),
    (Version::Tls12, 0xc030),
    (Version::Tls12, 0xcca8),
];

/// The keys of one direction, the same for both ends (`fill` tells the
/// directions apart).
fn keys(version: Version, aead: Aead, fill: u8) -> Option<DirectionKeys> {
    match version {
        Version::Tls13 => {
            DirectionKeys::from_secret(aead, &vec![fill; aead.secret_len()], 0, 0).ok()
        }
        Version::Tls12 => {
            DirectionKeys::from_key_iv(aead, &vec![fill; aead.key_len()], &[fill ^ 0x5a; 12], 1)
                .ok()
        }
    }
}

/// A server and a client session over the same keys.
fn pair(setup: u8) -> Option<(Session, Session)> {
    let (version, suite) = SUITES[usize::from(setup) % SUITES.len()];
    let aead = Aead::from_suite(suite)?;
    let server = Session::new(
        version,
        suite,
        keys(version, aead, 0x11)?,
        keys(version, aead, 0x22)?,
        0,
    )
    .ok()?;
    let client = Session::new(
        version,
        suite,
        keys(version, aead, 0x22)?,
        keys(version, aead, 0x11)?,
        0,
    )
    .ok()?;
    Some((server, client))
}

/// Hands what one end wrote to the other, and drains both ends' events.
fn deliver(from: &mut Session, to: &mut Session) {
    let bytes = from.take_output();
    if !bytes.is_empty() {
        let _ = to.handle_input(&bytes);
    }
    while from.poll_event().is_some() {}
    while to.poll_event().is_some() {}
}

pub fn run(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let Some((mut server, mut client)) = pair(setup) else {
        return;
    };
    for (ctl, bytes) in crate::records(rest) {
        let first = bytes.first().copied().unwrap_or(0);
        match ctl % 10 {
            // Whatever a client might send, as it is.
            0 => {
                let _ = server.handle_input(bytes);
            }
            // A valid record.
            1 => {
                let _ = client.send(bytes);
                deliver(&mut client, &mut server);
            }
            // A valid record with one byte flipped (header, nonce, body or
            // tag): a bad MAC or a bad header.
            2 => {
                let _ = client.send(bytes);
                let mut wire = client.take_output();
                if !wire.is_empty() {
                    let at = usize::from(first) % wire.len();
                    wire[at] ^= 0x80 | first;
                    let _ = server.handle_input(&wire);
                }
            }
            // A valid record cut short: the rest may come with the next.
            3 => {
                let _ = client.send(bytes);
                let wire = client.take_output();
                let cut = usize::from(first) % (wire.len() + 1);
                let _ = server.handle_input(&wire[..cut]);
            }
            // KeyUpdate from the client, maybe asking for ours; ours goes
            // back to the client.
            4 => {
                let _ = client.update_keys(first & 1 == 1);
                deliver(&mut client, &mut server);
                deliver(&mut server, &mut client);
            }
            // A body in flight from the server, read by the client.
            5 => {
                if server.body().is_none() {
                    let _ = server.start_body(bytes.len() as u64 * 3);
                }
                let _ = server.send_body_records(bytes, u64::from(first % 4) + 1);
                deliver(&mut server, &mut client);
            }
            // The server is checkpointed and restored (a takeover).
            6 => {
                let block = server.checkpoint().to_bytes().unwrap_or_default();
                if let Ok(cp) = Checkpoint::from_bytes(&block) {
                    if let Ok(s) = Session::restore(&cp) {
                        server = s;
                    }
                }
            }
            // A checkpoint block from the segment, whatever it holds.
            7 => {
                if let Ok(cp) = Checkpoint::from_bytes(bytes) {
                    if let Ok(mut s) = Session::restore(&cp) {
                        let _ = s.handle_input(bytes);
                        let _ = s.send(bytes);
                        let _ = s.take_output();
                    }
                }
            }
            // close_notify from the client.
            8 => {
                let _ = client.close();
                deliver(&mut client, &mut server);
            }
            // Data from the server, read by the client.
            _ => {
                let _ = server.send(bytes);
                deliver(&mut server, &mut client);
            }
        }
    }
}

/// Seeds for the corpus (`examples/seeds.rs`): each suite with a request,
/// a KeyUpdate, a body, a takeover and a close; and the bad cases.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let request: &[u8] = b"GET /1K.bin HTTP/1.1\r\nHost: box1\r\n\r\n";
    let mut out = Vec::new();
    for setup in 0..SUITES.len() as u8 {
        let ops: [(u8, &[u8]); 7] = [
            (1, request),
            (4, &[1]),
            (5, &[7; 64]),
            (6, &[]),
            (9, b"HTTP/1.1 200 OK\r\n\r\n"),
            (1, request),
            (8, &[]),
        ];
        out.push((
            format!("suite-{setup}"),
            [vec![setup], crate::join_records(&ops)].concat(),
        ));
        let bad: [(u8, &[u8]); 3] = [
            (2, request),
            (3, &[5, 1, 2, 3]),
            (0, &[23, 3, 3, 0xff, 0xff]),
        ];
        out.push((
            format!("bad-{setup}"),
            [vec![setup], crate::join_records(&bad)].concat(),
        ));
    }
    out
}
