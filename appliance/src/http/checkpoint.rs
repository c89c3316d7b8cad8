//! What HTTP records for a takeover (seed Fig. 5, block 522; issue 6 item
//! 5): at the start of each response, the TCP sequence number of the first
//! body byte and what is needed to rebuild the response elsewhere.
//!
//! A survivor continues the response at body byte `acked_seq -
//! object_start_seq` (see `HttpSession::resume`). The body of a response is
//! object bytes `range.0..=range.1` for a 206, the whole object for a 200;
//! the map from sequence numbers to object bytes is one-to-one because
//! Baton never sends chunked or multipart bodies.
//!
//! It knows the segment's application block, not the record around it
//! (the glue in `crate::serve` writes that) nor how a response is sent.

use baton_dataplane::tcp::SeqNum;
use baton_shmem::{AppBlock, UploadBlock};

use super::request::Method;
use super::upload::UploadState;
use crate::cache::ObjectMeta;

/// The application block of one response (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseCheckpoint {
    /// TCP sequence number of the first body byte (the byte after the
    /// head), as given by the send API.
    pub object_start_seq: SeqNum,
    /// Status sent.
    pub status: u16,
    /// Request method.
    pub method: Method,
    /// Request minor version (HTTP/1.0 or 1.1).
    pub minor: u8,
    /// The URL (cache key).
    pub url: String,
    /// The object's ETag when the response started.
    pub etag: Option<String>,
    /// The object's Last-Modified when the response started.
    pub last_modified: Option<String>,
    /// For a 206: the object bytes sent, inclusive.
    pub range: Option<(u64, u64)>,
    /// The connection stays open after this response.
    pub persistent: bool,
    /// This response's request is the n-th on the connection (from 1).
    pub request_count: u32,
    /// Object offset of the first body byte (the range start, else 0).
    pub body_offset: u64,
    /// Body bytes the head announced (`None`: unknown, the body ends with
    /// the connection), so a survivor knows when the client has all of a
    /// response it cannot rebuild.
    pub body_len: Option<u64>,
    /// An upload (POST/PUT body) being received, before its response: then
    /// `status` is 0 and the validators are empty.
    pub upload: Option<UploadState>,
}

/// A response the client acknowledged whole, kept by an idle session in
/// place of its [`ResponseCheckpoint`] (issue 19: ~280 bytes of every idle
/// keep-alive connection were its URL and validators). A survivor needs
/// none of those for it: the record it writes still says which response
/// this was and where it ended, so the survivor finishes it
/// (`resume::Start::Finished`) and counts it resumed, as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedResponse {
    object_start_seq: SeqNum,
    body_len: u32,
    request_count: u32,
    status: u16,
    method: Method,
    minor: u8,
    persistent: bool,
}

impl FinishedResponse {
    /// The marker of `cp` once the client acknowledged `acked` (`None`:
    /// the client lacks some of it, or it is no whole response: an upload,
    /// a body of unknown length, the unrecorded marker).
    pub fn of(cp: &ResponseCheckpoint, acked: SeqNum) -> Option<FinishedResponse> {
        if cp.is_unrecorded() || !cp.sent_whole_by(acked) {
            return None;
        }
        Some(FinishedResponse {
            object_start_seq: cp.object_start_seq,
            body_len: u32::try_from(cp.body_len?).ok()?,
            request_count: cp.request_count,
            status: cp.status,
            method: cp.method,
            minor: cp.minor,
            persistent: cp.persistent,
        })
    }

    /// The checkpoint a record is written from: no URL, no validators, no
    /// range (no allocation); its body's length says where it ended.
    pub fn checkpoint(&self) -> ResponseCheckpoint {
        ResponseCheckpoint {
            object_start_seq: self.object_start_seq,
            status: self.status,
            method: self.method,
            minor: self.minor,
            url: String::new(),
            etag: None,
            last_modified: None,
            range: None,
            persistent: self.persistent,
            request_count: self.request_count,
            body_offset: 0,
            body_len: Some(u64::from(self.body_len)),
            upload: None,
        }
    }
}

/// Why a response cannot be continued on this box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotResumable {
    /// The object's validators differ from the checkpoint's: it changed.
    #[error("the object changed since the response started")]
    Changed,
    /// The object could not be fetched again.
    #[error("the object cannot be fetched")]
    Unavailable,
    /// The upload's spooled body is not where the checkpoint says.
    #[error("the upload's spooled body is missing or short")]
    UploadLost,
    /// The checkpoint cannot say which byte comes next (head partly
    /// unacknowledged for a response without a rebuildable head, no
    /// validator to check the object, or an acknowledgement beyond it).
    #[error("the checkpoint does not locate the next byte")]
    Position,
    /// The dead box had a response in flight but could not record it (a
    /// string beyond the record's limits, its overflow area full).
    #[error("the dead box could not record the response in flight")]
    Unrecorded,
}

impl ResponseCheckpoint {
    /// Bytes a boxed checkpoint holds on the heap: itself and its strings'
    /// capacity (issue 19's per-connection memory accounting).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.url.capacity()
            + self.etag.as_ref().map_or(0, String::capacity)
            + self.last_modified.as_ref().map_or(0, String::capacity)
    }

    /// True when this response, body and all, ends at or before `sent` (the
    /// connection's next sequence number to send) and receives no upload:
    /// once the client acknowledged `sent`, a survivor owes it nothing of
    /// this response. An unknown length or one past 4 GiB is never whole.
    pub fn sent_whole_by(&self, sent: SeqNum) -> bool {
        self.upload.is_none()
            && self
                .body_len
                .and_then(|len| u32::try_from(len).ok())
                .is_some_and(|len| (self.object_start_seq + len).le(sent))
    }

    /// The version code stored in the application block (10 or 11).
    pub fn version_code(&self) -> u8 {
        10 + self.minor
    }

    /// True when a survivor can rebuild this response's head and body:
    /// 200 and 206 answers with their object (and HEAD answers).
    pub fn rebuildable(&self) -> bool {
        matches!(self.status, 200 | 206)
    }

    /// What a survivor restores for a record whose box could not write its
    /// application block: a response it must not pretend to continue.
    pub fn unrecorded() -> ResponseCheckpoint {
        ResponseCheckpoint {
            object_start_seq: SeqNum(0),
            status: 0,
            method: Method::Other,
            minor: 1,
            url: String::new(),
            etag: None,
            last_modified: None,
            range: None,
            persistent: false,
            request_count: 0,
            body_offset: 0,
            body_len: None,
            upload: None,
        }
    }

    /// Whether this is [`Self::unrecorded`]'s marker: no status, no upload.
    pub fn is_unrecorded(&self) -> bool {
        self.status == 0 && self.upload.is_none()
    }

    /// Whether `meta` is the object this response was sending (RFC 9110
    /// §8.8: the same validators; at least one is needed to tell).
    pub fn same_object(&self, meta: &ObjectMeta) -> bool {
        if self.etag.is_none() && self.last_modified.is_none() {
            return false;
        }
        matches!(meta.status, 200 | 206)
            && (self.etag.is_none() || self.etag == meta.etag)
            && (self.last_modified.is_none() || self.last_modified == meta.last_modified)
    }

    /// The block the checkpoint segment stores, with `bytes_sent` body
    /// bytes handed to TCP so far: every response has one (a survivor
    /// continues a 200 or 206, and of any other status knows at least
    /// whether the client has it whole). `None` only when a string is
    /// longer than the segment's record allows: the writer then marks the
    /// record's application state lost, and a survivor resets.
    pub fn to_app_block(&self, bytes_sent: u64) -> Option<AppBlock<'_>> {
        use baton_shmem::{MAX_NAME_LEN, MAX_VALIDATOR_LEN};
        if let Some(u) = &self.upload {
            if self.url.len() > MAX_NAME_LEN
                || u.content_type
                    .as_ref()
                    .is_some_and(|c| c.len() > MAX_VALIDATOR_LEN)
            {
                return None;
            }
            return Some(AppBlock {
                object_start_seq: 0,
                version: self.version_code(),
                method: self.method.code(),
                status: 0,
                body_len: None,
                name: &self.url,
                etag: None,
                last_modified: None,
                range_start: None,
                range_end: None,
                persistent: self.persistent,
                bytes_sent: 0,
                request_count: self.request_count,
                upload: Some(UploadBlock {
                    body_start_seq: u.body_start_seq.0,
                    content_length: u.content_length,
                    received: u.received,
                    forwarded: u.forwarded,
                    content_type: u.content_type.as_deref(),
                }),
            });
        }
        if self.url.len() > MAX_NAME_LEN
            || self
                .etag
                .as_ref()
                .is_some_and(|e| e.len() > MAX_VALIDATOR_LEN)
            || self
                .last_modified
                .as_ref()
                .is_some_and(|l| l.len() > MAX_VALIDATOR_LEN)
        {
            return None;
        }
        Some(AppBlock {
            object_start_seq: self.object_start_seq.0,
            version: self.version_code(),
            method: self.method.code(),
            status: self.status,
            body_len: self.body_len,
            name: &self.url,
            etag: self.etag.as_deref(),
            last_modified: self.last_modified.as_deref(),
            range_start: self.range.map(|r| r.0),
            range_end: self.range.map(|r| r.1),
            persistent: self.persistent,
            bytes_sent,
            request_count: self.request_count,
            upload: None,
        })
    }

    /// Back from the segment. One with an upload is an upload before its
    /// response; a status of 0 without one is [`Self::unrecorded`].
    pub fn from_app_block(b: &AppBlock<'_>) -> ResponseCheckpoint {
        let range = b.range_start.zip(b.range_end);
        let upload = b.upload.map(|u| UploadState {
            body_start_seq: SeqNum(u.body_start_seq),
            content_length: u.content_length,
            received: u.received,
            forwarded: u.forwarded,
            content_type: u.content_type.map(str::to_string),
        });
        let status = if upload.is_some() { 0 } else { b.status };
        ResponseCheckpoint {
            upload,
            object_start_seq: SeqNum(b.object_start_seq),
            status,
            method: Method::from_code(b.method),
            minor: b.version.saturating_sub(10).min(1),
            url: b.name.to_string(),
            etag: b.etag.map(str::to_string),
            last_modified: b.last_modified.map(str::to_string),
            range,
            persistent: b.persistent,
            request_count: b.request_count,
            body_offset: range.map_or(0, |r| r.0),
            body_len: b.body_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> ResponseCheckpoint {
        ResponseCheckpoint {
            object_start_seq: SeqNum(4_000_000_000),
            status: 206,
            method: Method::Get,
            minor: 1,
            url: "/50M.bin".into(),
            etag: Some("\"v1\"".into()),
            last_modified: Some("Thu, 01 Jan 2026 00:00:00 GMT".into()),
            range: Some((100, 199)),
            persistent: true,
            request_count: 3,
            body_offset: 100,
            body_len: Some(100),
            upload: None,
        }
    }

    #[test]
    fn a_response_is_sent_whole_once_its_last_body_byte_is() {
        // 100 body bytes from 4,000,000,000: the sequence space wraps
        // before the end (4,000,000,100 fits; the point is the compare).
        let c = cp();
        let end = c.object_start_seq + 100;
        assert!(c.sent_whole_by(end));
        assert!(c.sent_whole_by(end + 1), "a FIN after it");
        assert!(!c.sent_whole_by(end - 1));
        let wrapping = ResponseCheckpoint {
            object_start_seq: SeqNum(u32::MAX - 10),
            ..cp()
        };
        assert!(wrapping.sent_whole_by(SeqNum(89)));
        assert!(!wrapping.sent_whole_by(SeqNum(88)));
        let unknown = ResponseCheckpoint {
            body_len: None,
            ..cp()
        };
        assert!(!unknown.sent_whole_by(end + 1000), "its end is unknown");
    }

    #[test]
    fn a_finished_response_keeps_where_it_ended_and_nothing_to_find_it_by() {
        let c = cp();
        let end = c.object_start_seq + 100;
        assert_eq!(FinishedResponse::of(&c, end - 1), None, "a byte missing");
        let f = FinishedResponse::of(&c, end).expect("acknowledged whole");
        let back = f.checkpoint();
        assert!(back.sent_whole_by(end) && !back.sent_whole_by(end - 1));
        assert_eq!(
            (back.status, back.method, back.minor, back.persistent),
            (206, Method::Get, 1, true)
        );
        assert_eq!((back.request_count, back.body_len), (3, Some(100)));
        assert!(back.url.is_empty() && back.etag.is_none() && back.range.is_none());
        assert_eq!(back.heap_bytes(), std::mem::size_of::<ResponseCheckpoint>());
        let b = back.to_app_block(100).expect("a marker is always written");
        assert_eq!(ResponseCheckpoint::from_app_block(&b), back);
        let unknown = ResponseCheckpoint {
            body_len: None,
            ..cp()
        };
        assert_eq!(FinishedResponse::of(&unknown, end + 1000), None);
        let unrecorded = ResponseCheckpoint::unrecorded();
        assert_eq!(FinishedResponse::of(&unrecorded, SeqNum(0)), None);
    }

    #[test]
    fn app_block_round_trip_keeps_what_a_survivor_needs() {
        let c = cp();
        let b = c.to_app_block(42).expect("rebuildable");
        assert_eq!((b.version, b.method, b.bytes_sent), (11, 1, 42));
        assert_eq!(ResponseCheckpoint::from_app_block(&b), c);
        let full = ResponseCheckpoint {
            status: 200,
            range: None,
            body_offset: 0,
            body_len: None,
            minor: 0,
            ..cp()
        };
        let b = full.to_app_block(0).unwrap();
        assert_eq!(ResponseCheckpoint::from_app_block(&b), full);
    }

    #[test]
    fn a_response_a_survivor_cannot_rebuild_keeps_its_status_and_length() {
        let not_found = ResponseCheckpoint {
            status: 404,
            range: None,
            body_offset: 0,
            body_len: Some(162),
            ..cp()
        };
        let b = not_found
            .to_app_block(0)
            .expect("every response has a block");
        assert_eq!((b.status, b.body_len), (404, Some(162)));
        let back = ResponseCheckpoint::from_app_block(&b);
        assert_eq!(back, not_found);
        assert!(!back.rebuildable() && !back.is_unrecorded());
    }

    #[test]
    fn strings_at_the_records_limits_are_written_and_beyond_them_not() {
        use baton_shmem::{MAX_NAME_LEN, MAX_VALIDATOR_LEN};
        let at = ResponseCheckpoint {
            url: format!("/v.bin?sig={}", "a".repeat(MAX_NAME_LEN - 11)),
            etag: Some("e".repeat(MAX_VALIDATOR_LEN)),
            last_modified: Some("l".repeat(MAX_VALIDATOR_LEN)),
            ..cp()
        };
        assert_eq!(at.url.len(), MAX_NAME_LEN);
        let b = at.to_app_block(7).expect("at the limits");
        assert_eq!(ResponseCheckpoint::from_app_block(&b), at);
        let long_url = ResponseCheckpoint {
            url: format!("{}x", at.url),
            ..cp()
        };
        assert!(long_url.to_app_block(0).is_none());
        let long_tag = ResponseCheckpoint {
            etag: Some("e".repeat(MAX_VALIDATOR_LEN + 1)),
            ..cp()
        };
        assert!(long_tag.to_app_block(0).is_none());
    }

    #[test]
    fn the_unrecorded_marker_is_no_upload_and_no_response() {
        let u = ResponseCheckpoint::unrecorded();
        assert!(u.is_unrecorded() && !u.rebuildable());
        assert!(!cp().is_unrecorded());
    }

    #[test]
    fn an_upload_round_trips_through_its_app_block() {
        let up = ResponseCheckpoint {
            status: 0,
            method: Method::Post,
            etag: None,
            last_modified: None,
            range: None,
            body_offset: 0,
            object_start_seq: SeqNum(0),
            body_len: None,
            upload: Some(UploadState {
                body_start_seq: SeqNum(4_294_967_000),
                content_length: 20 << 20,
                received: 5 << 20,
                forwarded: false,
                content_type: Some("application/octet-stream".into()),
            }),
            ..cp()
        };
        let b = up.to_app_block(0).expect("an upload is always written");
        assert_eq!(b.method, 3);
        assert_eq!(ResponseCheckpoint::from_app_block(&b), up);
        assert_eq!(
            up.upload.as_ref().map(UploadState::covered_seq),
            Some(SeqNum(4_294_967_000u32.wrapping_add(5 << 20)))
        );
    }
}
