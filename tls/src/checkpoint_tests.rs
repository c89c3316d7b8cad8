//! Tests of the checkpoint block: layout round trip, garbage, sealing.

use super::*;
use crate::seal::{self, CheckpointSealer};
use proptest::prelude::*;

fn sample(version: Version) -> Checkpoint {
    let (suite, write, read) = match version {
        Version::Tls13 => (
            0x1302,
            DirectionKeys::from_secret(Aead::Aes256Gcm, &[3; 48], 17, 2).unwrap(),
            DirectionKeys::from_secret(Aead::Aes256Gcm, &[4; 48], 5, 1).unwrap(),
        ),
        Version::Tls12 => (
            0xc02f,
            DirectionKeys::from_key_iv(Aead::Aes128Gcm, &[3; 16], &[5; 12], 17).unwrap(),
            DirectionKeys::from_key_iv(Aead::Aes128Gcm, &[4; 16], &[6; 12], 5).unwrap(),
        ),
    };
    Checkpoint {
        version,
        suite,
        write: DirectionState::of(&write),
        read: DirectionState::of(&read),
        write_stream_offset: 123_456,
        peer_closed: false,
        sent_close_notify: true,
        body: Some(BodyAnchor {
            body_len: 1 << 20,
            body_offset: 1 << 15,
            write_seq: 9,
            stream_offset: 4000,
            record_size: 1 << 14,
        }),
        next_body_record: 7,
        pending_input: PendingInput::default(),
        pending_lost: false,
    }
}

#[test]
fn block_round_trips_at_its_fixed_length() {
    for v in [Version::Tls12, Version::Tls13] {
        let cp = sample(v);
        let b = cp.to_bytes().unwrap();
        assert_eq!(b.len(), BLOCK_LEN + 2);
        assert_eq!(&b[..4], b"BTLS");
        assert_eq!(Checkpoint::from_bytes(&b).unwrap(), cp);
    }
}

#[test]
fn pending_input_round_trips_sealed_and_within_its_limit() {
    let sealer = CheckpointSealer::new(b"k").unwrap();
    let req = b"GET /1M.bin HTTP/1.1\r\nHost: a\r\n\r\nGET /1K.bin HTTP/1.1\r\nHost: a\r\n\r\n";
    let cp = Checkpoint {
        pending_input: PendingInput(req.to_vec()),
        ..sample(Version::Tls13)
    };
    let b = cp.to_bytes().unwrap();
    assert_eq!(b.len(), BLOCK_LEN + 2 + req.len());
    assert_eq!(Checkpoint::from_bytes(&b).unwrap(), cp);
    let sealed = cp.seal(&sealer, b"conn").unwrap();
    assert_eq!(sealed.len(), SEALED_LEN + 2 + req.len());
    // The requests are sealed like the keys: not in the clear, not in Debug.
    assert!(!sealed.windows(11).any(|w| w == b"GET /1M.bin"));
    assert!(!format!("{cp:?}").contains("GET"));
    assert_eq!(Checkpoint::open(&sealed, b"k", b"conn").unwrap(), cp);
    // The largest fits a segment record's 1,024 bytes; one more is refused.
    let full = Checkpoint {
        pending_input: PendingInput(vec![b'x'; MAX_PENDING_INPUT]),
        ..sample(Version::Tls12)
    };
    assert!(full.seal(&sealer, b"conn").unwrap().len() <= 1024);
    let over = Checkpoint {
        pending_input: PendingInput(vec![b'x'; MAX_PENDING_INPUT + 1]),
        ..sample(Version::Tls12)
    };
    assert!(over.to_bytes().is_err());
    // A length field that lies, or bytes after the input, are refused.
    let mut long = b.clone();
    long.push(0);
    assert!(Checkpoint::from_bytes(&long).is_err());
    assert!(Checkpoint::from_bytes(&b[..b.len() - 1]).is_err());
}

#[test]
fn pending_input_lost_round_trips() {
    let cp = Checkpoint {
        pending_lost: true,
        ..sample(Version::Tls12)
    };
    let b = cp.to_bytes().unwrap();
    assert_eq!(b[10] & 8, 8, "flag 8");
    assert_eq!(Checkpoint::from_bytes(&b).unwrap(), cp);
}

#[test]
fn a_version_1_block_reads_with_no_pending_input() {
    let cp = sample(Version::Tls13);
    let mut b = cp.to_bytes().unwrap();
    b.truncate(BLOCK_LEN);
    b[4] = 1;
    assert_eq!(Checkpoint::from_bytes(&b).unwrap(), cp);
}

#[test]
fn block_without_body_round_trips() {
    let cp = Checkpoint {
        body: None,
        ..sample(Version::Tls13)
    };
    assert_eq!(Checkpoint::from_bytes(&cp.to_bytes().unwrap()).unwrap(), cp);
}

#[test]
fn unknown_format_version_and_wrong_length_are_refused() {
    let mut b = sample(Version::Tls13).to_bytes().unwrap();
    assert!(Checkpoint::from_bytes(&b[..BLOCK_LEN - 1]).is_err());
    b[4] = 3;
    assert_eq!(
        Checkpoint::from_bytes(&b),
        Err(TlsError::Checkpoint("unknown block format version"))
    );
}

#[test]
fn a_key_that_does_not_follow_from_its_secret_is_refused() {
    let mut b = sample(Version::Tls13).to_bytes().unwrap();
    b[12 + 13] ^= 1; // first byte of the write key
    assert!(Checkpoint::from_bytes(&b).is_err());
}

#[test]
fn debug_of_a_checkpoint_shows_no_secret() {
    let s = format!("{:?}", sample(Version::Tls13));
    assert!(s.contains("redacted"));
    assert!(!s.contains("[3, 3"), "{s}");
}

#[test]
fn sealed_block_opens_with_the_cluster_key_only() {
    let sealer = CheckpointSealer::new(b"cluster key A").unwrap();
    let cp = sample(Version::Tls13);
    let sealed = cp.seal(&sealer, b"10.0.0.1:443>10.0.0.9:5555").unwrap();
    assert_eq!(sealed.len(), SEALED_LEN + 2);
    // The secrets do not appear in the clear.
    let secret = [3u8; 48];
    assert!(!sealed.windows(48).any(|w| w == secret));
    assert_eq!(
        Checkpoint::open(&sealed, b"cluster key A", b"10.0.0.1:443>10.0.0.9:5555").unwrap(),
        cp
    );
    assert_eq!(
        Checkpoint::open(&sealed, b"cluster key B", b"10.0.0.1:443>10.0.0.9:5555"),
        Err(TlsError::CheckpointSeal)
    );
    // Bound to its connection: another connection's AAD does not open it.
    assert_eq!(
        Checkpoint::open(&sealed, b"cluster key A", b"10.0.0.1:443>10.0.0.9:5556"),
        Err(TlsError::CheckpointSeal)
    );
    // Any byte changed, the head (key id, counter) included: refused.
    for at in [0, 5, 17, 19, 40, SEALED_LEN - 1] {
        let mut tampered = sealed.clone();
        tampered[at] ^= 0x80;
        assert_eq!(
            Checkpoint::open(&tampered, b"cluster key A", b"10.0.0.1:443>10.0.0.9:5555"),
            Err(TlsError::CheckpointSeal),
            "byte {at}"
        );
    }
}

#[test]
fn one_sealer_never_repeats_a_nonce_and_two_sealers_use_two_keys() {
    let a = CheckpointSealer::new(b"k").unwrap();
    let b = CheckpointSealer::new(b"k").unwrap();
    let cp = sample(Version::Tls12);
    let (a1, a2, b1) = (
        cp.seal(&a, b"x").unwrap(),
        cp.seal(&a, b"x").unwrap(),
        cp.seal(&b, b"x").unwrap(),
    );
    // Same key id, counters 0 and 1: the same block seals differently.
    assert_eq!(a1[4..16], a2[4..16]);
    assert_eq!(a1[16..20], 0u32.to_le_bytes());
    assert_eq!(a2[16..20], 1u32.to_le_bytes());
    assert_ne!(a1[20..], a2[20..]);
    // Another sealer (another worker or box) draws another key id.
    assert_ne!(a1[4..16], b1[4..16]);
    for s in [&a1, &a2, &b1] {
        assert_eq!(Checkpoint::open(s, b"k", b"x").unwrap(), cp);
    }
}

#[test]
fn a_block_an_older_box_sealed_still_opens() {
    // An older box: block format 1 (no pending input) in sealed form 1.
    let cp = sample(Version::Tls13);
    let mut block = cp.to_bytes().unwrap();
    block.truncate(BLOCK_LEN);
    block[4..6].copy_from_slice(&1u16.to_le_bytes());
    let v1 = seal::seal_v1(&block, b"k", b"conn").unwrap();
    assert_eq!(&v1[..4], b"BTS1");
    assert_eq!(v1.len(), SEALED_LEN);
    assert_eq!(Checkpoint::open(&v1, b"k", b"conn").unwrap(), cp);
    assert_eq!(
        Checkpoint::open(&v1, b"other", b"conn"),
        Err(TlsError::CheckpointSeal)
    );
}

proptest! {
    #[test]
    fn garbage_blocks_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Checkpoint::from_bytes(&bytes);
        let _ = Checkpoint::open(&bytes, b"k", b"");
    }

    #[test]
    fn single_byte_corruption_never_panics(at in 0usize..BLOCK_LEN, x in 1u8..=255) {
        let mut b = sample(Version::Tls13).to_bytes().unwrap();
        b[at] ^= x;
        let _ = Checkpoint::from_bytes(&b);
    }
}
