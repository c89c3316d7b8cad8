//! The handshake, by rustls' unbuffered server API, sans-IO: ClientHello
//! bytes in, handshake bytes out, until an established [`Session`] on
//! Baton's record layer comes out.
//!
//! After the handshake the keys and sequence numbers are taken out of
//! rustls (`dangerous_into_kernel_connection`) and rustls is dropped.
//! Application data that rustls already decrypted (a request sent right
//! behind the client's Finished) and bytes it has not read are handed to
//! the session, so nothing is lost at the switch. This module knows
//! nothing of sockets or of what runs over TLS.

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{ConnectionTrafficSecrets, ProtocolVersion};

use crate::config::{Capture, TlsConfig};
use crate::error::TlsError;
use crate::keys::{Aead, DirectionKeys, Version};
use crate::session::Session;

/// Longest handshake input kept while waiting for rustls.
const MAX_HANDSHAKE_INPUT: usize = 64 * 1024;

/// Where the handshake is.
#[derive(Debug)]
pub enum Progress {
    /// More input is needed.
    Continue,
    /// The handshake is done: the session carries on.
    Established(Box<Established>),
}

/// An established connection.
#[derive(Debug)]
pub struct Established {
    /// The record layer; its events may already hold request bytes.
    pub session: Session,
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The client resumed a session (a ticket), no full handshake.
    pub resumed: bool,
}

/// One server-side handshake.
pub struct Handshake {
    conn: Option<UnbufferedServerConnection>,
    capture: Arc<Capture>,
    incoming: Vec<u8>,
    decrypted: Vec<u8>,
    out_len: u64,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("out_len", &self.out_len)
            .finish()
    }
}

impl Handshake {
    /// A handshake waiting for a ClientHello.
    pub fn new(config: &TlsConfig) -> Result<Self, TlsError> {
        let capture = Arc::new(Capture::default());
        let conn = UnbufferedServerConnection::new(config.for_connection(capture.clone()))
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        Ok(Handshake {
            conn: Some(conn),
            capture,
            incoming: Vec::new(),
            decrypted: Vec::new(),
            out_len: 0,
        })
    }

    /// Takes bytes from the client, appends bytes to send to `out`. On
    /// error, the alert rustls chose is in `out`; the connection is over.
    pub fn handle_input(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<Progress, TlsError> {
        let start = out.len();
        let r = self.drive(bytes, out);
        self.out_len += (out.len() - start) as u64;
        let done = match r {
            Ok(true) => true,
            Ok(false) => return Ok(Progress::Continue),
            Err(e) => {
                let alert_start = out.len();
                self.drain_alert(out);
                self.out_len += (out.len() - alert_start) as u64;
                self.conn = None;
                return Err(e);
            }
        };
        debug_assert!(done);
        self.establish(out, start)
            .map(|e| Progress::Established(Box::new(e)))
    }

    /// Runs rustls over the input; `Ok(true)` when the handshake is over.
    fn drive(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<bool, TlsError> {
        let conn = self.conn.as_mut().ok_or(TlsError::Closed)?;
        self.incoming.extend_from_slice(bytes);
        if self.incoming.len() > MAX_HANDSHAKE_INPUT {
            return Err(TlsError::Handshake("handshake input too long".into()));
        }
        loop {
            let UnbufferedStatus { mut discard, state } =
                conn.process_tls_records(&mut self.incoming);
            let mut progress = true;
            let mut finished = false;
            match state.map_err(|e| TlsError::Handshake(e.to_string()))? {
                ConnectionState::EncodeTlsData(mut s) => encode(out, |buf| s.encode(buf))?,
                ConnectionState::TransmitTlsData(s) => s.done(),
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec.map_err(|e| TlsError::Handshake(e.to_string()))?;
                        discard += rec.discard;
                        self.decrypted.extend_from_slice(rec.payload);
                    }
                }
                ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake => {
                    progress = false;
                    finished = !conn.is_handshaking();
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    return Err(TlsError::Handshake(
                        "peer closed during the handshake".into(),
                    ))
                }
                _ => {
                    return Err(TlsError::Handshake(
                        "unexpected rustls state (early data?)".into(),
                    ))
                }
            }
            self.incoming.drain(..discard);
            if finished {
                return Ok(true);
            }
            if !progress {
                return Ok(false);
            }
        }
    }

    /// After a rustls error: the alert it queued, if any, into `out`.
    fn drain_alert(&mut self, out: &mut Vec<u8>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        for _ in 0..4 {
            let UnbufferedStatus { state, .. } = conn.process_tls_records(&mut []);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut s)) => {
                    if encode(out, |buf| s.encode(buf)).is_err() {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(s)) => s.done(),
                _ => return,
            }
        }
    }

    /// `out[start..]` is what this call to `handle_input` produced.
    fn establish(&mut self, out: &mut Vec<u8>, start: usize) -> Result<Established, TlsError> {
        let conn = self.conn.take().ok_or(TlsError::Closed)?;
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| u16::from(s.suite()))
            .ok_or(TlsError::Handshake("no suite".into()))?;
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => Version::Tls13,
            Some(ProtocolVersion::TLSv1_2) => Version::Tls12,
            other => {
                return Err(TlsError::UnsupportedSuite {
                    suite,
                    version: other.map_or(0, u16::from),
                })
            }
        };
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let aead = Aead::from_suite(suite).ok_or(TlsError::UnsupportedSuite {
            suite,
            version: version.wire(),
        })?;
        let (secrets, _kernel) = conn
            .dangerous_into_kernel_connection()
            .map_err(|e| TlsError::Handshake(format!("extract secrets: {e}")))?;
        let (tx_seq, tx) = secrets.tx;
        let (rx_seq, rx) = secrets.rx;
        let (write, read) = match version {
            Version::Tls12 => (keys_of(aead, &tx, tx_seq)?, keys_of(aead, &rx, rx_seq)?),
            Version::Tls13 => {
                let take = |slot: &std::sync::Mutex<Option<crate::keys::Secret>>| {
                    slot.lock()
                        .ok()
                        .and_then(|mut s| s.take())
                        .ok_or(TlsError::BadKeyMaterial)
                };
                let server = take(&self.capture.server_secret)?;
                let client = take(&self.capture.client_secret)?;
                let write = follow(aead, server.expose(), &keys_of(aead, &tx, tx_seq)?)?;
                if write.generation == 1 {
                    // rustls answered a client KeyUpdate (update_requested)
                    // by moving its write key and queueing its own KeyUpdate,
                    // sealed under the old key, for its next write, which
                    // never comes: send that record. The old key may have
                    // sealed session tickets before it (no early data), in
                    // as many records as rustls chose: its sequence number
                    // is the count of this call's records that key opens.
                    let seq = records_sealed_by(aead, server.expose(), &out[start..])?;
                    let old = DirectionKeys::from_secret(aead, server.expose(), seq, 0)?;
                    let before = out.len();
                    crate::record::seal(
                        &old,
                        Version::Tls13,
                        seq,
                        crate::record::content::HANDSHAKE,
                        &[24, 0, 0, 1, 0],
                        out,
                    )?;
                    self.out_len += (out.len() - before) as u64;
                }
                let read = follow(aead, client.expose(), &keys_of(aead, &rx, rx_seq)?)?;
                (write, read)
            }
        };
        let mut session = Session::new(version, suite, write, read, self.out_len)?;
        session.queue_data(std::mem::take(&mut self.decrypted));
        let rest = std::mem::take(&mut self.incoming);
        if !rest.is_empty() {
            if let Err(e) = session.handle_input(&rest) {
                out.extend_from_slice(&session.take_output());
                return Err(e);
            }
        }
        let sni = self.capture.sni.lock().ok().and_then(|mut s| s.take());
        Ok(Established {
            session,
            sni,
            alpn,
            resumed,
        })
    }
}

/// TLS 1.3 keys from the handshake's traffic secret that match the keys
/// rustls extracted: a KeyUpdate rustls processed right behind the
/// Finished moved them on, so follow the secret up to a few generations.
fn follow(aead: Aead, secret: &[u8], extracted: &DirectionKeys) -> Result<DirectionKeys, TlsError> {
    let mut keys = DirectionKeys::from_secret(aead, secret, 0, 0)?;
    for _ in 0..4 {
        if keys.key_bytes() == extracted.key_bytes() && keys.iv() == extracted.iv() {
            keys.seq = extracted.seq;
            return Ok(keys);
        }
        keys.update()?;
    }
    // The key log and rustls disagree: never run on keys we cannot renew.
    Err(TlsError::BadKeyMaterial)
}

fn keys_of(aead: Aead, s: &ConnectionTrafficSecrets, seq: u64) -> Result<DirectionKeys, TlsError> {
    let (key, iv) = match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => return Err(TlsError::BadKeyMaterial),
    };
    DirectionKeys::from_key_iv(aead, key.as_ref(), iv.as_ref(), seq)
}

/// Runs an `encode` that wants a large enough buffer, appending to `out`.
fn encode(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), TlsError> {
    let mut buf = vec![0u8; 4096];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(e)) if e.required_size > buf.len() => {
                buf.resize(e.required_size, 0)
            }
            Err(e) => return Err(TlsError::Handshake(e.to_string())),
        }
    }
}

/// How many of the records in `bytes` the first application key of
/// `secret` opens, in order: the next sequence number under that key.
/// Records under the handshake keys do not open and are skipped.
fn records_sealed_by(aead: Aead, secret: &[u8], mut bytes: &[u8]) -> Result<u64, TlsError> {
    let key = DirectionKeys::from_secret(aead, secret, 0, 0)?;
    let mut seq = 0;
    while let Some(len) = bytes
        .get(3..5)
        .map(|l| crate::record::HEADER_LEN + usize::from(u16::from_be_bytes([l[0], l[1]])))
    {
        if let Ok(Some(_)) = crate::record::open(&key, Version::Tls13, seq, bytes) {
            seq += 1;
        }
        bytes = bytes.get(len..).unwrap_or(&[]);
    }
    Ok(seq)
}
