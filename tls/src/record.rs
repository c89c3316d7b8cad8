//! Record protection (RFC 8446 §5, RFC 5246 §6.2.3.3, RFC 7905): seals one
//! record at a given sequence number and opens the record at the front of
//! a buffer.
//!
//! Pure functions of (keys, version, seq, bytes): sealing the same
//! plaintext at the same sequence number gives the same ciphertext, which
//! is what lets a survivor regenerate a body record (see `body`). This
//! module keeps no state and knows nothing of alerts, KeyUpdate or
//! checkpoints.

use crate::error::TlsError;
use crate::keys::{Aead, DirectionKeys, Version, TAG_LEN};

/// Record header length (type, version, length).
pub const HEADER_LEN: usize = 5;
/// Most plaintext in one record (RFC 8446 §5.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// Most ciphertext in one record (RFC 8446 §5.2).
pub const MAX_CIPHERTEXT: usize = (1 << 14) + 256;

/// Record content types (RFC 8446 §5.1).
pub mod content {
    /// change_cipher_spec.
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data.
    pub const APPLICATION_DATA: u8 = 23;
}

/// Wire bytes a record adds to its plaintext.
pub fn overhead(version: Version, aead: Aead) -> usize {
    match version {
        Version::Tls13 => HEADER_LEN + 1 + TAG_LEN,
        Version::Tls12 => HEADER_LEN + aead.tls12_explicit_len() + TAG_LEN,
    }
}

/// Appends to `out` the record of `content_type` carrying `plaintext`
/// (at most [`MAX_PLAINTEXT`] bytes), sealed at sequence number `seq`.
pub fn seal(
    keys: &DirectionKeys,
    version: Version,
    seq: u64,
    content_type: u8,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TlsError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(TlsError::RecordOverflow(plaintext.len()));
    }
    let start = out.len();
    let sealed = seal_into(keys, version, seq, content_type, plaintext, out);
    if sealed.is_err() {
        // A half-written record must not reach the wire.
        out.truncate(start);
    }
    sealed
}

fn seal_into(
    keys: &DirectionKeys,
    version: Version,
    seq: u64,
    content_type: u8,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TlsError> {
    let nonce = keys.nonce(seq);
    match version {
        Version::Tls13 => {
            // TLSInnerPlaintext: content ‖ type, no padding; the outer type
            // is always application_data and the header is the AAD.
            let len = plaintext.len() + 1 + TAG_LEN;
            let header = header(content::APPLICATION_DATA, len);
            // Sealed in place at the end of `out`: no buffer per record.
            out.reserve(HEADER_LEN + len);
            out.extend_from_slice(&header);
            let from = out.len();
            out.extend_from_slice(plaintext);
            out.push(content_type);
            keys.seal_tail(nonce, &header, out, from)?;
        }
        Version::Tls12 => {
            let explicit = keys.aead().tls12_explicit_len();
            let aad = tls12_aad(seq, content_type, plaintext.len());
            out.reserve(HEADER_LEN + explicit + plaintext.len() + TAG_LEN);
            out.extend_from_slice(&header(content_type, explicit + plaintext.len() + TAG_LEN));
            // GCM: the explicit nonce is the last 8 bytes of the nonce
            // (rustls' construction, unique per sequence number).
            out.extend_from_slice(&nonce[12 - explicit..]);
            let from = out.len();
            out.extend_from_slice(plaintext);
            keys.seal_tail(nonce, &aad, out, from)?;
        }
    }
    Ok(())
}

/// One record opened from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// Bytes of the buffer the record took.
    pub consumed: usize,
    /// The (inner, for TLS 1.3) content type.
    pub content_type: u8,
    /// The plaintext.
    pub plaintext: Vec<u8>,
}

/// Opens the record at the front of `input` at sequence number `seq`.
/// `Ok(None)`: the record is not complete yet.
pub fn open(
    keys: &DirectionKeys,
    version: Version,
    seq: u64,
    input: &[u8],
) -> Result<Option<Opened>, TlsError> {
    let Some(hdr) = input.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let outer_type = hdr[0];
    if hdr[1] != 3 {
        return Err(TlsError::Decode("record version"));
    }
    let len = u16::from_be_bytes([hdr[3], hdr[4]]) as usize;
    if len > MAX_CIPHERTEXT {
        return Err(TlsError::RecordOverflow(len));
    }
    let Some(body) = input.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let consumed = HEADER_LEN + len;
    let nonce = keys.nonce(seq);
    let opened = match version {
        Version::Tls13 => {
            if outer_type != content::APPLICATION_DATA {
                return Err(TlsError::UnexpectedMessage(
                    "plaintext record after the handshake",
                ));
            }
            if len < 1 + TAG_LEN {
                return Err(TlsError::BadRecordMac);
            }
            let mut buf = body.to_vec();
            let n = keys.open_with(nonce, hdr, &mut buf)?;
            buf.truncate(n);
            // Padding is zeros after the content type (RFC 8446 §5.4).
            let Some(type_at) = buf.iter().rposition(|&b| b != 0) else {
                return Err(TlsError::UnexpectedMessage("record without content type"));
            };
            let content_type = buf[type_at];
            buf.truncate(type_at);
            Opened {
                consumed,
                content_type,
                plaintext: buf,
            }
        }
        Version::Tls12 => {
            if !matches!(
                outer_type,
                content::ALERT | content::HANDSHAKE | content::APPLICATION_DATA
            ) {
                return Err(TlsError::UnexpectedMessage(
                    "record type after the handshake",
                ));
            }
            let explicit = keys.aead().tls12_explicit_len();
            if len < explicit + TAG_LEN {
                return Err(TlsError::BadRecordMac);
            }
            let mut nonce = nonce;
            nonce[12 - explicit..].copy_from_slice(&body[..explicit]);
            let aad = tls12_aad(seq, outer_type, len - explicit - TAG_LEN);
            let mut buf = body[explicit..].to_vec();
            let n = keys.open_with(nonce, &aad, &mut buf)?;
            buf.truncate(n);
            Opened {
                consumed,
                content_type: outer_type,
                plaintext: buf,
            }
        }
    };
    if opened.plaintext.len() > MAX_PLAINTEXT {
        return Err(TlsError::RecordOverflow(opened.plaintext.len()));
    }
    Ok(Some(opened))
}

fn header(content_type: u8, len: usize) -> [u8; HEADER_LEN] {
    let l = (len as u16).to_be_bytes();
    [content_type, 3, 3, l[0], l[1]]
}

/// TLS 1.2 additional data: seq ‖ type ‖ version ‖ plaintext length.
fn tls12_aad(seq: u64, content_type: u8, plain_len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = content_type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(aead: Aead) -> DirectionKeys {
        DirectionKeys::from_key_iv(aead, &vec![9u8; aead.key_len()], &[4u8; 12], 0).unwrap()
    }

    const ALL: [(Version, Aead); 6] = [
        (Version::Tls13, Aead::Aes128Gcm),
        (Version::Tls13, Aead::Aes256Gcm),
        (Version::Tls13, Aead::Chacha20Poly1305),
        (Version::Tls12, Aead::Aes128Gcm),
        (Version::Tls12, Aead::Aes256Gcm),
        (Version::Tls12, Aead::Chacha20Poly1305),
    ];

    #[test]
    fn seal_then_open_round_trips_with_the_advertised_overhead() {
        for (v, a) in ALL {
            let k = keys(a);
            let mut wire = Vec::new();
            seal(
                &k,
                v,
                5,
                content::APPLICATION_DATA,
                b"GET / HTTP/1.1\r\n",
                &mut wire,
            )
            .unwrap();
            assert_eq!(wire.len(), 16 + overhead(v, a), "{v:?} {a:?}");
            let o = open(&k, v, 5, &wire).unwrap().unwrap();
            assert_eq!(
                (o.consumed, o.content_type),
                (wire.len(), content::APPLICATION_DATA)
            );
            assert_eq!(o.plaintext, b"GET / HTTP/1.1\r\n");
            // Same seq, same plaintext: same bytes (deterministic records).
            let mut again = Vec::new();
            seal(
                &k,
                v,
                5,
                content::APPLICATION_DATA,
                b"GET / HTTP/1.1\r\n",
                &mut again,
            )
            .unwrap();
            assert_eq!(again, wire);
        }
    }

    #[test]
    fn wrong_sequence_number_is_bad_record_mac() {
        for (v, a) in ALL {
            let k = keys(a);
            let mut wire = Vec::new();
            seal(&k, v, 1, content::ALERT, &[1, 0], &mut wire).unwrap();
            assert_eq!(
                open(&k, v, 2, &wire),
                Err(TlsError::BadRecordMac),
                "{v:?} {a:?}"
            );
        }
    }

    #[test]
    fn truncated_record_waits_for_more() {
        let k = keys(Aead::Aes128Gcm);
        let mut wire = Vec::new();
        seal(
            &k,
            Version::Tls13,
            0,
            content::APPLICATION_DATA,
            &[0u8; 100],
            &mut wire,
        )
        .unwrap();
        for cut in 0..wire.len() {
            assert_eq!(open(&k, Version::Tls13, 0, &wire[..cut]), Ok(None));
        }
    }

    /// RFC 8446 §5.2: "The length MUST NOT exceed 2^14 + 256 bytes. An
    /// endpoint that receives a record that exceeds this length MUST
    /// terminate the connection with a "record_overflow" alert."
    #[test]
    fn oversized_record_is_record_overflow_before_it_arrives_whole() {
        let k = keys(Aead::Aes128Gcm);
        let len = MAX_CIPHERTEXT + 1;
        let hdr = [23, 3, 3, (len >> 8) as u8, len as u8];
        assert_eq!(
            open(&k, Version::Tls13, 0, &hdr),
            Err(TlsError::RecordOverflow(len))
        );
        assert_eq!(
            TlsError::RecordOverflow(len).alert(),
            Some(crate::error::alert::RECORD_OVERFLOW)
        );
    }

    proptest! {
        /// Random bytes never panic the opener, whatever the suite.
        #[test]
        fn random_bytes_never_panic_the_opener(bytes in proptest::collection::vec(any::<u8>(), 0..600), which in 0usize..6, seq in any::<u64>()) {
            let (v, a) = ALL[which];
            let _ = open(&keys(a), v, seq, &bytes);
        }

        /// A plausible header over random bytes is refused, never opened.
        #[test]
        fn forged_records_do_not_open(body in proptest::collection::vec(any::<u8>(), 0..300), which in 0usize..6) {
            let (v, a) = ALL[which];
            let mut wire = vec![23, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
            wire.extend_from_slice(&body);
            prop_assert!(open(&keys(a), v, 0, &wire).is_err());
        }
    }
}
