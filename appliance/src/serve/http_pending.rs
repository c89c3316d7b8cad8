//! Requests a plain HTTP connection has read but not answered yet, carried
//! in its checkpoint record's `app_state` (`app_protocol` 1), so that a
//! survivor answers them too. TCP acknowledged those bytes, so the client
//! never sends them again: a checkpoint without them lost every request
//! pipelined behind the one being answered (HTTPS carries the same in its
//! TLS block, `baton_tls::checkpoint::PendingInput`).
//!
//! Layout (little-endian): magic `BHPI`, version 1, flags (bit 0: input was
//! read that this record cannot carry: an upload, a refused request, more
//! than [`MAX_PENDING`] bytes, bytes still in TCP's queue), length u16, the
//! request bytes. Knows the encoding only; not sessions nor records.

use thiserror::Error;

const MAGIC: [u8; 4] = *b"BHPI";
const VERSION: u8 = 1;
const HEADER: usize = 8;
const LOST: u8 = 1;
/// Most request bytes a record carries (as the TLS block's pending input:
/// a slot holds the record with them, three typical GETs).
pub const MAX_PENDING: usize = 704;

/// What a survivor owes the client beyond the response it resumes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingRequests {
    /// Request heads to answer after the resumed response, in order.
    pub input: Vec<u8>,
    /// Input was read that is not in `input`: the survivor closes after
    /// the last answer it can give, so the client asks again.
    pub lost: bool,
}

/// A malformed `app_state` of an HTTP record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PendingError {
    #[error("HTTP pending input: {0} bytes, shorter than its header")]
    Short(usize),
    #[error("HTTP pending input: bad magic or version")]
    Magic,
    #[error(
        "HTTP pending input: length {claimed} but {present} bytes follow (at most {MAX_PENDING})"
    )]
    Length { claimed: usize, present: usize },
}

impl PendingRequests {
    /// From what the session gave (`None`: input it cannot re-serialize)
    /// and the bytes TCP still holds unread.
    pub fn of(unanswered: Option<Vec<u8>>, unread_in_tcp: usize) -> PendingRequests {
        match unanswered {
            Some(input) if input.len() <= MAX_PENDING => PendingRequests {
                input,
                lost: unread_in_tcp > 0,
            },
            _ => PendingRequests {
                input: Vec::new(),
                lost: true,
            },
        }
    }

    /// The record's `app_state`, or `None` when nothing is owed.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.input.is_empty() && !self.lost {
            return None;
        }
        let mut out = Vec::with_capacity(HEADER + self.input.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(if self.lost { LOST } else { 0 });
        out.extend_from_slice(&(self.input.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.input);
        Some(out)
    }

    /// Reads an `app_state` [`Self::encode`] wrote.
    pub fn decode(b: &[u8]) -> Result<PendingRequests, PendingError> {
        if b.len() < HEADER {
            return Err(PendingError::Short(b.len()));
        }
        if b[..4] != MAGIC || b[4] != VERSION {
            return Err(PendingError::Magic);
        }
        let claimed = u16::from_le_bytes([b[6], b[7]]) as usize;
        let present = b.len() - HEADER;
        if claimed != present || claimed > MAX_PENDING {
            return Err(PendingError::Length { claimed, present });
        }
        Ok(PendingRequests {
            input: b[HEADER..].to_vec(),
            lost: b[5] & LOST != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_nothing_owed_writes_nothing() {
        let p = PendingRequests::of(Some(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()), 0);
        assert!(!p.lost);
        let b = p.encode().unwrap();
        assert_eq!(PendingRequests::decode(&b), Ok(p));
        assert_eq!(PendingRequests::of(Some(Vec::new()), 0).encode(), None);
    }

    #[test]
    fn what_cannot_be_carried_is_flagged_lost() {
        for p in [
            PendingRequests::of(None, 0),
            PendingRequests::of(Some(vec![b'x'; MAX_PENDING + 1]), 0),
            PendingRequests::of(Some(b"GET / HTTP/1.1\r\n\r\n".to_vec()), 3),
        ] {
            assert!(p.lost);
            let back = PendingRequests::decode(&p.encode().unwrap()).unwrap();
            assert!(back.lost);
        }
        let full = PendingRequests::of(Some(vec![b'x'; MAX_PENDING]), 0);
        assert_eq!(PendingRequests::decode(&full.encode().unwrap()), Ok(full));
    }

    #[test]
    fn malformed_state_is_an_error_never_a_panic() {
        let good = PendingRequests::of(Some(b"GET / HTTP/1.1\r\n\r\n".to_vec()), 0)
            .encode()
            .unwrap();
        for cut in 0..good.len() {
            assert!(
                PendingRequests::decode(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(PendingRequests::decode(&bad), Err(PendingError::Magic));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            PendingRequests::decode(&long),
            Err(PendingError::Length { .. })
        ));
    }
}
