//! Target `worker`: fuzzed frames through a real worker's whole ingress
//! (the port's receive burst, parse, neighbour learning, ICMP, listener,
//! demux into TCBs, the app) and its egress, over the in-memory port, for
//! an IPv4 and an IPv6 service address (neighbour discovery, ICMPv6).
//!
//! Before the input, the worker knows the client's MAC and holds one
//! restored connection (the takeover path), so that segments for an
//! established connection need no handshake to reach the TCB. The seeds
//! (examples/seeds.rs) use the addresses and sequence numbers below.

use baton_dataplane::port::memory::MemoryPort;
use baton_dataplane::port::RxMeta;
use baton_dataplane::responder::Responder;
use baton_dataplane::tcp::{FourTuple, State, TcbExport};
use baton_dataplane::wire::arp::{self, ArpPacket};
use baton_dataplane::wire::ethernet::{self, EthernetHeader, MacAddr};
use baton_dataplane::wire::{ipv4, tcp};
use baton_dataplane::worker::{Command, Worker, WorkerConfig};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The box's MAC.
pub const BOX_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
/// The client's MAC.
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);
/// The service address (port 80).
pub const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
/// The IPv6 service address (port 80), served beside [`SERVICE`].
pub const SERVICE6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x11);
/// The client's IPv6 address.
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x100);
/// The restored connection's client port.
pub const RESTORED_PORT: u16 = 40_001;
/// The restored connection's RCV.NXT (the client's next sequence number).
pub const RESTORED_RCV_NXT: u32 = 5100;
/// The restored connection's SND.UNA (what the client acknowledges).
pub const RESTORED_SND_UNA: u32 = 90_000;

/// The checkpoint of the restored connection.
pub fn restored() -> TcbExport {
    TcbExport {
        tuple: FourTuple {
            local: SocketAddr::new(IpAddr::V4(SERVICE), 80),
            remote: SocketAddr::new(IpAddr::V4(CLIENT), RESTORED_PORT),
        },
        state: State::Established,
        iss: 1000,
        irs: 5000,
        snd_una: RESTORED_SND_UNA,
        snd_nxt: RESTORED_SND_UNA,
        rcv_nxt: RESTORED_RCV_NXT,
        snd_wnd: 65_535,
        rcv_wnd: 65_535,
        mss: 1460,
        snd_wscale: 0,
        rcv_wscale: 0,
        sack_permitted: false,
        timestamps: false,
        ts_recent: 0,
        ts_last_sent: 0,
        acks_covered: false,
    }
}

/// The client's ARP reply: the worker learns its MAC.
pub fn arp_reply() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_ARP,
        },
    )
    .unwrap_or(0);
    let _ = arp::emit(
        &mut f[e..],
        &ArpPacket {
            op: arp::OP_REPLY,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT,
            target_mac: BOX_MAC,
            target_ip: SERVICE,
        },
    );
    f
}

/// The last TCP segment the box sent: the sequence number that follows it
/// and its acknowledgment number, what a client answers with.
#[derive(Default, Clone, Copy)]
struct Heard {
    next_seq: u32,
    ack: u32,
}

fn listen(frames: Vec<Vec<u8>>, heard: &mut Heard) {
    for f in frames {
        let Ok((_, p)) = ethernet::parse(&f) else {
            continue;
        };
        let Ok((ih, l4)) = ipv4::parse(p) else {
            continue;
        };
        if let Ok(s) = tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, true) {
            let len = s.payload.len() as u32 + u32::from(s.flags.syn) + u32::from(s.flags.fin);
            *heard = Heard {
                next_seq: s.seq.0.wrapping_add(len),
                ack: s.ack.0,
            };
        }
    }
}

/// Each record of `data` (see [`crate::records`]) is one frame; its
/// control byte: bit 0 fix the checksums, bit 1 report them trusted (a
/// veth peer), bit 2 answer the box (the frame's TCP sequence and
/// acknowledgment numbers replaced by those the box's last segment asks
/// for: handshakes complete, data is in window), bits 3..8 how long
/// before the frame, in 32 ms units (so retransmission timers fire too).
pub fn run(data: &[u8]) {
    let t0 = Instant::now();
    let (mut wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
    let objects = Arc::new(HashMap::from([(
        "1K.bin".to_string(),
        Bytes::from(vec![b'x'; 1024]),
    )]));
    let mut w = Worker::new(
        port,
        Responder::new(objects),
        WorkerConfig::for_test(vec![IpAddr::V4(SERVICE), IpAddr::V6(SERVICE6)]),
        t0,
    );
    let trusted = RxMeta {
        checksum_trusted: true,
    };
    w.handle_frame(&arp_reply(), trusted, t0);
    w.command(
        Command::Restore {
            export: restored(),
            app_data: Box::new(()),
        },
        t0,
    );
    let mut now = t0;
    let _ = w.poll(now);
    let mut heard = Heard::default();
    listen(wire.drain(), &mut heard);
    for (ctl, frame) in crate::records(data) {
        now += Duration::from_millis(u64::from(ctl >> 3) * 32);
        let mut frame = frame.to_vec();
        if ctl & 4 == 4 {
            answer(&mut frame, heard);
        }
        if ctl & 1 == 1 {
            crate::frames::fix_checksums(&mut frame);
        }
        // Through the port, as the NIC's frames come: the worker's own
        // receive burst picks it up.
        w.port_mut().trust_checksums = ctl & 2 == 2;
        if wire.send(frame).is_err() {
            return;
        }
        let _ = w.poll(now);
        listen(wire.drain(), &mut heard);
    }
    // Let every timer the input armed fire once.
    for step in 1..=4 {
        let _ = w.poll(now + Duration::from_secs(step * 2));
        wire.drain();
    }
}

/// Writes the numbers the box asked for into an Ethernet/IPv4/TCP frame.
fn answer(frame: &mut [u8], heard: Heard) {
    let Some(&b) = frame.get(ethernet::HEADER_LEN) else {
        return;
    };
    let off = ethernet::HEADER_LEN + usize::from(b & 0x0f) * 4;
    if let Some(t) = frame.get_mut(off..off + 12) {
        t[4..8].copy_from_slice(&heard.ack.to_be_bytes());
        t[8..12].copy_from_slice(&heard.next_seq.to_be_bytes());
    }
}
