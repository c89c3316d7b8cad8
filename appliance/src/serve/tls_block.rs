//! The sealed TLS block a connection's checkpoints carry, sealed once per
//! change of the record layer's state: a request is checkpointed several
//! times (its request covered, its response started, its progress) while
//! its TLS state changes once or twice, and sealing a block costs as much
//! as sealing a response's 1 KiB body record. Knows the block as bytes;
//! not what is in it, nor where it is written.

use std::cell::RefCell;

use baton_tls::{Checkpoint, CheckpointSealer, TlsError};

/// One connection's last sealed block and the plaintext it seals.
#[derive(Debug, Default)]
pub struct LastSealed(RefCell<Option<(Vec<u8>, Vec<u8>)>>);

impl LastSealed {
    /// `cp` sealed by `sealer`, bound to `aad`: the last block again when
    /// `cp` encodes to the same bytes, else a new one.
    pub fn seal(
        &self,
        sealer: &CheckpointSealer,
        cp: &Checkpoint,
        aad: &[u8],
    ) -> Result<Vec<u8>, TlsError> {
        let plain = cp.to_bytes()?;
        let mut last = self.0.borrow_mut();
        if let Some((_, sealed)) = last.as_ref().filter(|(p, _)| *p == plain) {
            return Ok(sealed.clone());
        }
        let sealed = sealer.seal(&plain, aad)?;
        *last = Some((plain, sealed.clone()));
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_tls::checkpoint::DirectionState;
    use baton_tls::keys::DirectionKeys;
    use baton_tls::{Aead, Version};

    fn sample() -> Checkpoint {
        let keys = |s: u8| DirectionKeys::from_secret(Aead::Aes128Gcm, &[s; 32], 1, 0).unwrap();
        Checkpoint {
            version: Version::Tls13,
            suite: 0x1301,
            write: DirectionState::of(&keys(1)),
            read: DirectionState::of(&keys(2)),
            write_stream_offset: 5000,
            peer_closed: false,
            sent_close_notify: false,
            body: None,
            next_body_record: 0,
            pending_input: Default::default(),
            pending_lost: false,
        }
    }

    #[test]
    fn an_unchanged_state_gets_the_same_block_and_a_change_a_new_one() {
        let sealer = CheckpointSealer::new(b"k").unwrap();
        let last = LastSealed::default();
        let mut cp = sample();
        let a = last.seal(&sealer, &cp, b"conn").unwrap();
        assert_eq!(last.seal(&sealer, &cp, b"conn").unwrap(), a);
        cp.write_stream_offset += 1;
        let b = last.seal(&sealer, &cp, b"conn").unwrap();
        assert_ne!(a, b);
        assert_eq!(Checkpoint::open(&b, b"k", b"conn").unwrap(), cp);
    }
}
