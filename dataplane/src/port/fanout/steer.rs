//! Steering by destination port (issue 17): connections to a port range
//! (FTP's passive data ports) go to worker `(port - min) mod n_workers`
//! instead of the client's hash, so a service can pick the worker a data
//! connection will reach by the port it offers — FTP's control session
//! offers only ports of its own worker's residue, and its control and data
//! connections are then checkpointed together by that worker.
//!
//! The same rule in both places: a prefix of classic BPF in front of
//! [`FANOUT_PROGRAM`](super::FANOUT_PROGRAM) (IPv4 TCP non-fragments and
//! IPv6 TCP without extension headers whose destination port is in the
//! range return `port - min`; the kernel takes it modulo the group size;
//! anything else falls through to the hash), and
//! [`worker_for_steered`] in Rust. A Packet Too Big about a steered
//! connection still goes by the hash (it names the client, not our port):
//! it only lowers an MSS, and reaches worker 0's or the hashed worker's
//! table, which may not hold the connection.
use super::{
    jump, net, stmt, worker_for, SockFilter, AD_PROTOCOL, BPF_A, BPF_ABS, BPF_ALU, BPF_AND, BPF_B,
    BPF_H, BPF_IND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LSH,
    BPF_MISC, BPF_RET, BPF_SUB, BPF_TAX, BPF_W, FANOUT_PROGRAM,
};
use crate::tcp::FourTuple;

/// A local port range whose connections are steered by port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSteer {
    /// First port of the range.
    pub min: u16,
    /// Last port of the range (inclusive).
    pub max: u16,
}

impl PortSteer {
    /// The worker a connection to local `port` reaches, if `port` is in
    /// the range.
    pub fn worker_of_port(&self, port: u16, n_workers: usize) -> Option<usize> {
        if !(self.min..=self.max).contains(&port) {
            return None;
        }
        Some(usize::from(port - self.min) % n_workers.max(1))
    }
}

/// The worker that receives the packets of `tuple` with `n_workers`
/// workers: by its local port when `steer` covers it, else
/// [`worker_for`]. Same rule as [`fanout_program`].
pub fn worker_for_steered(tuple: &FourTuple, n_workers: usize, steer: Option<PortSteer>) -> usize {
    if n_workers <= 1 {
        return 0;
    }
    steer
        .and_then(|s| s.worker_of_port(tuple.local.port(), n_workers))
        .unwrap_or_else(|| worker_for(tuple, n_workers))
}

/// The fanout program: the steering prefix for `steer`, then
/// [`FANOUT_PROGRAM`] (whose jumps are relative, so it runs unchanged
/// behind the prefix). `None`: the hash program alone.
pub fn fanout_program(steer: Option<PortSteer>) -> Vec<SockFilter> {
    let Some(s) = steer else {
        return FANOUT_PROGRAM.to_vec();
    };
    let (min, max) = (u32::from(s.min), u32::from(s.max));
    // Offsets to the end of the prefix (the first hash instruction) are
    // counted from the instruction after each jump.
    let prefix = [
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, AD_PROTOCOL),
        /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 10), // not IPv4 -> 12
        /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(9)),
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 16), // not TCP -> 20 (end)
        /* 4 */ stmt(BPF_LD | BPF_H | BPF_ABS, net(6)),
        /* 5 */ jump(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 14, 0), // fragment -> 20
        /* 6 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(0)),
        /* 7 */ stmt(BPF_ALU | BPF_AND | BPF_K, 0x0f),
        /* 8 */ stmt(BPF_ALU | BPF_LSH | BPF_K, 2),
        /* 9 */ stmt(BPF_MISC | BPF_TAX, 0), // X = IHL * 4
        /* 10 */ stmt(BPF_LD | BPF_H | BPF_IND, net(2)), // A = destination port
        /* 11 */ stmt(BPF_JMP | BPF_JA, 4), // -> 16 (range check)
        /* 12 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0x86dd, 0, 7), // not IPv6 -> 20
        /* 13 */ stmt(BPF_LD | BPF_B | BPF_ABS, net(6)), // next header
        /* 14 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 5), // not TCP -> 20
        /* 15 */ stmt(BPF_LD | BPF_H | BPF_ABS, net(42)), // destination port
        /* 16 */ jump(BPF_JMP | BPF_JGE | BPF_K, min, 0, 3), // below -> 20
        /* 17 */ jump(BPF_JMP | BPF_JGT | BPF_K, max, 2, 0), // above -> 20
        /* 18 */ stmt(BPF_ALU | BPF_SUB | BPF_K, min),
        /* 19 */ stmt(BPF_RET | BPF_A, 0),
    ];
    let mut prog = prefix.to_vec();
    prog.extend_from_slice(&FANOUT_PROGRAM);
    prog
}

#[cfg(test)]
mod tests {
    use super::super::run_cbpf;
    use super::*;
    use crate::wire::ipv4;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    const STEER: PortSteer = PortSteer {
        min: 40000,
        max: 40999,
    };

    fn tcp4(src: Ipv4Addr, sport: u16, dport: u16, ihl_words: u8) -> Vec<u8> {
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
        b[hl + 2..hl + 4].copy_from_slice(&dport.to_be_bytes());
        b
    }

    fn tcp6(src: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
        let mut b = vec![0u8; 60];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&20u16.to_be_bytes());
        b[6] = 6;
        b[7] = 64;
        b[8..24].copy_from_slice(&src.octets());
        b[24..40].copy_from_slice(&"2001:2:0:18::11".parse::<Ipv6Addr>().unwrap().octets());
        b[40..42].copy_from_slice(&sport.to_be_bytes());
        b[42..44].copy_from_slice(&dport.to_be_bytes());
        b
    }

    fn tuple(remote: IpAddr, rport: u16, local: IpAddr, lport: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::new(local, lport),
            remote: SocketAddr::new(remote, rport),
        }
    }

    #[test]
    fn passive_ports_go_to_the_worker_of_their_residue() {
        let prog = fanout_program(Some(STEER));
        let local: IpAddr = Ipv4Addr::new(198, 18, 0, 11).into();
        for n in 1..=8usize {
            for i in 0..400u32 {
                let ip = Ipv4Addr::from(0xc612_0064u32.wrapping_add(i * 7919));
                let sport = (32768 + i * 31) as u16;
                // In the range, at its edges, and just outside it.
                for dport in [
                    40000,
                    40001,
                    40000 + i as u16 % 1000,
                    40999,
                    39999,
                    41000,
                    21,
                    80,
                ] {
                    let ret = run_cbpf(&prog, 0x0800, &tcp4(ip, sport, dport, 5));
                    let t = tuple(ip.into(), sport, local, dport);
                    let want = worker_for_steered(&t, n, Some(STEER));
                    assert_eq!(
                        (ret % n as u32) as usize,
                        want,
                        "{ip}:{sport}->{dport} n={n}"
                    );
                    if (40000..=40999).contains(&dport) {
                        assert_eq!(want, usize::from(dport - 40000) % n);
                    } else {
                        assert_eq!(want, worker_for(&t, n), "outside the range: the hash");
                    }
                }
            }
        }
    }

    #[test]
    fn the_prefix_reads_the_port_after_ip_options_and_over_ipv6() {
        let prog = fanout_program(Some(STEER));
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(run_cbpf(&prog, 0x0800, &tcp4(ip, 50123, 40007, 7)), 7);
        let local: IpAddr = "2001:2:0:18::11".parse::<Ipv6Addr>().unwrap().into();
        for i in 0..200u16 {
            let src: Ipv6Addr = format!("2001:2:0:18::{:x}", 0x100 + i).parse().unwrap();
            for dport in [40000 + i * 3, 40999, 80, 39999] {
                let ret = run_cbpf(&prog, 0x86dd, &tcp6(src, 40000 + i, dport));
                for n in 1..=4usize {
                    let t = tuple(src.into(), 40000 + i, local, dport);
                    assert_eq!(
                        (ret % n as u32) as usize,
                        worker_for_steered(&t, n, Some(STEER)),
                        "[{src}]:{}->{dport} n={n}",
                        40000 + i
                    );
                }
            }
        }
    }

    #[test]
    fn without_steering_and_for_other_frames_the_hash_program_decides() {
        assert_eq!(fanout_program(None), FANOUT_PROGRAM.to_vec());
        let prog = fanout_program(Some(STEER));
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        // UDP to a port of the range: hashed like TCP elsewhere.
        let mut udp = tcp4(ip, 5000, 40003, 5);
        udp[9] = crate::wire::udp::PROTOCOL;
        assert_eq!(
            run_cbpf(&prog, 0x0800, &udp),
            run_cbpf(&FANOUT_PROGRAM, 0x0800, &udp)
        );
        // A fragment: worker 0, as without steering.
        let mut frag = tcp4(ip, 5000, 40003, 5);
        frag[6] = 0x20;
        assert_eq!(run_cbpf(&prog, 0x0800, &frag), 0);
        // ARP and a truncated frame.
        assert_eq!(run_cbpf(&prog, 0x0806, &[0u8; 28]), 0);
        assert_eq!(run_cbpf(&prog, 0x0800, &tcp4(ip, 5000, 40003, 5)[..21]), 0);
        assert_eq!(
            STEER.worker_of_port(40005, 4),
            Some(1),
            "(40005 - 40000) mod 4"
        );
        assert_eq!(STEER.worker_of_port(41000, 4), None);
    }
}
