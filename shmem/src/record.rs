//! The checkpoint record: what a survivor needs to take one connection over
//! (seed Fig. 5, table 500, plus the TCP block the transport appends as the
//! record passes down the stack).
//!
//! Records are rkyv 0.8 archives. The writing side borrows its strings
//! (`&str` archived with `InlineAsBox`), so a worker builds a record from its
//! own connection state without allocating; the reading side gets
//! `Archived*` views straight out of a validated slot copy, and
//! [`ArchivedConnRecord::view`] turns one back into a [`ConnRecord`]
//! borrowing from that copy. Field-by-field provenance is in
//! docs/CHECKPOINT_FORMAT.md.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rkyv::with::{AsBox, InlineAsBox, MapNiche};
use rkyv::{Archive, Serialize};

/// At most this many connection records per bundle (e.g. FTP control and
/// data, a TCP + UDP set).
pub const MAX_BUNDLE_RECORDS: usize = 4;
/// Longest object name (URL) a record may carry, in bytes: CDN-signed URLs
/// carry query strings of 1–2 KB, and 8 KiB is the request-line limit most
/// servers apply (RFC 9112 §3 recommends at least 8000 octets).
pub const MAX_NAME_LEN: usize = 8192;
/// Longest validator (ETag, Last-Modified) or media type a record may
/// carry, in bytes.
pub const MAX_VALIDATOR_LEN: usize = 1024;
/// Longest sealed TLS block a record may carry, in bytes (the block is
/// 314 bytes and its pending input, at most 1,018).
pub const MAX_TLS_BLOCK_LEN: usize = 1024;
/// Longest opaque application state a record may carry, in bytes (an FTP
/// control or data record is 144 or 288 bytes, an RTSP flow record 80).
pub const MAX_APP_STATE_LEN: usize = 1024;
/// `app_protocol` value for HTTP (Fig. 5, 512).
pub const APP_PROTOCOL_HTTP: u8 = 1;
/// `app_protocol` value for an FTP control or data connection (issue 17).
pub const APP_PROTOCOL_FTP: u8 = 2;
/// `app_protocol` value for an RTSP control connection or its RTP flow
/// (issue 18).
pub const APP_PROTOCOL_RTSP: u8 = 3;

/// One end of a connection: an IPv4 or IPv6 address and a port.
#[derive(Archive, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Endpoint {
    /// Address octets; an IPv4 address uses the first 4 bytes, the rest 0.
    pub addr: [u8; 16],
    /// True for IPv6.
    pub v6: bool,
    /// Port (host order in this struct, little-endian in the archive).
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(sa: SocketAddr) -> Self {
        let mut addr = [0u8; 16];
        let v6 = match sa.ip() {
            IpAddr::V4(a) => {
                addr[..4].copy_from_slice(&a.octets());
                false
            }
            IpAddr::V6(a) => {
                addr = a.octets();
                true
            }
        };
        Endpoint {
            addr,
            v6,
            port: sa.port(),
        }
    }
}

impl Endpoint {
    /// The endpoint as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        to_socket_addr(&self.addr, self.v6, self.port)
    }
}

impl ArchivedEndpoint {
    /// The archived endpoint as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        to_socket_addr(&self.addr, self.v6, self.port.to_native())
    }

    /// The archived endpoint back in native form.
    pub fn to_native(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            v6: self.v6,
            port: self.port.to_native(),
        }
    }
}

fn to_socket_addr(addr: &[u8; 16], v6: bool, port: u16) -> SocketAddr {
    if v6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(*addr)), port)
    } else {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            port,
        )
    }
}

/// Transport of a connection. UDP members of a bundle restart without the
/// probe/ACK exchange (seed, on bundles).
#[derive(Archive, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum Transport {
    /// TCP: the record carries a [`TcpBlock`].
    Tcp,
    /// UDP: no TCP block.
    Udp,
}

/// What the TCP layer appends: enough for a peer to keep talking (RFC 9293
/// §3.3.1 send/receive sequence variables; RFC 7323 window scale and
/// timestamps; RFC 2018 SACK). Sequence numbers are raw 32-bit values.
#[derive(Archive, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct TcpBlock {
    /// Our initial send sequence number (Fig. 5, 516: the server's ISN).
    pub iss: u32,
    /// The client's initial sequence number (Fig. 5, 514).
    pub irs: u32,
    /// Oldest unacknowledged byte we sent (SND.UNA; Fig. 5, 520).
    pub snd_una: u32,
    /// Next byte we will send (SND.NXT; Fig. 5, 520).
    pub snd_nxt: u32,
    /// Next byte we expect from the client (RCV.NXT; Fig. 5, 518).
    pub rcv_nxt: u32,
    /// The client's advertised window, in bytes (already scaled).
    pub snd_wnd: u32,
    /// Our receive window, in bytes.
    pub rcv_wnd: u32,
    /// Maximum segment size we send.
    pub mss: u16,
    /// Snd.Wind.Shift (RFC 7323 §2.3): applied to the windows the client
    /// advertises (SND.WND = SEG.WND << snd_wscale); the client's option.
    pub snd_wscale: u8,
    /// Rcv.Wind.Shift (RFC 7323 §2.3): applied to the windows we advertise
    /// (SEG.WND = RCV.WND >> rcv_wscale); our option.
    pub rcv_wscale: u8,
    /// SACK was negotiated (RFC 2018).
    pub sack_permitted: bool,
    /// Timestamps were negotiated (RFC 7323 §3).
    pub timestamps: bool,
    /// TS.Recent: the client's latest TSval we hold (RFC 7323 §4.3).
    pub ts_recent: u32,
    /// Our last TSval sent, so a successor's clock never goes backwards
    /// (PAWS, RFC 7323 §5).
    pub ts_last_sent: u32,
    /// TCP state (the dataplane's encoding of RFC 9293 §3.3.2 states).
    pub tcp_state: u8,
    /// No ACK beyond `rcv_nxt` was or will be sent by the owner
    /// (`ack_after_commit`, or a final checkpoint before a planned move):
    /// client bytes beyond `rcv_nxt` are in flight, not lost.
    pub acks_covered: bool,
}

/// The application block (Fig. 5, 522) as a generic "named object" so this
/// crate needs no HTTP: for HTTP, name = URL, method/version are the
/// application's codes, validators = ETag and Last-Modified.
#[derive(Archive, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppBlock<'a> {
    /// TCP sequence number of the object's first body byte (522: "starting
    /// TCP sequence number for the object").
    pub object_start_seq: u32,
    /// Protocol version code (522).
    pub version: u8,
    /// Method code (522).
    pub method: u8,
    /// Response status (e.g. 200, 206, 404); 0 while no response has
    /// started (an upload being received).
    pub status: u16,
    /// Body bytes of the response, when its head announced them: a
    /// survivor tells a response the client has whole (carry on idle) from
    /// one it cannot continue (reset).
    pub body_len: Option<u64>,
    /// Object name, e.g. URL (522), at most [`MAX_NAME_LEN`] bytes.
    #[rkyv(with = InlineAsBox)]
    pub name: &'a str,
    /// Entity tag validator (522), at most [`MAX_VALIDATOR_LEN`] bytes.
    #[rkyv(with = MapNiche<InlineAsBox>)]
    pub etag: Option<&'a str>,
    /// Last-Modified validator (522), at most [`MAX_VALIDATOR_LEN`] bytes.
    #[rkyv(with = MapNiche<InlineAsBox>)]
    pub last_modified: Option<&'a str>,
    /// First byte of the requested range (522), if any.
    pub range_start: Option<u64>,
    /// Last byte of the requested range, inclusive (522), if any.
    pub range_end: Option<u64>,
    /// Persistent connection (522: "connection type").
    pub persistent: bool,
    /// Body bytes sent so far for this object.
    pub bytes_sent: u64,
    /// Requests served on this connection so far.
    pub request_count: u32,
    /// A request body being received from the client (an upload), when
    /// the connection is in the middle of one. A record with an upload
    /// carries no validators: the response has not begun. Stored out of
    /// line, so a record without one pays a 4-byte niche, not the block.
    #[rkyv(with = MapNiche<AsBox>)]
    pub upload: Option<UploadBlock<'a>>,
}

/// An upload in progress: the request body bytes the application holds
/// (in its spool, beside the segment) and where they sit in the client's
/// byte stream, so a survivor acknowledges exactly those and asks the
/// client for the rest (ARCHITECTURE.md, `ack_after_commit`).
#[derive(Archive, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadBlock<'a> {
    /// TCP sequence number of the body's first byte (from the client).
    pub body_start_seq: u32,
    /// The body's announced length (`Content-Length`).
    pub content_length: u64,
    /// Body bytes received and kept so far.
    pub received: u64,
    /// The whole body was handed to the origin: a survivor must not send
    /// a non-idempotent request a second time (RFC 9110 §9.2.2).
    pub forwarded: bool,
    /// The body's media type, at most [`MAX_VALIDATOR_LEN`] bytes.
    #[rkyv(with = MapNiche<InlineAsBox>)]
    pub content_type: Option<&'a str>,
}

/// One connection's checkpoint.
#[derive(Archive, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord<'a> {
    /// Owning box id (Fig. 5, 502).
    pub owner: u16,
    /// Worker on the owning box.
    pub worker: u16,
    /// Owner's epoch when the checkpoint was taken.
    pub epoch: u32,
    /// Unix time of the checkpoint in ms (Fig. 5, 503; ≥ 100 ms resolution).
    pub checkpoint_ms: u64,
    /// Our address and port (Fig. 5, 508/510: destination of the client's
    /// transmission).
    pub local: Endpoint,
    /// The client's address and port (Fig. 5, 504/506: source).
    pub remote: Endpoint,
    /// TCP or UDP.
    pub transport: Transport,
    /// Application protocol code (Fig. 5, 512; [`APP_PROTOCOL_HTTP`] = 1).
    pub app_protocol: u8,
    /// TCP block; present for TCP records. Stored out of line (a 4-byte
    /// pointer when absent) so UDP records stay small.
    #[rkyv(with = MapNiche<AsBox>)]
    pub tcp: Option<TcpBlock>,
    /// Application block (522); absent before the first request and for
    /// the secondary members of a bundle. Stored out of line.
    #[rkyv(with = MapNiche<AsBox>)]
    pub app: Option<AppBlock<'a>>,
    /// The application was in the middle of something a survivor would
    /// need (a response in flight) but could not record it (a string over
    /// the limits, the overflow area full): a survivor resets the
    /// connection at once instead of restoring it as idle and stalling.
    /// Never set together with `app`.
    pub app_lost: bool,
    /// The connection's TLS state (issue 14), sealed by the owner under a
    /// key derived from `cluster.key` (`baton_tls::Checkpoint::seal`): at
    /// most [`MAX_TLS_BLOCK_LEN`] bytes, opaque here. Absent for plain
    /// connections. Being sealed at the source, it is ciphertext in the
    /// segment and in every replication datagram.
    #[rkyv(with = MapNiche<InlineAsBox>)]
    pub tls: Option<&'a [u8]>,
    /// The state of a protocol other than HTTP (FTP, RTSP), in the
    /// protocol crate's own versioned encoding, named by `app_protocol`:
    /// at most [`MAX_APP_STATE_LEN`] bytes, opaque here. HTTP keeps its
    /// state in `app`; this is absent for it.
    #[rkyv(with = MapNiche<InlineAsBox>)]
    pub app_state: Option<&'a [u8]>,
}

/// The root archived in a slot: 1..=[`MAX_BUNDLE_RECORDS`] records committed
/// together.
#[derive(Archive, Serialize, Debug, Clone, Copy)]
pub struct Bundle<'a> {
    /// The records of the bundle.
    #[rkyv(with = InlineAsBox)]
    pub records: &'a [ConnRecord<'a>],
}

impl ArchivedAppBlock<'_> {
    /// The block borrowed from the archive.
    pub fn view(&self) -> AppBlock<'_> {
        AppBlock {
            object_start_seq: self.object_start_seq.to_native(),
            version: self.version,
            method: self.method,
            status: self.status.to_native(),
            body_len: self.body_len.as_ref().map(|v| v.to_native()),
            name: &self.name,
            etag: self.etag.as_ref().map(|s| &**s),
            last_modified: self.last_modified.as_ref().map(|s| &**s),
            range_start: self.range_start.as_ref().map(|v| v.to_native()),
            range_end: self.range_end.as_ref().map(|v| v.to_native()),
            persistent: self.persistent,
            bytes_sent: self.bytes_sent.to_native(),
            request_count: self.request_count.to_native(),
            upload: self.upload.as_ref().map(|u| UploadBlock {
                body_start_seq: u.body_start_seq.to_native(),
                content_length: u.content_length.to_native(),
                received: u.received.to_native(),
                forwarded: u.forwarded,
                content_type: u.content_type.as_ref().map(|s| &**s),
            }),
        }
    }
}

impl ArchivedTcpBlock {
    /// The block in native form.
    pub fn to_native(&self) -> TcpBlock {
        TcpBlock {
            iss: self.iss.to_native(),
            irs: self.irs.to_native(),
            snd_una: self.snd_una.to_native(),
            snd_nxt: self.snd_nxt.to_native(),
            rcv_nxt: self.rcv_nxt.to_native(),
            snd_wnd: self.snd_wnd.to_native(),
            rcv_wnd: self.rcv_wnd.to_native(),
            mss: self.mss.to_native(),
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            sack_permitted: self.sack_permitted,
            timestamps: self.timestamps,
            ts_recent: self.ts_recent.to_native(),
            ts_last_sent: self.ts_last_sent.to_native(),
            tcp_state: self.tcp_state,
            acks_covered: self.acks_covered,
        }
    }
}

impl ArchivedConnRecord<'_> {
    /// Whether this record is of the connection `local` ↔ `remote`.
    pub fn is_between(&self, local: &Endpoint, remote: &Endpoint) -> bool {
        self.local.addr == local.addr
            && self.local.v6 == local.v6
            && self.local.port.to_native() == local.port
            && self.remote.addr == remote.addr
            && self.remote.v6 == remote.v6
            && self.remote.port.to_native() == remote.port
    }

    /// The record borrowed from the archive (strings point into the slot
    /// copy; clone them to keep them past it).
    pub fn view(&self) -> ConnRecord<'_> {
        ConnRecord {
            owner: self.owner.to_native(),
            worker: self.worker.to_native(),
            epoch: self.epoch.to_native(),
            checkpoint_ms: self.checkpoint_ms.to_native(),
            local: self.local.to_native(),
            remote: self.remote.to_native(),
            transport: match self.transport {
                ArchivedTransport::Tcp => Transport::Tcp,
                ArchivedTransport::Udp => Transport::Udp,
            },
            app_protocol: self.app_protocol,
            tcp: self.tcp.as_ref().map(|t| t.get().to_native()),
            app: self.app.as_ref().map(|a| a.get().view()),
            app_lost: self.app_lost,
            tls: self.tls.as_ref().map(|s| &**s),
            app_state: self.app_state.as_ref().map(|s| &**s),
        }
    }
}

impl std::fmt::Debug for ArchivedAppBlock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl std::fmt::Debug for ArchivedConnRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl std::fmt::Debug for ArchivedBundle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.records.iter()).finish()
    }
}

/// Checks the rules bytecheck cannot express: bundle size, string bounds,
/// transport/TCP block agreement, owner. A record that breaks them is
/// treated like a corrupt slot. The entry point for validating bytes from a
/// slot is [`crate::slot::check_archive`].
pub(crate) fn check_bundle(b: &ArchivedBundle<'_>, region: u16) -> Result<(), &'static str> {
    let n = b.records.len();
    if n == 0 || n > MAX_BUNDLE_RECORDS {
        return Err("bundle must hold 1 to 4 records");
    }
    for r in b.records.iter() {
        if r.owner.to_native() != region {
            return Err("record owner is not the region's box");
        }
        check_record(&r.view())?;
    }
    Ok(())
}

/// The same rules on the writing side, before a byte reaches the slot.
pub(crate) fn check_records(records: &[ConnRecord<'_>]) -> Result<(), &'static str> {
    if records.is_empty() || records.len() > MAX_BUNDLE_RECORDS {
        return Err("bundle must hold 1 to 4 records");
    }
    records.iter().try_for_each(check_record)
}

/// The rules of one record (its owner is the caller's to check).
fn check_record(r: &ConnRecord<'_>) -> Result<(), &'static str> {
    if r.tls.is_some_and(|t| t.len() > MAX_TLS_BLOCK_LEN) {
        return Err("TLS block too long");
    }
    if r.app_state.is_some_and(|t| t.len() > MAX_APP_STATE_LEN) {
        return Err("application state too long");
    }
    match (r.transport, r.tcp.is_some()) {
        (Transport::Tcp, false) => return Err("TCP record without TCP block"),
        (Transport::Udp, true) => return Err("UDP record with TCP block"),
        _ => {}
    }
    let Some(app) = &r.app else {
        return Ok(());
    };
    if r.app_lost {
        return Err("record with an application block marked lost");
    }
    if app.name.len() > MAX_NAME_LEN {
        return Err("object name too long");
    }
    let long = |v: Option<&str>| v.is_some_and(|s| s.len() > MAX_VALIDATOR_LEN);
    if long(app.etag) || long(app.last_modified) {
        return Err("validator too long");
    }
    if let Some(u) = &app.upload {
        if long(u.content_type) {
            return Err("upload content type too long");
        }
        if app.etag.is_some() || app.last_modified.is_some() {
            return Err("upload record with validators");
        }
        if u.received > u.content_length {
            return Err("upload received more than its length");
        }
    }
    Ok(())
}
