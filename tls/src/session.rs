//! A TLS connection after its handshake, on Baton's own record layer:
//! bytes and calls in, bytes and events out (sans-IO, like `dataplane::tcp`).
//!
//! Methods fall in quinn-proto's classes: getters; `handle_input` (bytes
//! from the peer); mutators (`send`, `update_keys`, `close`, body records);
//! outputs (`poll_event`, `take_output`); takeover (`checkpoint`,
//! `restore`, `resume_body`). Call order: after any input or mutator,
//! drain `poll_event` and `take_output`.
//!
//! Handles alerts (close_notify ends the read side, any other alert closes),
//! TLS 1.3 KeyUpdate both ways (RFC 8446 §4.6.3), refuses TLS 1.2
//! renegotiation with a fatal no_renegotiation alert. Any error on input
//! queues the matching fatal alert and closes. Knows nothing of sockets,
//! TCP sequence numbers or where a checkpoint is stored.

use std::collections::VecDeque;

use crate::body::{BodyAnchor, ResumePoint, BODY_RECORD_SIZE};
use crate::checkpoint::{Checkpoint, DirectionState};
use crate::error::{alert, TlsError};
use crate::keys::{Aead, DirectionKeys, Version};
use crate::record::{self, content, MAX_PLAINTEXT};

/// Handshake message type of KeyUpdate (RFC 8446 §4).
const KEY_UPDATE: u8 = 24;
/// Handshake message type of ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Buffered input beyond one record is a peer not reading our alerts.
const MAX_INPUT_BUFFER: usize = 4 * record::MAX_CIPHERTEXT;

/// What happened on the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Application data from the peer.
    Data(Vec<u8>),
    /// The peer sent close_notify: it will send nothing more.
    PeerClosed,
    /// The peer updated its keys; `requested` if it asked us to update
    /// ours (done: a KeyUpdate is in the output).
    PeerKeyUpdate {
        /// The peer set update_requested.
        requested: bool,
    },
}

/// The record layer of one established connection.
#[derive(Debug)]
pub struct Session {
    version: Version,
    suite: u16,
    write: DirectionKeys,
    read: DirectionKeys,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Stream offset of the next byte appended to the output.
    out_offset: u64,
    events: VecDeque<Event>,
    peer_closed: bool,
    sent_close_notify: bool,
    closed: bool,
    body: Option<BodyAnchor>,
    /// Next body record to seal, from the body's start.
    next_body_record: u64,
    /// A restored session whose close_notify followed the body: seal it
    /// again once the body's last record is out.
    close_after_body: bool,
}

impl Session {
    /// A session from established keys. `out_offset` is the stream offset
    /// of the next byte this session will emit (the handshake's length).
    pub fn new(
        version: Version,
        suite: u16,
        write: DirectionKeys,
        read: DirectionKeys,
        out_offset: u64,
    ) -> Result<Self, TlsError> {
        let aead = Aead::from_suite(suite).ok_or(TlsError::UnsupportedSuite {
            suite,
            version: version.wire(),
        })?;
        if write.aead() != aead || read.aead() != aead {
            return Err(TlsError::BadKeyMaterial);
        }
        Ok(Session {
            version,
            suite,
            write,
            read,
            input: Vec::new(),
            output: Vec::new(),
            out_offset,
            events: VecDeque::new(),
            peer_closed: false,
            sent_close_notify: false,
            closed: false,
            body: None,
            next_body_record: 0,
            close_after_body: false,
        })
    }

    // ---- getters ----

    /// Protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// IANA cipher suite id.
    pub fn suite(&self) -> u16 {
        self.suite
    }

    /// Sequence number of the next record we send.
    pub fn write_seq(&self) -> u64 {
        self.write.seq
    }

    /// Sequence number of the next record we expect.
    pub fn read_seq(&self) -> u64 {
        self.read.seq
    }

    /// Stream offset of the next byte we emit.
    pub fn out_offset(&self) -> u64 {
        self.out_offset
    }

    /// Wire bytes each record adds to its plaintext.
    pub fn overhead(&self) -> usize {
        record::overhead(self.version, self.write.aead())
    }

    /// Neither side can send anymore (fatal alert, or close both ways).
    pub fn is_closed(&self) -> bool {
        self.closed || (self.peer_closed && self.sent_close_notify)
    }

    /// The body being sent, if any.
    pub fn body(&self) -> Option<&BodyAnchor> {
        self.body.as_ref()
    }

    // ---- input ----

    /// Takes bytes from the peer. On error the matching fatal alert is in
    /// the output and the session is closed.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), TlsError> {
        if self.closed {
            return Err(TlsError::Closed);
        }
        if self.peer_closed {
            // Bytes after close_notify are ignored (RFC 8446 §6.1).
            return Ok(());
        }
        self.input.extend_from_slice(bytes);
        match self.process_input() {
            Ok(()) if self.input.len() > MAX_INPUT_BUFFER => {
                self.fail(TlsError::RecordOverflow(self.input.len()))
            }
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    fn process_input(&mut self) -> Result<(), TlsError> {
        let mut at = 0;
        let result = loop {
            if self.peer_closed || self.closed {
                break Ok(());
            }
            let opened =
                match record::open(&self.read, self.version, self.read.seq, &self.input[at..]) {
                    Ok(Some(o)) => o,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                };
            at += opened.consumed;
            self.read.seq = self.read.seq.wrapping_add(1);
            if let Err(e) = self.handle_record(opened.content_type, opened.plaintext) {
                break Err(e);
            }
        };
        self.input.drain(..at);
        result
    }

    fn handle_record(&mut self, content_type: u8, plaintext: Vec<u8>) -> Result<(), TlsError> {
        match content_type {
            content::APPLICATION_DATA => {
                if !plaintext.is_empty() {
                    self.events.push_back(Event::Data(plaintext));
                }
                Ok(())
            }
            content::ALERT => {
                let [_level, desc] = plaintext[..] else {
                    return Err(TlsError::Decode("alert length"));
                };
                if desc == alert::CLOSE_NOTIFY {
                    self.peer_closed = true;
                    self.events.push_back(Event::PeerClosed);
                    return Ok(());
                }
                // Any other alert ends the connection; nothing is sent back.
                self.closed = true;
                Err(TlsError::PeerAlert(desc))
            }
            content::HANDSHAKE => self.handle_handshake(&plaintext),
            _ => Err(TlsError::UnexpectedMessage("record content type")),
        }
    }

    fn handle_handshake(&mut self, mut msgs: &[u8]) -> Result<(), TlsError> {
        if msgs.is_empty() {
            return Err(TlsError::Decode("empty handshake record"));
        }
        while !msgs.is_empty() {
            let [kind, a, b, c, ref rest @ ..] = *msgs else {
                return Err(TlsError::UnexpectedMessage(
                    "handshake message split across records",
                ));
            };
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            let body = rest.get(..len).ok_or(TlsError::UnexpectedMessage(
                "handshake message split across records",
            ))?;
            msgs = &rest[len..];
            match (self.version, kind) {
                (Version::Tls13, KEY_UPDATE) => {
                    let requested = match body {
                        [0] => false,
                        [1] => true,
                        _ => return Err(TlsError::Decode("key update")),
                    };
                    // RFC 8446 §4.6.3: the next record is under the new key.
                    self.read.update()?;
                    if requested {
                        self.send_key_update(false)?;
                    }
                    self.events.push_back(Event::PeerKeyUpdate { requested });
                }
                (Version::Tls12, CLIENT_HELLO) => return Err(TlsError::Renegotiation),
                _ => {
                    return Err(TlsError::UnexpectedMessage(
                        "handshake message after the handshake",
                    ))
                }
            }
        }
        Ok(())
    }

    /// Queues a fatal alert for `e` (when there is one) and closes.
    fn fail(&mut self, e: TlsError) -> Result<(), TlsError> {
        if let Some(desc) = e.alert() {
            if !self.closed {
                // Best effort: an alert we cannot seal is not sent.
                let _ = self.seal_record(content::ALERT, &[2, desc]);
            }
        }
        self.closed = true;
        Err(e)
    }

    // ---- mutators ----

    /// Sends application data, cut into records of at most 2^14 bytes.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        self.check_can_send()?;
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            self.seal_record(content::APPLICATION_DATA, chunk)?;
        }
        Ok(())
    }

    /// Updates our write keys (TLS 1.3), asking the peer to update its own
    /// if `request_peer`.
    pub fn update_keys(&mut self, request_peer: bool) -> Result<(), TlsError> {
        self.check_can_send()?;
        if self.version != Version::Tls13 {
            return Err(TlsError::KeyUpdateWithoutSecret);
        }
        self.send_key_update(request_peer)
    }

    fn send_key_update(&mut self, request_peer: bool) -> Result<(), TlsError> {
        self.seal_record(
            content::HANDSHAKE,
            &[KEY_UPDATE, 0, 0, 1, u8::from(request_peer)],
        )?;
        self.write.update()?;
        // A body in flight continues under the new key: re-anchor it at
        // its next record so that it can still be regenerated.
        if let Some(a) = self.body.as_mut() {
            a.body_offset = self
                .next_body_record
                .saturating_mul(u64::from(a.record_size));
            a.write_seq = self.write.seq;
            a.stream_offset = self.out_offset;
        }
        Ok(())
    }

    /// Sends close_notify; the session sends nothing after it.
    pub fn close(&mut self) -> Result<(), TlsError> {
        self.check_can_send()?;
        self.seal_record(content::ALERT, &[1, alert::CLOSE_NOTIFY])?;
        self.sent_close_notify = true;
        Ok(())
    }

    /// Starts a body of `body_len` bytes: its records start here.
    pub fn start_body(&mut self, body_len: u64) -> Result<BodyAnchor, TlsError> {
        self.check_can_send()?;
        let anchor = BodyAnchor {
            body_len,
            body_offset: 0,
            write_seq: self.write.seq,
            stream_offset: self.out_offset,
            record_size: BODY_RECORD_SIZE,
        };
        self.body = Some(anchor);
        self.next_body_record = 0;
        Ok(anchor)
    }

    /// Seals up to `max_records` more records of the body (the whole body
    /// as `body`); returns how many: 0 once the body is all sealed (or
    /// none was started).
    pub fn send_body_records(&mut self, body: &[u8], max_records: u64) -> Result<u64, TlsError> {
        let Some(anchor) = self.body else {
            return Ok(0);
        };
        self.check_can_send()?;
        if body.len() as u64 != anchor.body_len {
            return Err(TlsError::Body("body length differs from the started body"));
        }
        let mut sent = 0;
        while sent < max_records && self.next_body_record < anchor.record_count() {
            let r = anchor.plain_range(self.next_body_record);
            self.seal_record(
                content::APPLICATION_DATA,
                &body[r.start as usize..r.end as usize],
            )?;
            self.next_body_record += 1;
            sent += 1;
        }
        if self.next_body_record >= anchor.record_count() {
            self.body = None;
            self.close_if_due()?;
        }
        Ok(sent)
    }

    /// Seals the next record of the started body from `plain`, which must
    /// be exactly that record's plaintext: for a caller that has the body
    /// piece by piece (a response streaming from a cache), not whole.
    pub fn send_body_record(&mut self, plain: &[u8]) -> Result<(), TlsError> {
        self.check_can_send()?;
        let anchor = self.body.ok_or(TlsError::Body("no body started"))?;
        let r = anchor.plain_range(self.next_body_record);
        if r.is_empty() || plain.len() as u64 != r.end - r.start {
            return Err(TlsError::Body("piece is not the next body record"));
        }
        self.seal_record(content::APPLICATION_DATA, plain)?;
        self.next_body_record += 1;
        if self.next_body_record >= anchor.record_count() {
            self.body = None;
            self.close_if_due()?;
        }
        Ok(())
    }

    /// Plaintext bytes of the body record to seal next (0 when no body is
    /// in flight).
    pub fn body_record_len(&self) -> usize {
        self.body.map_or(0, |a| {
            let r = a.plain_range(self.next_body_record);
            (r.end - r.start) as usize
        })
    }

    fn check_can_send(&self) -> Result<(), TlsError> {
        if self.closed || self.sent_close_notify {
            return Err(TlsError::Closed);
        }
        Ok(())
    }

    fn seal_record(&mut self, content_type: u8, plaintext: &[u8]) -> Result<(), TlsError> {
        let before = self.output.len();
        record::seal(
            &self.write,
            self.version,
            self.write.seq,
            content_type,
            plaintext,
            &mut self.output,
        )?;
        self.write.seq = self.write.seq.wrapping_add(1);
        self.out_offset = self
            .out_offset
            .wrapping_add((self.output.len() - before) as u64);
        Ok(())
    }

    // ---- outputs ----

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send to the peer, in order.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    // ---- takeover ----

    /// The state a survivor needs to continue this connection: only call
    /// with the output drained (what was emitted is what the checkpoint
    /// counts as sent).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            version: self.version,
            suite: self.suite,
            write: DirectionState::of(&self.write),
            read: DirectionState::of(&self.read),
            write_stream_offset: self.out_offset,
            peer_closed: self.peer_closed,
            sent_close_notify: self.sent_close_notify,
            body: self.body,
            next_body_record: self.next_body_record,
            pending_input: Default::default(),
            pending_lost: false,
        }
    }

    /// A session continuing from a checkpoint, with nothing sent yet: for
    /// a body in flight, call [`Session::resume_body`] next.
    pub fn restore(cp: &Checkpoint) -> Result<Self, TlsError> {
        let aead = Aead::from_suite(cp.suite).ok_or(TlsError::UnsupportedSuite {
            suite: cp.suite,
            version: cp.version.wire(),
        })?;
        let mut s = Session::new(
            cp.version,
            cp.suite,
            cp.write.keys(aead, cp.version)?,
            cp.read.keys(aead, cp.version)?,
            cp.write_stream_offset,
        )?;
        s.peer_closed = cp.peer_closed;
        s.sent_close_notify = cp.sent_close_notify;
        s.body = cp.body;
        s.next_body_record = cp.next_body_record;
        Ok(s)
    }

    /// After [`Session::restore`]: the client acknowledged the stream up to
    /// `acked` (first byte it does not have). Re-seals the body record that
    /// holds it, emits it from that byte, and leaves the session ready to
    /// send the following records. `body` is the whole body.
    pub fn resume_body(&mut self, body: &[u8], acked: u64) -> Result<(), TlsError> {
        let anchor = self
            .body
            .ok_or(TlsError::Body("no body in the checkpoint"))?;
        if body.len() as u64 != anchor.body_len {
            return Err(TlsError::Body("body length differs from the checkpoint"));
        }
        let Some(p) = self.resume_at(acked)? else {
            return Ok(());
        };
        let plain = &body[p.plain.start as usize..p.plain.end as usize];
        self.resume_record(&p, plain)
    }

    /// After [`Session::restore`], for a caller that gets the body piece
    /// by piece: the record holding stream offset `acked` (the first byte
    /// the client does not have), to be passed with its plaintext to
    /// [`Session::resume_record`]; `None` when the client has the whole
    /// body (the session is then ready for what follows it).
    ///
    /// A checkpoint taken after the close_notify that followed the body
    /// resumes too: the client that lacks it (or body records before it)
    /// gets it again, sealed at the same sequence number, once the body
    /// is out.
    pub fn resume_at(&mut self, acked: u64) -> Result<Option<ResumePoint>, TlsError> {
        let anchor = self
            .body
            .ok_or(TlsError::Body("no body in the checkpoint"))?;
        let closed_after = self.sent_close_notify;
        // `acked` may count the TCP FIN after the close_notify.
        let fin_end = self.out_offset.wrapping_add(1);
        if closed_after && (acked == self.out_offset || acked == fin_end) {
            // The client has the body and the close_notify: nothing to send.
            self.body = None;
            return Ok(None);
        }
        let p = anchor.resume_point(acked, self.overhead())?;
        self.sent_close_notify = false;
        if p.is_none() {
            // The client has the whole body.
            self.body = None;
            self.write.seq = anchor
                .write_seq
                .wrapping_add(anchor.record_count().saturating_sub(anchor.anchor_index()));
            self.out_offset = acked;
            if closed_after {
                self.close()?;
            }
        } else {
            self.close_after_body = closed_after;
        }
        Ok(p)
    }

    /// The close_notify a restored session owes after its body.
    fn close_if_due(&mut self) -> Result<(), TlsError> {
        if std::mem::take(&mut self.close_after_body) {
            self.close()?;
        }
        Ok(())
    }

    /// Wire bytes of a close_notify record (what follows a body closed
    /// right after it).
    pub fn close_notify_len(&self) -> usize {
        self.overhead() + 2
    }

    /// Re-seals the record of `p` (`plain` its plaintext), emits it from
    /// the client's byte, and leaves the session ready to send the
    /// following body records.
    pub fn resume_record(&mut self, p: &ResumePoint, plain: &[u8]) -> Result<(), TlsError> {
        let anchor = self
            .body
            .ok_or(TlsError::Body("no body in the checkpoint"))?;
        if plain.len() as u64 != p.plain.end - p.plain.start {
            return Err(TlsError::Body("piece is not the record to resume"));
        }
        let mut wire = Vec::new();
        record::seal(
            &self.write,
            self.version,
            p.write_seq,
            content::APPLICATION_DATA,
            plain,
            &mut wire,
        )?;
        let rest = wire
            .get(p.skip..)
            .ok_or(TlsError::Body("resume byte past its record"))?;
        self.output.extend_from_slice(rest);
        self.write.seq = p.write_seq.wrapping_add(1);
        self.out_offset = p.stream_offset.wrapping_add(wire.len() as u64);
        self.next_body_record = p.record_index.saturating_add(1);
        if self.next_body_record >= anchor.record_count() {
            self.body = None;
            self.close_if_due()?;
        }
        Ok(())
    }
}

impl Session {
    /// Application data rustls decrypted before the switch.
    pub(crate) fn queue_data(&mut self, data: Vec<u8>) {
        if !data.is_empty() {
            self.events.push_back(Event::Data(data));
        }
    }
}
