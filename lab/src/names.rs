//! Names and addresses of one lab: the single place that knows how a prefix
//! becomes namespace names, interface names, run-state paths and the
//! 198.18.0.0/15 addresses of LAB.md's topology table. Pure: it must not
//! touch the system.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use thiserror::Error;

/// The most boxes a lab may have: box N's addresses end in 10 + N, and the
/// MAC's last byte is the single digit N.
pub const MAX_BOXES: u8 = 9;

/// Where every lab keeps its run state; one folder per prefix below it.
pub const RUN_ROOT: &str = "/run/baton-lab";

/// The origin's address on the back LAN.
pub const ORIGIN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

/// The origin's IPv6 address on the back LAN (`lab up --back-v6`), a /64
/// of RFC 5180's range apart from the front's `2001:2:0:18::/64`.
pub const ORIGIN_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x19, 0, 0, 0, 2);

/// The client's first address on the front LAN.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

/// The client's IPv6 address on the front LAN (RFC 5180's benchmarking
/// range), a /64.
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x100);

/// Problems with a name given on the command line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    /// The prefix would not make safe namespace or file names.
    #[error("prefix {0:?} must be 1 to 24 characters of a-z, A-Z, 0-9, '_' (it names namespaces and files)")]
    BadPrefix(String),
    /// The node name is none of client, origin, lan, box1..box9.
    #[error("unknown node {0:?}: expected client, origin, lan or box1..box{MAX_BOXES}")]
    BadNode(String),
}

/// One lab, identified by its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    prefix: String,
}

/// A namespace of the lab that commands can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The namespace that holds the two bridges.
    Lan,
    /// Where clients run, on the front LAN.
    Client,
    /// The origin web server, on the back LAN.
    Origin,
    /// Appliance box N (1..=9), on both LANs.
    Box(u8),
}

impl Node {
    /// Parses `client`, `origin`, `lan` or `boxN`.
    pub fn parse(s: &str) -> Result<Node, NameError> {
        match s {
            "lan" => Ok(Node::Lan),
            "client" => Ok(Node::Client),
            "origin" => Ok(Node::Origin),
            _ => {
                let n = s
                    .strip_prefix("box")
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|n| (1..=MAX_BOXES).contains(n))
                    .ok_or_else(|| NameError::BadNode(s.to_string()))?;
                Ok(Node::Box(n))
            }
        }
    }

    /// The node's name as the commands spell it.
    pub fn name(&self) -> String {
        match self {
            Node::Lan => "lan".into(),
            Node::Client => "client".into(),
            Node::Origin => "origin".into(),
            Node::Box(n) => format!("box{n}"),
        }
    }

    /// The bridge-side veth in the lan namespace through which the LAN
    /// delivers frames to this node (a box's front LAN port: clients reach
    /// it there), or None for the lan namespace itself.
    pub fn lan_port(&self) -> Option<String> {
        match self {
            Node::Lan => None,
            Node::Client => Some("client".into()),
            Node::Origin => Some("origin".into()),
            Node::Box(n) => Some(box_front_port(*n)),
        }
    }
}

/// Bridge-side veth of box N's `front0`.
pub fn box_front_port(n: u8) -> String {
    format!("box{n}f")
}

/// Bridge-side veth of box N's `back0`.
pub fn box_back_port(n: u8) -> String {
    format!("box{n}b")
}

/// Box N's service address on the front LAN (owned by its dataplane).
pub fn box_service_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + n)
}

/// Box N's IPv6 service address on the front LAN, `2001:2:0:18::(10+N)`
/// written in decimal as the IPv4 one is (box 1: `2001:2:0:18::11`).
pub fn box_service_addr6(n: u8) -> Ipv6Addr {
    // Boxes are 1 to 9: 0x10 + N is "1N", the digits of 10 + N.
    Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x10 + u16::from(n))
}

/// Box N's kernel address on the back LAN.
pub fn box_back_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, 10 + n)
}

/// Box N's IPv6 address on the back LAN (`lab up --back-v6`),
/// `2001:2:0:19::(10+N)`, in decimal digits as the front one.
pub fn box_back_addr6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, 0x19, 0, 0, 0, 0x10 + u16::from(n))
}

/// Box N's fixed front MAC, 02:ba:70:00:00:0N (locally administered).
pub fn box_mac(n: u8) -> String {
    format!("02:ba:70:00:00:{n:02x}")
}

/// The k-th extra client address (k from 1). The first 99 stay on the
/// front /24 (198.18.0.101..=199) so a box reaches them without any routing
/// decision; beyond that they continue in 198.18.1.0 onwards, still on-link
/// on the same bridge (the client holds them as /16), which a box's dataplane
/// reaches by ARPing on the LAN it received the SYN from.
pub fn client_extra_addr(k: u32) -> Option<(Ipv4Addr, u8)> {
    if k == 0 {
        return None;
    }
    if k <= 99 {
        return Some((Ipv4Addr::new(198, 18, 0, 100 + k as u8), 24));
    }
    // 198.18.1.1 .. 198.18.255.254, skipping .0 and .255 of every /24.
    let i = k - 100;
    let third = 1 + i / 254;
    let fourth = 1 + i % 254;
    if third > 255 {
        return None;
    }
    Some((Ipv4Addr::new(198, 18, third as u8, fourth as u8), 16))
}

impl Lab {
    /// A lab named by `prefix`; rejects prefixes that could not safely name
    /// namespaces and files.
    pub fn new(prefix: &str) -> Result<Lab, NameError> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 24
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(NameError::BadPrefix(prefix.to_string()));
        }
        Ok(Lab {
            prefix: prefix.to_string(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace of `node`.
    pub fn ns(&self, node: Node) -> String {
        format!("{}-{}", self.prefix, node.name())
    }

    /// Whether `ns` is a namespace this lab would create.
    pub fn owns_ns(&self, ns: &str) -> bool {
        ns.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .map(|rest| Node::parse(rest).is_ok())
            .unwrap_or(false)
    }

    /// The run-state folder.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(RUN_ROOT).join(&self.prefix)
    }

    /// A file in the run-state folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// The generated objects the origin serves.
    pub fn objects_dir(&self) -> PathBuf {
        self.file("objects")
    }

    /// The checkpoint segment all boxes of this lab share.
    pub fn segment_path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/baton-lab-{}.seg", self.prefix))
    }

    /// Box `n`'s own segment in a lab whose segments are replicated.
    pub fn box_segment_path(&self, n: u8) -> PathBuf {
        PathBuf::from(format!("/dev/shm/baton-lab-{}-box{n}.seg", self.prefix))
    }

    /// Where the boxes of this lab spool uploads in flight (shared by all,
    /// in either segment mode: the lab is one host).
    pub fn upload_dir(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/baton-lab-{}.uploads", self.prefix))
    }

    /// Every upload spool directory of this lab that exists: the shared one,
    /// and the default beside each segment (a box config without
    /// `upload_dir`, e.g. edited by hand).
    pub fn upload_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = (1..=9)
            .map(|n| self.box_segment_path(n))
            .chain([self.segment_path()])
            .map(|seg| {
                let mut p = seg.into_os_string();
                p.push(".uploads");
                PathBuf::from(p)
            })
            .collect();
        dirs.push(self.upload_dir());
        dirs.retain(|d| d.exists());
        dirs
    }

    /// Every segment file of this lab that exists (shared or per box),
    /// and the view Raft's state file beside each (replicated mode's
    /// default `raft.state_path`, and its `.tmp` while rewritten), and each
    /// box's epoch file beside that (`<raft state>.<id>.epoch`): a new lab
    /// must not adopt an old lab's views or epochs.
    pub fn segment_files(&self) -> Vec<PathBuf> {
        let mut segments: Vec<PathBuf> = (1..=9).map(|n| self.box_segment_path(n)).collect();
        segments.push(self.segment_path());
        let mut suffixes: Vec<String> = ["", ".raft", ".raft.tmp"].map(String::from).to_vec();
        for id in 1..=9 {
            suffixes.push(format!(".raft.{id}.epoch"));
            suffixes.push(format!(".raft.{id}.epoch.tmp"));
        }
        let mut files = Vec::new();
        for seg in segments {
            for suffix in &suffixes {
                let mut p = seg.clone().into_os_string();
                p.push(suffix);
                files.push(PathBuf::from(p));
            }
        }
        files.retain(|f| f.exists());
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_with_path_characters_is_rejected() {
        assert!(Lab::new("../x").is_err());
        assert!(Lab::new("a-b").is_err());
        assert!(Lab::new("").is_err());
        assert!(Lab::new("baton").is_ok());
    }

    #[test]
    fn lab_owns_only_its_own_namespaces() {
        let lab = Lab::new("bt1").unwrap();
        assert!(lab.owns_ns("bt1-lan"));
        assert!(lab.owns_ns("bt1-box3"));
        assert!(!lab.owns_ns("bt10-lan"));
        assert!(!lab.owns_ns("bt1-box10"));
        assert!(!lab.owns_ns("bt1-other"));
    }

    #[test]
    fn box_addresses_follow_lab_md() {
        assert_eq!(box_service_addr(1).to_string(), "198.18.0.11");
        assert_eq!(box_back_addr(3).to_string(), "198.19.0.13");
        assert_eq!(box_back_addr6(3).to_string(), "2001:2:0:19::13");
        assert_eq!(ORIGIN_ADDR6.to_string(), "2001:2:0:19::2");
        assert_eq!(box_mac(2), "02:ba:70:00:00:02");
    }

    #[test]
    fn extra_client_addresses_stay_in_the_benchmark_range() {
        assert_eq!(client_extra_addr(1).unwrap().0.to_string(), "198.18.0.101");
        assert_eq!(client_extra_addr(99).unwrap().0.to_string(), "198.18.0.199");
        assert_eq!(client_extra_addr(100).unwrap().0.to_string(), "198.18.1.1");
        assert_eq!(client_extra_addr(354).unwrap().0.to_string(), "198.18.2.1");
        for k in [1, 99, 100, 5000, 60000] {
            let (a, _) = client_extra_addr(k).unwrap();
            assert_eq!(&a.octets()[..2], &[198, 18]);
            assert_ne!(a.octets()[3], 0);
            assert_ne!(a.octets()[3], 255);
        }
    }

    #[test]
    fn node_names_round_trip() {
        for s in ["lan", "client", "origin", "box1", "box9"] {
            assert_eq!(Node::parse(s).unwrap().name(), s);
        }
        assert!(Node::parse("box0").is_err());
        assert!(Node::parse("box10").is_err());
    }
}
