//! A connection's addresses as its TCB keeps them: 38 bytes where a
//! [`FourTuple`] of two `SocketAddr`s takes 64, in each of 300,000 TCBs
//! (issue 19). It keeps what a tuple made from a packet has: the
//! addresses and ports (an IPv6 socket address's flow info and scope id
//! are zero there, and are zero again when unpacked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::FourTuple;

/// A [`FourTuple`], packed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct PackedTuple {
    local: [u8; 16],
    remote: [u8; 16],
    local_port: u16,
    remote_port: u16,
    local_v6: bool,
    remote_v6: bool,
}

fn octets(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, false)
        }
        IpAddr::V6(a) => (a.octets(), true),
    }
}

fn address(b: [u8; 16], v6: bool, port: u16) -> SocketAddr {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    SocketAddr::new(ip, port)
}

impl PackedTuple {
    /// `t`, packed.
    pub(crate) fn pack(t: &FourTuple) -> PackedTuple {
        let (local, local_v6) = octets(t.local.ip());
        let (remote, remote_v6) = octets(t.remote.ip());
        PackedTuple {
            local,
            remote,
            local_port: t.local.port(),
            remote_port: t.remote.port(),
            local_v6,
            remote_v6,
        }
    }

    /// Our port.
    pub(crate) fn local_port(&self) -> u16 {
        self.local_port
    }

    /// The peer's port.
    pub(crate) fn remote_port(&self) -> u16 {
        self.remote_port
    }

    /// Our address.
    pub(crate) fn local_ip(&self) -> IpAddr {
        address(self.local, self.local_v6, 0).ip()
    }

    /// The peer's address.
    pub(crate) fn remote_ip(&self) -> IpAddr {
        address(self.remote, self.remote_v6, 0).ip()
    }

    /// The tuple again.
    pub(crate) fn unpack(&self) -> FourTuple {
        FourTuple {
            local: address(self.local, self.local_v6, self.local_port),
            remote: address(self.remote, self.remote_v6, self.remote_port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_of_either_family_round_trip_in_38_bytes() {
        assert_eq!(std::mem::size_of::<PackedTuple>(), 38);
        for (l, r) in [
            ("198.18.0.11:80", "198.18.0.100:40000"),
            ("[2001:2:0:18::11]:443", "[2001:2:0:18::100]:65535"),
            ("0.0.0.0:0", "[::1]:1"),
        ] {
            let t = FourTuple {
                local: l.parse().unwrap(),
                remote: r.parse().unwrap(),
            };
            assert_eq!(PackedTuple::pack(&t).unpack(), t);
        }
        let a = FourTuple {
            local: "198.18.0.11:80".parse().unwrap(),
            remote: "198.18.0.100:1".parse().unwrap(),
        };
        let b = FourTuple {
            remote: "198.18.0.100:2".parse().unwrap(),
            ..a
        };
        assert_ne!(PackedTuple::pack(&a), PackedTuple::pack(&b));
    }
}
