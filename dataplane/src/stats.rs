//! Per-worker counters: traffic, and one counter per reason a frame or a
//! connection was dropped, so an operator can tell a checksum storm from a
//! SYN flood from a full connection table.
//!
//! Each worker owns a plain [`Counters`] (no atomics on the data path) and
//! sends a copy to the control core when asked for stats.

use crate::wire::WireError;

macro_rules! counters {
    ($($(#[doc = $doc:expr])* $name:ident,)*) => {
        /// Counters of one worker. Plain integers: only the owning worker
        /// writes them; others get snapshots.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Every counter with its name, for logs and the admin API.
            pub fn named(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            /// Adds `other` into `self` (totals over workers).
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

counters! {
    /// Frames received from the port.
    rx_frames,
    /// Bytes received from the port.
    rx_bytes,
    /// Frames handed to the port for sending.
    tx_frames,
    /// Bytes handed to the port for sending.
    tx_bytes,
    /// Frames the port could not send (ring or socket buffer full).
    tx_dropped,
    /// Frames sent as one GSO frame of several TCP segments (offload).
    tx_gso_frames,
    /// Frames the port could hold only part of (GRO/TSO frames above the
    /// ring's slot size, their copy refused by a full socket queue),
    /// dropped whole.
    drop_rx_truncated,
    /// Frames above the ring's slot size (GRO/TSO) received whole through
    /// the socket's queue (AF_PACKET TPACKET_V2).
    rx_oversized,
    /// Frames shorter than an Ethernet header.
    drop_eth_truncated,
    /// Frames addressed to another unicast MAC.
    drop_eth_not_for_us,
    /// EtherTypes we do not speak (VLAN tags, others).
    drop_eth_unknown_type,
    /// Malformed ARP packets.
    drop_arp_malformed,
    /// ARP packets for addresses we do not own (learned from, not answered).
    arp_not_for_us,
    /// ARP requests answered.
    arp_replies_sent,
    /// Gratuitous ARP announcements sent.
    arp_announcements_sent,
    /// ARP requests we sent to resolve a neighbour.
    arp_requests_sent,
    /// IPv4 headers shorter than 20 bytes or than their IHL.
    drop_ipv4_truncated,
    /// IPv4 with a bad version or IHL.
    drop_ipv4_bad_header,
    /// IPv4 total length inconsistent with the frame.
    drop_ipv4_bad_length,
    /// IPv4 header checksum failures.
    drop_ipv4_bad_checksum,
    /// IPv4 fragments (never reassembled).
    drop_ipv4_fragment,
    /// IPv4 packets to an address we do not own.
    drop_ipv4_not_ours,
    /// IPv4 protocols other than ICMP and TCP.
    drop_ipv4_unknown_protocol,
    /// Truncated ICMP messages.
    drop_icmp_truncated,
    /// ICMP checksum failures.
    drop_icmp_bad_checksum,
    /// ICMP messages other than echo requests.
    drop_icmp_unhandled,
    /// Echo replies sent.
    icmp_echo_replies_sent,
    /// IPv6 packets shorter than their 40-byte header.
    drop_ipv6_truncated,
    /// IPv6 with a version other than 6.
    drop_ipv6_bad_header,
    /// IPv6 payload length beyond the frame.
    drop_ipv6_bad_length,
    /// IPv6 fragments (never reassembled).
    drop_ipv6_fragment,
    /// IPv6 extension headers that run past the packet, misplaced
    /// hop-by-hop options, or chains longer than 8.
    drop_ipv6_bad_extension,
    /// IPv6 packets to an address we do not own (nor a multicast group we
    /// listen to).
    drop_ipv6_not_ours,
    /// IPv6 next headers other than ICMPv6 and TCP.
    drop_ipv6_unknown_protocol,
    /// Truncated ICMPv6 messages.
    drop_icmpv6_truncated,
    /// ICMPv6 checksum failures.
    drop_icmpv6_bad_checksum,
    /// ICMPv6 messages we do not act on (router messages, other errors).
    drop_icmpv6_unhandled,
    /// ICMPv6 echo replies sent.
    icmpv6_echo_replies_sent,
    /// Packet Too Big messages that lowered a connection's MSS.
    icmpv6_ptb_applied,
    /// Packet Too Big messages ignored: no such connection, or an MTU not
    /// below the one in use.
    drop_icmpv6_ptb_ignored,
    /// Neighbor Discovery messages RFC 4861 §7.1 discards (bad code,
    /// length, target or option).
    drop_nd_malformed,
    /// Neighbor Discovery messages with a hop limit other than 255: from
    /// off the link, ignored (RFC 4861 §7.1).
    drop_nd_bad_hop_limit,
    /// Neighbor Solicitations for addresses we do not own (or breaking
    /// RFC 4861 §7.1.1's address rules).
    nd_not_for_us,
    /// Neighbor Advertisements sent in answer to solicitations (DAD
    /// probes included).
    nd_advertisements_sent,
    /// Unsolicited Neighbor Advertisements with Override sent when an
    /// address moves to this box (the IPv6 gratuitous ARP).
    nd_announcements_sent,
    /// Neighbor Solicitations we sent to resolve a neighbour.
    nd_solicitations_sent,
    /// Truncated TCP headers.
    drop_tcp_truncated,
    /// TCP data offset below five words.
    drop_tcp_bad_data_offset,
    /// TCP checksum failures.
    drop_tcp_bad_checksum,
    /// Malformed TCP options.
    drop_tcp_bad_option,
    /// Nonsense TCP flag combinations.
    drop_tcp_bad_flags,
    /// UDP datagrams shorter than their header.
    drop_udp_truncated,
    /// UDP datagrams whose length field disagrees with the packet.
    drop_udp_bad_length,
    /// UDP checksum failures (and zero checksums over IPv6).
    drop_udp_bad_checksum,
    /// UDP datagrams taken by a flow.
    udp_rx_datagrams,
    /// Their payload bytes.
    udp_rx_bytes,
    /// UDP flows opened by a first datagram.
    udp_flows_created,
    /// UDP flows forgotten after their idle timeout.
    udp_flows_expired,
    /// UDP datagrams the app sent.
    udp_tx_datagrams,
    /// UDP datagrams to a port outside the worker's UDP range.
    drop_udp_no_port,
    /// UDP datagrams refused because the flow table was full.
    drop_udp_flow_limit,
    /// TCP segments to a port nobody listens on (answered with RST by the listener).
    tcp_no_listener,
    /// SYNs refused because the connection table is full.
    drop_tcp_max_connections,
    /// SYNs (and SYN-cookie ACKs) dropped because their client address
    /// holds `dataplane.max_connections_per_client` connections already.
    drop_tcp_client_limit,
    /// SYNs dropped because the worker is draining (accepts no new connections).
    drop_tcp_draining,
    /// SYNs refused or answered with a cookie because the SYN backlog is full.
    tcp_syn_backlog_full,
    /// Segments the listener dropped (stray ACKs, bad cookies).
    drop_tcp_listener,
    /// ACKs for no connection not taken as SYN-cookie ACKs because no
    /// cookie was sent within their validity (128 s): answered with a RST,
    /// never a connection (Linux's tcp_synq_no_recent_overflow).
    tcp_cookie_ack_unexpected,
    /// ACKs sent in answer to segments a known connection could not take:
    /// out of window or PAWS-old (RFC 9293 §3.10.7.4), or an in-window RST
    /// or SYN (RFC 5961 challenge ACKs), each a possible blind injection.
    /// Rate-limited for segments without data, so a flood of them costs
    /// one ACK per `invalid_ratelimit`.
    tcp_oow_acks,
    /// Frames not sent because the neighbour's MAC is unknown.
    drop_no_neighbour,
    /// Neighbour entries evicted (least recently confirmed first) to make
    /// room for a new one: the cache was full.
    neighbour_evicted,
    /// Neighbour entries forgotten because nothing confirmed them for their
    /// maximum age.
    neighbour_expired,
    /// Frames from a source the neighbour cache does not know that it was
    /// not taught: ARP not addressed to us, SYNs and segments no connection
    /// accepted (their replies use the frame's MAC, uncached).
    neighbour_learn_refused,
    /// Neighbours learned from a sibling worker's ARP or NDP (the fanout
    /// sends those frames to worker 0 only).
    neighbour_news_learned,
    /// Neighbour news not posted to a sibling whose inbox was full.
    neighbour_news_dropped,
    /// Frames that could not be built (oversized, unsupported family).
    drop_emit_error,
    /// Connections restored because a segment arrived for an orphan (lazy takeover).
    tcp_lazy_restored,
    /// Quiescent connections the app parked (`Ctx::park`): their TCB
    /// dropped, their checkpoint kept (issue 19).
    tcp_parked,
    /// Parked connections rebuilt from their checkpoint: by their client's
    /// segment, or by the app (`Ctx::resume`, e.g. to close them).
    tcp_unparked,
    /// Frames of another survivor's connections forwarded to it (takeover).
    tcp_forwarded,
    /// Segments for unknown connections the app said to drop.
    drop_tcp_unknown_by_app,
    /// Restore commands for a connection the worker already has.
    restore_duplicate,
    /// Connections accepted (handshake completed).
    tcp_accepted,
    /// Connections closed (any way).
    tcp_closed,
    /// TIME-WAIT connections ended by a newer SYN on their 4-tuple, which
    /// opened a new incarnation (RFC 6191).
    tcp_time_wait_reopened,
    /// Connections currently open.
    tcp_open,
    /// Bytes held now in the send and receive queues of the worker's
    /// connections (what `dataplane.tcp_buffer_budget` caps).
    tcp_buffer_bytes,
    /// Times a connection's send capacity was held to its floor because the
    /// TCP buffer budget was spent (the application queued less).
    tcp_budget_send_limited,
    /// Times a connection's receive window was held to its floor because the
    /// TCP buffer budget was spent.
    tcp_budget_window_limited,
    /// Timer wheel expirations processed.
    timers_fired,
    /// Times the worker blocked in poll(2) (adaptive mode).
    idle_waits,
    /// Of those, waits a wake-up (a command, an app's cross-thread result)
    /// cut short before their timeout: the proof that the waker works.
    idle_woken,
    /// Microseconds the worker spent blocked in those waits: what the box
    /// publishes as its busy fraction is derived from it (issue 20).
    idle_wait_us,
}

impl Counters {
    /// Counts a parse error under its own name.
    pub fn record(&mut self, e: WireError) {
        let c = match e {
            WireError::EthernetTruncated => &mut self.drop_eth_truncated,
            WireError::ArpMalformed => &mut self.drop_arp_malformed,
            WireError::Ipv4Truncated => &mut self.drop_ipv4_truncated,
            WireError::Ipv4BadHeader => &mut self.drop_ipv4_bad_header,
            WireError::Ipv4BadLength => &mut self.drop_ipv4_bad_length,
            WireError::Ipv4BadChecksum => &mut self.drop_ipv4_bad_checksum,
            WireError::Ipv4Fragment => &mut self.drop_ipv4_fragment,
            WireError::IcmpTruncated => &mut self.drop_icmp_truncated,
            WireError::IcmpBadChecksum => &mut self.drop_icmp_bad_checksum,
            WireError::TcpTruncated => &mut self.drop_tcp_truncated,
            WireError::TcpBadDataOffset => &mut self.drop_tcp_bad_data_offset,
            WireError::TcpBadChecksum => &mut self.drop_tcp_bad_checksum,
            WireError::TcpBadOption => &mut self.drop_tcp_bad_option,
            WireError::TcpBadFlags => &mut self.drop_tcp_bad_flags,
            WireError::Ipv6Truncated => &mut self.drop_ipv6_truncated,
            WireError::Ipv6BadHeader => &mut self.drop_ipv6_bad_header,
            WireError::Ipv6BadLength => &mut self.drop_ipv6_bad_length,
            WireError::Ipv6Fragment => &mut self.drop_ipv6_fragment,
            WireError::Ipv6BadExtension => &mut self.drop_ipv6_bad_extension,
            WireError::Icmpv6Truncated => &mut self.drop_icmpv6_truncated,
            WireError::Icmpv6BadChecksum => &mut self.drop_icmpv6_bad_checksum,
            WireError::NdMalformed => &mut self.drop_nd_malformed,
            WireError::UdpTruncated => &mut self.drop_udp_truncated,
            WireError::UdpBadLength => &mut self.drop_udp_bad_length,
            WireError::UdpBadChecksum => &mut self.drop_udp_bad_checksum,
            WireError::BufferTooSmall | WireError::OptionsTooLong | WireError::Unsupported => {
                &mut self.drop_emit_error
            }
        };
        *c += 1;
    }

    /// Sum of every `drop_*` counter.
    pub fn total_drops(&self) -> u64 {
        self.named()
            .iter()
            .filter(|(n, _)| n.starts_with("drop_"))
            .map(|(_, v)| v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wire_error_lands_in_a_drop_counter() {
        let mut c = Counters::default();
        c.record(WireError::TcpBadChecksum);
        c.record(WireError::Ipv4Fragment);
        assert_eq!(c.drop_tcp_bad_checksum, 1);
        assert_eq!(c.drop_ipv4_fragment, 1);
        assert_eq!(c.total_drops(), 2);
        assert!(c
            .named()
            .iter()
            .any(|(n, v)| *n == "drop_ipv4_fragment" && *v == 1));
    }
}
