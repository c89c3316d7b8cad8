//! Deterministic body records: where each record of a response body
//! starts, on the plaintext and on the wire, and where to resume after a
//! takeover.
//!
//! A body is cut into records at fixed plaintext offsets from its start
//! (every [`BODY_RECORD_SIZE`] bytes), each sealed at a sequence number
//! that follows from an anchor (the write sequence number and stream
//! offset of one record of the body). Record protection is a function of
//! (key, seq, plaintext), so a box holding the object, the keys and the
//! anchor regenerates any record byte for byte. Every record but the last
//! has the same wire length, so the record that holds a stream offset is
//! arithmetic. This module knows nothing of sessions or sockets.

use std::ops::Range;

use crate::error::TlsError;

/// Plaintext bytes per body record: the largest a record may carry.
pub const BODY_RECORD_SIZE: u32 = 1 << 14;

/// Where a body's records are on the wire, from one record onwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyAnchor {
    /// Body length in bytes.
    pub body_len: u64,
    /// Plaintext offset (from the body's start) of the anchored record, a
    /// multiple of `record_size`: 0 unless a KeyUpdate re-anchored the body.
    pub body_offset: u64,
    /// Write sequence number of the anchored record.
    pub write_seq: u64,
    /// Stream offset of the anchored record's first header byte.
    pub stream_offset: u64,
    /// Plaintext bytes per record.
    pub record_size: u32,
}

/// Where to resume sending a body after a takeover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    /// Index of the record to re-seal, from the body's start.
    pub record_index: u64,
    /// Its write sequence number.
    pub write_seq: u64,
    /// Its plaintext, as a range of the body.
    pub plain: Range<u64>,
    /// Bytes of its wire form the client already has: send from here.
    pub skip: usize,
    /// Stream offset of its first header byte.
    pub stream_offset: u64,
}

impl BodyAnchor {
    /// Number of records of the whole body (an empty body has none).
    pub fn record_count(&self) -> u64 {
        self.body_len.div_ceil(u64::from(self.record_size.max(1)))
    }

    /// Plaintext range of record `index`.
    pub fn plain_range(&self, index: u64) -> Range<u64> {
        let rs = u64::from(self.record_size);
        let start = index.saturating_mul(rs).min(self.body_len);
        start..start.saturating_add(rs).min(self.body_len)
    }

    /// Index of the anchored record.
    pub fn anchor_index(&self) -> u64 {
        self.body_offset / u64::from(self.record_size.max(1))
    }

    /// The record holding stream offset `acked` (the first byte the client
    /// has not acknowledged) and how much of it the client already has;
    /// `Ok(None)` when the client has the whole body. `overhead` is the
    /// wire bytes a record adds ([`crate::record::overhead`]).
    pub fn resume_point(
        &self,
        acked: u64,
        overhead: usize,
    ) -> Result<Option<ResumePoint>, TlsError> {
        if self.record_size == 0 || self.body_offset % u64::from(self.record_size) != 0 {
            return Err(TlsError::Body("anchor not on a record boundary"));
        }
        let rel = acked
            .checked_sub(self.stream_offset)
            .ok_or(TlsError::Body("acknowledged offset before the anchor"))?;
        let full = u64::from(self.record_size) + overhead as u64;
        let first = self.anchor_index();
        let index = first.saturating_add(rel / full);
        let count = self.record_count();
        let mut skip = rel % full;
        if index >= count {
            // Past the last full-size slot: either exactly at the end of
            // the body or beyond it.
            let end = self.wire_end(overhead);
            return match acked.cmp(&end) {
                std::cmp::Ordering::Equal => Ok(None),
                std::cmp::Ordering::Less => Ok(Some(self.point(count - 1, acked, overhead))),
                std::cmp::Ordering::Greater => {
                    Err(TlsError::Body("acknowledged offset past the body"))
                }
            };
        }
        let plain = self.plain_range(index);
        let wire_len = plain.end - plain.start + overhead as u64;
        if skip >= wire_len {
            // In the slot of a short last record, past its end.
            if index + 1 == count && skip == wire_len {
                return Ok(None);
            }
            return Err(TlsError::Body("acknowledged offset past the body"));
        }
        skip = skip.min(wire_len);
        Ok(Some(ResumePoint {
            record_index: index,
            write_seq: self.write_seq.wrapping_add(index - first),
            plain,
            skip: skip as usize,
            stream_offset: self
                .stream_offset
                .saturating_add((index - first).saturating_mul(full)),
        }))
    }

    fn point(&self, index: u64, acked: u64, overhead: usize) -> ResumePoint {
        let first = self.anchor_index();
        let full = u64::from(self.record_size) + overhead as u64;
        let stream_offset = self
            .stream_offset
            .saturating_add((index - first).saturating_mul(full));
        ResumePoint {
            record_index: index,
            write_seq: self.write_seq.wrapping_add(index - first),
            plain: self.plain_range(index),
            skip: acked.saturating_sub(stream_offset) as usize,
            stream_offset,
        }
    }

    /// Stream offset just past the body's last record.
    pub fn wire_end(&self, overhead: usize) -> u64 {
        let first = self.anchor_index();
        let count = self.record_count();
        if count <= first {
            return self.stream_offset;
        }
        let rest = self.body_len - self.body_offset;
        self.stream_offset
            .saturating_add(rest)
            .saturating_add((count - first).saturating_mul(overhead as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OH: usize = 22;

    fn anchor(body_len: u64) -> BodyAnchor {
        BodyAnchor {
            body_len,
            body_offset: 0,
            write_seq: 7,
            stream_offset: 1000,
            record_size: 100,
        }
    }

    #[test]
    fn offset_on_a_record_boundary_resumes_that_record_from_its_first_byte() {
        let a = anchor(350);
        let p = a.resume_point(1000 + 2 * 122, OH).unwrap().unwrap();
        assert_eq!(
            (p.record_index, p.write_seq, p.plain.clone(), p.skip),
            (2, 9, 200..300, 0)
        );
        assert_eq!(p.stream_offset, 1244);
    }

    #[test]
    fn offset_inside_a_record_resumes_mid_record() {
        let a = anchor(350);
        let p = a.resume_point(1000 + 122 + 37, OH).unwrap().unwrap();
        assert_eq!((p.record_index, p.write_seq, p.skip), (1, 8, 37));
    }

    #[test]
    fn short_last_record_and_the_end_of_the_body() {
        let a = anchor(350);
        assert_eq!(a.wire_end(OH), 1000 + 350 + 4 * 22);
        let p = a.resume_point(1000 + 3 * 122 + 10, OH).unwrap().unwrap();
        assert_eq!((p.record_index, p.plain.clone(), p.skip), (3, 300..350, 10));
        assert_eq!(a.resume_point(a.wire_end(OH), OH), Ok(None));
        assert!(a.resume_point(a.wire_end(OH) + 1, OH).is_err());
        assert!(a.resume_point(999, OH).is_err());
    }

    #[test]
    fn body_of_whole_records_ends_exactly() {
        let a = anchor(300);
        assert_eq!(a.resume_point(1000 + 3 * 122, OH), Ok(None));
        let p = a.resume_point(1000 + 3 * 122 - 1, OH).unwrap().unwrap();
        assert_eq!((p.record_index, p.skip), (2, 121));
    }

    #[test]
    fn reanchored_body_counts_records_from_the_anchor() {
        let a = BodyAnchor {
            body_offset: 200,
            write_seq: 0,
            ..anchor(350)
        };
        let p = a.resume_point(1000 + 5, OH).unwrap().unwrap();
        assert_eq!(
            (p.record_index, p.write_seq, p.plain.clone(), p.skip),
            (2, 0, 200..300, 5)
        );
        assert_eq!(a.wire_end(OH), 1000 + 150 + 2 * 22);
    }

    #[test]
    fn garbage_anchor_is_an_error_not_a_panic() {
        let a = BodyAnchor {
            record_size: 0,
            ..anchor(10)
        };
        assert!(a.resume_point(5000, OH).is_err());
        let a = BodyAnchor {
            body_offset: 3,
            ..anchor(10)
        };
        assert!(a.resume_point(5000, OH).is_err());
        let a = BodyAnchor {
            stream_offset: u64::MAX,
            body_len: u64::MAX,
            ..anchor(0)
        };
        let _ = a.resume_point(u64::MAX, OH);
        let _ = a.wire_end(OH);
    }
}
