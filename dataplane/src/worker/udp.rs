//! UDP: a datagram for an address we own and a port of the worker's UDP
//! range goes to its flow (`udpflow.rs`, opened by its first datagram) and
//! to the app ([`App::on_datagram`]); others are counted and dropped. No
//! ICMP port unreachable is sent: a scan of the service IPs gets silence,
//! as for TCP ports behind a firewall. The other way, the datagrams the app
//! queued (`Ctx::send_datagram`) become frames at the end of an iteration,
//! to neighbours already known.

use super::egress::TX_FLUSH;
use super::state::{app_ctx, Core};
use crate::app::App;
use crate::port::{Port, PortError, RxMeta};
use crate::tcp::FourTuple;
use crate::udpflow::UdpRefused;
use crate::wire::ethernet::{self, EthernetHeader};
use crate::wire::{ipv4, ipv6, udp, WireError};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

impl Core {
    /// A UDP datagram for an address we own.
    pub(super) fn on_udp<A: App>(
        &mut self,
        app: &mut A,
        (src, dst): (IpAddr, IpAddr),
        l4: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let d = match udp::parse(src, dst, l4, meta.checksum_trusted) {
            Ok(d) => d,
            Err(e) => return self.counters.record(e),
        };
        if !self.cfg.udp_ports.contains(&d.dst_port) {
            self.counters.drop_udp_no_port += 1;
            return;
        }
        let tuple = FourTuple {
            local: SocketAddr::new(dst, d.dst_port),
            remote: SocketAddr::new(src, d.src_port),
        };
        match self.udp_flows.on_datagram(tuple, d.payload.len(), now) {
            Ok(a) => {
                self.counters.udp_flows_created += u64::from(a.new);
                self.counters.udp_flows_expired += a.expired as u64;
            }
            Err(UdpRefused::Full) => {
                self.counters.drop_udp_flow_limit += 1;
                return;
            }
        }
        self.counters.udp_rx_datagrams += 1;
        self.counters.udp_rx_bytes += d.payload.len() as u64;
        app.on_datagram(tuple, d.payload, &mut app_ctx!(self, now));
    }

    /// Sends the datagrams the app queued this iteration.
    pub(super) fn send_datagrams<P: Port>(
        &mut self,
        port: &mut P,
        now: Instant,
    ) -> Result<(), PortError> {
        let queued = std::mem::take(&mut self.udp_out);
        for (tuple, payload) in &queued {
            self.emit_udp(tuple, payload, now);
            if self.tx.len() >= TX_FLUSH {
                self.flush(port)?;
            }
        }
        // The queue's allocation is kept for the next iteration.
        self.udp_out = queued;
        self.udp_out.clear();
        Ok(())
    }

    /// One datagram as an Ethernet/IPv4 or IPv6/UDP frame, from an address
    /// we own to a neighbour we know, within the MTU (UDP is not cut: no
    /// fragments).
    fn emit_udp(&mut self, tuple: &FourTuple, payload: &[u8], now: Instant) {
        let (local, remote) = (tuple.local.ip(), tuple.remote.ip());
        let (ip_len, ethertype) = match (local, remote) {
            (IpAddr::V4(_), IpAddr::V4(_)) => (ipv4::MIN_HEADER_LEN, ethernet::ETHERTYPE_IPV4),
            (IpAddr::V6(_), IpAddr::V6(_)) => (ipv6::HEADER_LEN, ethernet::ETHERTYPE_IPV6),
            _ => {
                self.counters.drop_emit_error += 1;
                return;
            }
        };
        if !self.owns(local) || ip_len + udp::HEADER_LEN + payload.len() > self.cfg.mtu {
            self.counters.drop_emit_error += 1;
            return;
        }
        let Some(dst) = self.neighbour_mac(remote, now) else {
            self.counters.drop_no_neighbour += 1;
            return;
        };
        let id = self.next_ip_id();
        let src = self.mac;
        let l4_at = ethernet::HEADER_LEN + ip_len;
        let buf = self
            .tx
            .next_buf_sized(l4_at + udp::HEADER_LEN + payload.len());
        let result = (|| {
            let e = ethernet::emit(
                buf,
                &EthernetHeader {
                    dst,
                    src,
                    ethertype,
                },
            )?;
            let n = udp::emit(
                buf.get_mut(l4_at..).ok_or(WireError::BufferTooSmall)?,
                tuple.local.ip(),
                tuple.remote.ip(),
                tuple.local.port(),
                tuple.remote.port(),
                payload,
            )?;
            match (local, remote) {
                (IpAddr::V4(l), IpAddr::V4(r)) => {
                    ipv4::emit(&mut buf[e..], l, r, udp::PROTOCOL, id, n)?;
                }
                (IpAddr::V6(l), IpAddr::V6(r)) => {
                    ipv6::emit(
                        &mut buf[e..],
                        l,
                        r,
                        udp::PROTOCOL,
                        ipv6::DEFAULT_HOP_LIMIT,
                        n,
                    )?;
                }
                _ => return Err(WireError::Unsupported),
            }
            Ok::<usize, WireError>(l4_at + n)
        })();
        match result {
            Ok(len) => {
                self.tx.commit(len);
                self.counters.udp_tx_datagrams += 1;
            }
            Err(e) => self.counters.record(e),
        }
    }
}
