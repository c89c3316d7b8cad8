//! The errors of the TLS crate, and the alert each one sends to the peer.
//!
//! Knows nothing of sockets or of the record layer's state: a caller that
//! gets an error with an alert sends it (already sealed by the session) and
//! closes.

/// Alert descriptions Baton sends or understands (RFC 8446 §6).
pub mod alert {
    /// close_notify (0).
    pub const CLOSE_NOTIFY: u8 = 0;
    /// unexpected_message (10).
    pub const UNEXPECTED_MESSAGE: u8 = 10;
    /// bad_record_mac (20).
    pub const BAD_RECORD_MAC: u8 = 20;
    /// record_overflow (22).
    pub const RECORD_OVERFLOW: u8 = 22;
    /// handshake_failure (40).
    pub const HANDSHAKE_FAILURE: u8 = 40;
    /// decode_error (50).
    pub const DECODE_ERROR: u8 = 50;
    /// protocol_version (70).
    pub const PROTOCOL_VERSION: u8 = 70;
    /// internal_error (80).
    pub const INTERNAL_ERROR: u8 = 80;
    /// user_canceled (90).
    pub const USER_CANCELED: u8 = 90;
    /// no_renegotiation (100).
    pub const NO_RENEGOTIATION: u8 = 100;
}

/// Why a TLS connection failed or an operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    /// The handshake failed in rustls.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The handshake finished on a suite or version Baton's record layer
    /// does not implement.
    #[error("negotiated suite {suite:#06x} / version {version:#06x} has no Baton record layer")]
    UnsupportedSuite {
        /// IANA cipher suite id.
        suite: u16,
        /// Wire protocol version.
        version: u16,
    },
    /// Key or IV of the wrong length.
    #[error("key material of the wrong length")]
    BadKeyMaterial,
    /// A KeyUpdate on a connection without a traffic secret (TLS 1.2).
    #[error("key update without a TLS 1.3 traffic secret")]
    KeyUpdateWithoutSecret,
    /// `ring` refused an operation that cannot fail on valid input.
    #[error("crypto: {0}")]
    Crypto(&'static str),
    /// A record's tag did not verify (RFC 8446 §5.2).
    #[error("bad record MAC")]
    BadRecordMac,
    /// A record longer than 2^14 + 256 bytes of ciphertext (RFC 8446 §5.2),
    /// or with more than 2^14 bytes of plaintext.
    #[error("record overflow ({0} bytes)")]
    RecordOverflow(usize),
    /// A record of a type not allowed here, or a handshake message after
    /// the handshake that Baton does not accept.
    #[error("unexpected message: {0}")]
    UnexpectedMessage(&'static str),
    /// A malformed message.
    #[error("decode error: {0}")]
    Decode(&'static str),
    /// The client tried to renegotiate (TLS 1.2): refused.
    #[error("renegotiation refused")]
    Renegotiation,
    /// The peer sent a fatal alert.
    #[error("peer sent alert {0}")]
    PeerAlert(u8),
    /// The connection is closed: nothing more can be sent or received.
    #[error("connection closed")]
    Closed,
    /// A checkpoint block that does not parse.
    #[error("checkpoint: {0}")]
    Checkpoint(&'static str),
    /// A sealed checkpoint that does not open (wrong cluster key, other
    /// connection, or tampered).
    #[error("sealed checkpoint does not open")]
    CheckpointSeal,
    /// A body record index or offset outside the body.
    #[error("body: {0}")]
    Body(&'static str),
}

impl TlsError {
    /// The alert to send the peer for this error, if any.
    pub fn alert(&self) -> Option<u8> {
        match self {
            TlsError::BadRecordMac => Some(alert::BAD_RECORD_MAC),
            TlsError::RecordOverflow(_) => Some(alert::RECORD_OVERFLOW),
            TlsError::UnexpectedMessage(_) => Some(alert::UNEXPECTED_MESSAGE),
            TlsError::Decode(_) => Some(alert::DECODE_ERROR),
            TlsError::Renegotiation => Some(alert::NO_RENEGOTIATION),
            TlsError::KeyUpdateWithoutSecret => Some(alert::UNEXPECTED_MESSAGE),
            TlsError::Crypto(_) => Some(alert::INTERNAL_ERROR),
            _ => None,
        }
    }
}
