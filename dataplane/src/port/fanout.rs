//! Which worker owns a flow: one rule, computed both by the kernel (a
//! classic BPF program attached to the `PACKET_FANOUT_CBPF` group) and by
//! Rust ([`worker_for`]).
//!
//! Why not the kernel's own `PACKET_FANOUT_HASH`: its flow hash is keyed by
//! a per-boot random secret, so no program can tell which socket a given
//! connection will land on. Takeover needs exactly that: when a survivor
//! restores a connection from a checkpoint (seed Fig. 6), it must hand the
//! TCB to the worker that will receive the client's next packets, or that
//! worker answers them with RSTs. With our own program the mapping is a
//! pure function of the client's address and port.
//!
//! The rule, for IPv4 TCP and UDP frames that are not fragments (both
//! carry the source port in their first two bytes):
//! `h = ((remote IPv4 address as u32) XOR remote port) * 0x9E3779B1`
//! (wrapping, Knuth's multiplicative hash), then `(h >> 16) mod n_workers`;
//! the kernel applies the `mod` itself (`fanout_demux_bpf` takes the
//! program's return value modulo the group size). A UDP flow over IPv4
//! (an RTSP stream's RTCP, issue 18) lands by its client's address and
//! port like a TCP connection. IPv6 TCP (no extension headers) hashes the
//! low 32 bits of the remote address the same way, and a Packet Too Big
//! about one of our TCP connections goes where its connection lives.
//! Everything else — ARP, ICMP, neighbour discovery, fragments, IPv6 UDP,
//! IPv6 with extension headers — goes to worker 0, which answers ARP, ICMP
//! and neighbour solicitations.
//!
//! Why the multiply: Linux's `connect()` picks even ephemeral ports first
//! (odd ones are left for `bind()`, `__inet_hash_connect`), so a plain
//! `(ip ^ port) mod 2` sent every connection of a Linux client to worker
//! 0. The multiply moves every input bit into the high half we keep.
//!
//! The program reads relative to the network header (`SKF_NET_OFF`), so it
//! does not depend on where `skb->data` points when fanout runs.

use crate::tcp::FourTuple;
use std::net::IpAddr;

mod steer;
pub use steer::{fanout_program, worker_for_steered, PortSteer};

/// A classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_MISC: u16 = 0x07;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_AND: u16 = 0x50;
const BPF_LSH: u16 = 0x60;
const BPF_XOR: u16 = 0xa0;
const BPF_MUL: u16 = 0x20;
const BPF_RSH: u16 = 0x70;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_SUB: u16 = 0x10;
const BPF_K: u16 = 0x00;
const BPF_X: u16 = 0x08;
const BPF_A: u16 = 0x10;
const BPF_TAX: u16 = 0x00;

/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: loads `ntohs(skb->protocol)`.
const AD_PROTOCOL: u32 = (-0x1000i32) as u32;
/// `SKF_NET_OFF`: loads relative to the network header.
const NET: i32 = -0x100000;

const fn net(off: i32) -> u32 {
    (NET + off) as u32
}

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Knuth's multiplicative hash constant (2^32 / golden ratio).
pub const HASH_MULTIPLIER: u32 = 0x9E37_79B1;

/// The fanout program: returns `((src_ip ^ src_port) * HASH_MULTIPLIER) >> 16`
/// for IPv4 TCP and UDP non-fragments and for IPv6 TCP without extension
/// headers (`src_ip` then the address's low 32 bits), the same of the
/// quoted packet's destination for an ICMPv6 Packet Too Big about TCP (the
/// client of the connection it concerns, so it reaches the worker that
/// holds it), 0 for everything else. Classic BPF only jumps forward, so
/// each branch loads its address and port and jumps to the shared hash.
pub const FANOUT_PROGRAM: [SockFilter; 35] = [
    /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, AD_PROTOCOL),
    /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 13), // not IPv4 -> 15
    /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(9)),
    /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 1, 0), // TCP -> 5
    /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 17, 0, 29), // not UDP either -> 34
    /* 5 */ stmt(BPF_LD | BPF_H | BPF_ABS, net(6)),
    /* 6 */ jump(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 27, 0), // MF or offset -> 34
    /* 7 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(0)),
    /* 8 */ stmt(BPF_ALU | BPF_AND | BPF_K, 0x0f),
    /* 9 */ stmt(BPF_ALU | BPF_LSH | BPF_K, 2),
    /* 10 */ stmt(BPF_MISC | BPF_TAX, 0), // X = IHL * 4
    /* 11 */ stmt(BPF_LD | BPF_H | BPF_IND, net(0)), // A = source port
    /* 12 */ stmt(BPF_MISC | BPF_TAX, 0),
    /* 13 */ stmt(BPF_LD | BPF_W | BPF_ABS, net(12)), // A = source address
    /* 14 */ stmt(BPF_JMP | BPF_JA, 15), // -> 30
    /* 15 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 0, 18), // not IPv6 -> 34
    /* 16 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(6)), // A = next header
    /* 17 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 4), // not TCP -> 22
    /* 18 */ stmt(BPF_LD | BPF_H | BPF_ABS, net(40)), // A = source port
    /* 19 */ stmt(BPF_MISC | BPF_TAX, 0),
    /* 20 */ stmt(BPF_LD | BPF_W | BPF_ABS, net(20)), // A = source address, low 32 bits
    /* 21 */ stmt(BPF_JMP | BPF_JA, 8), // -> 30
    /* 22 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 58, 0, 11), // not ICMPv6 -> 34
    /* 23 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(40)), // A = ICMPv6 type
    /* 24 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 9), // not Packet Too Big -> 34
    /* 25 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(48 + 6)), // quoted next header
    /* 26 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 7), // not TCP -> 34
    /* 27 */
    stmt(BPF_LD | BPF_H | BPF_ABS, net(48 + 40 + 2)), // quoted destination port
    /* 28 */ stmt(BPF_MISC | BPF_TAX, 0),
    /* 29 */
    stmt(BPF_LD | BPF_W | BPF_ABS, net(48 + 36)), // quoted destination, low 32 bits
    /* 30 */ stmt(BPF_ALU | BPF_XOR | BPF_X, 0),
    /* 31 */ stmt(BPF_ALU | BPF_MUL | BPF_K, HASH_MULTIPLIER),
    /* 32 */ stmt(BPF_ALU | BPF_RSH | BPF_K, 16),
    /* 33 */ stmt(BPF_RET | BPF_A, 0),
    /* 34 */ stmt(BPF_RET | BPF_K, 0),
];

/// The worker that receives the packets of a connection whose client is
/// `remote_ip:remote_port`, with `n_workers` workers in the fanout group.
pub fn worker_for_remote(remote_ip: IpAddr, remote_port: u16, n_workers: usize) -> usize {
    if n_workers <= 1 {
        return 0;
    }
    match remote_ip {
        IpAddr::V4(v4) => {
            let h = (u32::from(v4) ^ u32::from(remote_port)).wrapping_mul(HASH_MULTIPLIER) >> 16;
            (h % n_workers as u32) as usize
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let low = u32::from_be_bytes([o[12], o[13], o[14], o[15]]);
            let h = (low ^ u32::from(remote_port)).wrapping_mul(HASH_MULTIPLIER) >> 16;
            (h % n_workers as u32) as usize
        }
    }
}

/// The worker that receives the packets of `tuple` (its remote side is the
/// client), with `n_workers` workers in the fanout group. Same rule as
/// [`FANOUT_PROGRAM`].
pub fn worker_for(tuple: &FourTuple, n_workers: usize) -> usize {
    worker_for_remote(tuple.remote.ip(), tuple.remote.port(), n_workers)
}

/// Runs a classic BPF program the way the kernel runs a fanout program:
/// over the packet from its network header, with `protocol` as
/// `skb->protocol`. Only the instructions [`FANOUT_PROGRAM`] uses are
/// implemented; an out-of-bounds load or unknown opcode returns 0, as the
/// kernel does. For tests that pin the program to [`worker_for`].
pub fn run_cbpf(prog: &[SockFilter], protocol: u16, l3: &[u8]) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut pc = 0usize;
    let load = |off: u32, size: u16| -> Option<u32> {
        let rel = (off as i32).checked_sub(NET)?;
        let at = usize::try_from(rel).ok()?;
        let n = match size {
            BPF_W => 4,
            BPF_H => 2,
            _ => 1,
        };
        let b = l3.get(at..at.checked_add(n)?)?;
        Some(b.iter().fold(0u32, |acc, &v| (acc << 8) | u32::from(v)))
    };
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        let class = ins.code & 0x07;
        match class {
            BPF_LD => {
                let size = ins.code & 0x18;
                let v = match ins.code & 0xe0 {
                    BPF_ABS if ins.k == AD_PROTOCOL => Some(u32::from(protocol)),
                    BPF_ABS => load(ins.k, size),
                    BPF_IND => load(ins.k.wrapping_add(x), size),
                    _ => None,
                };
                match v {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            BPF_LDX => return 0,
            BPF_ALU => {
                let operand = if ins.code & BPF_X != 0 { x } else { ins.k };
                a = match ins.code & 0xf0 {
                    BPF_AND => a & operand,
                    BPF_LSH => a.wrapping_shl(operand),
                    BPF_XOR => a ^ operand,
                    BPF_SUB => a.wrapping_sub(operand),
                    BPF_MUL => a.wrapping_mul(operand),
                    BPF_RSH => a.wrapping_shr(operand),
                    _ => return 0,
                };
            }
            BPF_JMP => {
                if ins.code & 0xf0 == BPF_JA {
                    pc = match usize::try_from(ins.k).ok().and_then(|k| pc.checked_add(k)) {
                        Some(p) => p,
                        None => return 0,
                    };
                    continue;
                }
                let taken = match ins.code & 0xf0 {
                    BPF_JEQ => a == ins.k,
                    BPF_JGT => a > ins.k,
                    BPF_JGE => a >= ins.k,
                    BPF_JSET => a & ins.k != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            BPF_RET => return if ins.code & 0x18 == BPF_A { a } else { ins.k },
            BPF_MISC => x = a,
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ipv4, ipv6};
    use std::net::{Ipv4Addr, SocketAddr};

    fn tcp_packet(src: Ipv4Addr, sport: u16, ihl_words: u8) -> Vec<u8> {
        let hl = usize::from(ihl_words) * 4;
        let mut b = vec![0u8; hl + 20];
        ipv4::emit(
            &mut b,
            src,
            Ipv4Addr::new(198, 18, 0, 11),
            ipv4::PROTO_TCP,
            1,
            20,
        )
        .unwrap();
        b[0] = 0x40 | ihl_words;
        b[hl..hl + 2].copy_from_slice(&sport.to_be_bytes());
        b[hl + 2..hl + 4].copy_from_slice(&80u16.to_be_bytes());
        b
    }

    #[test]
    fn program_and_worker_for_agree_on_every_flow() {
        for n in 1..=8usize {
            for i in 0..500u32 {
                let ip = Ipv4Addr::from(0xc612_0064u32.wrapping_add(i * 7919));
                let port = (32768 + i * 31) as u16;
                let ret = run_cbpf(&FANOUT_PROGRAM, 0x0800, &tcp_packet(ip, port, 5));
                let tuple = FourTuple {
                    local: SocketAddr::new(Ipv4Addr::new(198, 18, 0, 11).into(), 80),
                    remote: SocketAddr::new(ip.into(), port),
                };
                assert_eq!(
                    (ret % n as u32) as usize,
                    worker_for(&tuple, n),
                    "{ip}:{port} n={n}"
                );
            }
        }
    }

    #[test]
    fn udp_flows_hash_like_tcp_connections() {
        for n in 1..=8usize {
            for i in 0..200u32 {
                let ip = Ipv4Addr::from(0xc612_0064u32.wrapping_add(i * 7919));
                let port = (5000 + i * 2) as u16;
                let mut p = tcp_packet(ip, port, 5);
                p[9] = crate::wire::udp::PROTOCOL;
                let ret = run_cbpf(&FANOUT_PROGRAM, 0x0800, &p);
                assert_eq!(
                    (ret % n as u32) as usize,
                    worker_for_remote(ip.into(), port, n),
                    "{ip}:{port} n={n}"
                );
            }
        }
        // Not merely worker 0: the hash is taken.
        let mut p = tcp_packet(Ipv4Addr::new(198, 18, 0, 100), 5001, 5);
        p[9] = crate::wire::udp::PROTOCOL;
        assert_ne!(run_cbpf(&FANOUT_PROGRAM, 0x0800, &p), 0);
    }

    #[test]
    fn program_finds_the_port_after_ip_options() {
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        let ret = run_cbpf(&FANOUT_PROGRAM, 0x0800, &tcp_packet(ip, 40001, 7));
        assert_eq!(
            ret,
            (u32::from(ip) ^ 40001).wrapping_mul(HASH_MULTIPLIER) >> 16
        );
    }

    #[test]
    fn even_ephemeral_ports_of_one_client_spread_over_workers() {
        // Linux connect() hands out even ports first: all of them must not
        // land on one worker.
        let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
        for n in 2..=4usize {
            let mut per = vec![0usize; n];
            for port in (32768u16..34768).step_by(2) {
                per[worker_for_remote(ip, port, n)] += 1;
            }
            let fair = 1000 / n;
            assert!(
                per.iter().all(|&c| c > fair * 3 / 4 && c < fair * 5 / 4),
                "n={n}: {per:?}"
            );
        }
    }

    #[test]
    fn arp_icmp_fragments_and_other_ipv6_go_to_worker_zero() {
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        let mut icmp = tcp_packet(ip, 1234, 5);
        icmp[9] = ipv4::PROTO_ICMP;
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x0800, &icmp), 0);
        let mut frag = tcp_packet(ip, 1234, 5);
        frag[6] = 0x20;
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x0800, &frag), 0);
        frag[9] = crate::wire::udp::PROTOCOL;
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x0800, &frag), 0);
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x0806, &[0u8; 28]), 0);
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x86dd, &[0x60; 60]), 0);
    }

    fn tcp6_packet(src: std::net::Ipv6Addr, sport: u16) -> Vec<u8> {
        let mut b = vec![0u8; 60];
        ipv6::emit(&mut b, src, "2001:2:0:18::11".parse().unwrap(), 6, 64, 20).unwrap();
        b[40..42].copy_from_slice(&sport.to_be_bytes());
        b[42..44].copy_from_slice(&80u16.to_be_bytes());
        b
    }

    #[test]
    fn program_and_worker_for_agree_on_ipv6_flows_and_spread_them() {
        for n in 2..=4usize {
            let mut per = vec![0usize; n];
            for i in 0..1000u32 {
                let ip = std::net::Ipv6Addr::from(
                    0x2001_0002_0000_0018_0000_0000_0000_0100u128 + u128::from(i % 7),
                );
                let port = (32768 + 2 * i) as u16;
                let ret = run_cbpf(&FANOUT_PROGRAM, 0x86dd, &tcp6_packet(ip, port));
                let w = worker_for_remote(IpAddr::V6(ip), port, n);
                assert_eq!((ret % n as u32) as usize, w, "{ip}:{port} n={n}");
                per[w] += 1;
            }
            let fair = 1000 / n;
            assert!(
                per.iter().all(|&c| c > fair * 3 / 4 && c < fair * 5 / 4),
                "n={n}: {per:?}"
            );
        }
    }

    #[test]
    fn packet_too_big_goes_to_the_worker_of_its_connection() {
        let client: std::net::Ipv6Addr = "2001:2:0:18::100".parse().unwrap();
        let service: std::net::Ipv6Addr = "2001:2:0:18::11".parse().unwrap();
        // The segment we sent: service:80 -> client:40001.
        let mut ours = tcp6_packet(service, 80);
        ours[24..40].copy_from_slice(&client.octets());
        ours[42..44].copy_from_slice(&40001u16.to_be_bytes());
        let mut ptb = vec![0u8; 40 + 8 + ours.len()];
        let n =
            crate::wire::icmpv6::emit_packet_too_big(&mut ptb[40..], client, service, 1280, &ours)
                .unwrap();
        ipv6::emit(&mut ptb, client, service, ipv6::PROTO_ICMPV6, 64, n).unwrap();
        let ret = run_cbpf(&FANOUT_PROGRAM, 0x86dd, &ptb);
        for n in 1..=8 {
            assert_eq!(
                (ret % n as u32) as usize,
                worker_for_remote(IpAddr::V6(client), 40001, n)
            );
        }
        // Neighbour discovery and echo go to worker 0.
        ptb[40] = crate::wire::icmpv6::TYPE_NEIGHBOR_SOLICITATION;
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x86dd, &ptb), 0);
        // As do IPv6 packets with extension headers.
        let mut ext = tcp6_packet(client, 40001);
        ext[6] = ipv6::NEXT_DEST_OPTS;
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x86dd, &ext), 0);
    }

    #[test]
    fn truncated_packet_returns_zero_not_a_panic() {
        let p = tcp_packet(Ipv4Addr::new(198, 18, 0, 100), 999, 5);
        for len in 0..p.len() {
            let _ = run_cbpf(&FANOUT_PROGRAM, 0x0800, &p[..len]);
        }
        assert_eq!(run_cbpf(&FANOUT_PROGRAM, 0x0800, &p[..21]), 0);
    }
}
