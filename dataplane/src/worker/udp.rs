//! UDP ingress: a datagram for an address we own and a port of the
//! worker's UDP range goes to its flow (`udpflow.rs`, opened by its first
//! datagram) and to the app ([`App::on_datagram`]); others are counted and
//! dropped. No ICMP port unreachable is sent: a scan of the service IPs
//! gets silence, as for TCP ports behind a firewall.

use super::state::{app_ctx, Core};
use crate::app::App;
use crate::port::RxMeta;
use crate::tcp::FourTuple;
use crate::udpflow::UdpRefused;
use crate::wire::{ipv4, udp};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

impl Core {
    /// A UDP datagram for an address we own.
    pub(super) fn on_udp<A: App>(
        &mut self,
        app: &mut A,
        ih: &ipv4::Ipv4Header,
        l4: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let (src, dst) = (IpAddr::V4(ih.src), IpAddr::V4(ih.dst));
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
}
