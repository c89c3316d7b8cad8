//! Wire formats: parsing and emitting Ethernet II, ARP, IPv4, ICMP echo,
//! TCP and UDP headers, hand-written and bounds-checked.
//!
//! Every parser takes untrusted bytes and returns a [`WireError`] instead of
//! panicking; the worker counts each error under its own name in
//! [`crate::stats::Counters`]. Emitters write into a caller's buffer (the
//! worker's reusable TX buffers) so a frame is built without allocating.
//! The TCP payload is copied from the send queue's `Bytes` chunks into the
//! frame here: the one copy on the way out.
//!
//! Addresses are `IpAddr`/`SocketAddr` in every API above this module so
//! that IPv6 (RFC 8200) can be added beside IPv4 without changing callers.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use thiserror::Error;

/// Why a frame was dropped by a parser (or could not be built by an
/// emitter). Each variant maps to one drop counter.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Frame shorter than an Ethernet header.
    #[error("truncated Ethernet header")]
    EthernetTruncated,
    /// ARP packet shorter than its fixed part, or not Ethernet/IPv4.
    #[error("malformed ARP packet")]
    ArpMalformed,
    /// IPv4 header shorter than 20 bytes or its IHL beyond the frame.
    #[error("truncated IPv4 header")]
    Ipv4Truncated,
    /// Version field not 4 or IHL below 5.
    #[error("bad IPv4 version or header length")]
    Ipv4BadHeader,
    /// Total length smaller than the header or larger than the frame.
    #[error("IPv4 total length inconsistent with the frame")]
    Ipv4BadLength,
    /// Header checksum does not verify (RFC 791 §3.1).
    #[error("bad IPv4 header checksum")]
    Ipv4BadChecksum,
    /// A fragment: we do not reassemble (clients here never fragment TCP).
    #[error("IPv4 fragment")]
    Ipv4Fragment,
    /// ICMP message shorter than 8 bytes.
    #[error("truncated ICMP message")]
    IcmpTruncated,
    /// ICMP checksum does not verify (RFC 792).
    #[error("bad ICMP checksum")]
    IcmpBadChecksum,
    /// TCP header shorter than 20 bytes or data offset beyond the segment.
    #[error("truncated TCP header")]
    TcpTruncated,
    /// Data offset below 5 words.
    #[error("bad TCP data offset")]
    TcpBadDataOffset,
    /// Checksum over pseudo-header, header and payload does not verify.
    #[error("bad TCP checksum")]
    TcpBadChecksum,
    /// An option whose length runs past the header or is wrong for its kind.
    #[error("malformed TCP option")]
    TcpBadOption,
    /// A flag set no correct stack sends (SYN+FIN, SYN+RST, none at all).
    #[error("nonsense TCP flag combination")]
    TcpBadFlags,
    /// UDP datagram shorter than its 8-byte header.
    #[error("truncated UDP header")]
    UdpTruncated,
    /// UDP length below the header or beyond the IP payload (or, emitting,
    /// beyond 65535).
    #[error("UDP length inconsistent with the packet")]
    UdpBadLength,
    /// UDP checksum does not verify, or is zero over IPv6 (RFC 8200 §8.1).
    #[error("bad UDP checksum")]
    UdpBadChecksum,
    /// The caller's buffer cannot hold the frame.
    #[error("frame does not fit the buffer")]
    BufferTooSmall,
    /// The options to emit do not fit the 40 bytes TCP allows.
    #[error("TCP options exceed 40 bytes")]
    OptionsTooLong,
    /// An address family this build cannot emit yet (IPv6).
    #[error("address family not supported")]
    Unsupported,
    /// IPv6 packet shorter than its 40-byte header.
    #[error("truncated IPv6 header")]
    Ipv6Truncated,
    /// Version field not 6.
    #[error("bad IPv6 version")]
    Ipv6BadHeader,
    /// Payload length larger than the frame.
    #[error("IPv6 payload length inconsistent with the frame")]
    Ipv6BadLength,
    /// A Fragment header: never reassembled, as for IPv4.
    #[error("IPv6 fragment")]
    Ipv6Fragment,
    /// An extension header that runs past the packet, a hop-by-hop header
    /// not first, or too long a chain of them.
    #[error("malformed IPv6 extension header")]
    Ipv6BadExtension,
    /// ICMPv6 message shorter than its header.
    #[error("truncated ICMPv6 message")]
    Icmpv6Truncated,
    /// ICMPv6 checksum (over the pseudo-header) does not verify.
    #[error("bad ICMPv6 checksum")]
    Icmpv6BadChecksum,
    /// A Neighbor Discovery message RFC 4861 §7.1 says to discard: a code
    /// other than 0, too short, a multicast target, a zero-length option.
    #[error("malformed neighbor discovery message")]
    NdMalformed,
}
