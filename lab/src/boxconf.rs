//! Writes each box's configuration file (`/run/baton-lab/P/boxN.toml`) in
//! the schema that `baton-config` parses.
//! It writes text only: it must not start processes or touch namespaces.
use std::fmt::Write as _;

use std::net::{IpAddr, SocketAddr};

use crate::names::{
    box_back_addr, box_back_addr6, box_mac, box_service_addr, box_service_addr6, Lab, ORIGIN_ADDR,
};

/// Workers per lab box: the lab shares a small machine between its boxes.
const LAB_WORKERS: usize = 1;
/// The lab boxes' FTP passive ports (LAB.md).
pub const LAB_FTP_PASSIVE_MIN: u16 = 40000;
/// Last of them.
pub const LAB_FTP_PASSIVE_MAX: u16 = 40031;
/// MiB each lab box's EAL reserves on the DPDK backend (no hugepages, so
/// ordinary memory): room for the mbuf pool and the EAL's own heap.
const LAB_DPDK_MEMORY_MB: u32 = 128;

/// `failure.heartbeat_interval_ms` of every lab box: detection is this
/// times the box's `failure.missed`. Public so reports that state a lab's
/// detection time build it from what the boxes run with.
pub const LAB_HEARTBEAT_MS: u32 = 30;
/// `failure.missed` in a lab sharing one segment: 30 ms × 3 = 90 ms.
pub const SHARED_MISSED: u32 = 3;
/// `failure.missed` in a replicated lab: 30 ms × 30 = 900 ms, the least
/// `check-config` accepts with the default `raft.lease_ms` (800).
const REPLICATED_MISSED: u32 = 30;

/// What every box of one lab shares.
#[derive(Debug, Clone)]
pub struct ClusterSecrets {
    /// Cluster key, 64 hex digits, authenticates heartbeats and replication.
    pub key: String,
    /// The lab's admin secret, written in no config: each box's admin token
    /// is derived from it ([`box_token`]), so one box's token drives no
    /// other box.
    pub token: String,
}

/// The dataplane backend named on `lab up --backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// TPACKET_V3 rings on `front0`; works on any Linux interface.
    Afpacket,
    /// DPDK (needs the `dpdk` cargo feature).
    Dpdk,
    /// AF_XDP on `front0`: the XDP program in veth's driver hook, copy
    /// mode (veth has no zero-copy).
    Afxdp,
}

impl Backend {
    fn as_str(self) -> &'static str {
        match self {
            Backend::Afpacket => "afpacket",
            Backend::Dpdk => "dpdk",
            Backend::Afxdp => "afxdp",
        }
    }
}

/// How the boxes of a lab share checkpoints (`lab up --segment-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SegmentMode {
    /// One segment file every box maps.
    Shared,
    /// A segment per box; boxes replicate their regions over the back LAN.
    Replicated,
}

/// Which family the boxes' back-LAN traffic uses (`lab up --back-v6`):
/// heartbeats, replication, the view's Raft and the admin API. Origin
/// fetches stay on IPv4 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackFamily {
    /// 198.19.0.(10+N).
    #[default]
    V4,
    /// 2001:2:0:19::(10+N).
    V6,
}

impl BackFamily {
    /// Box N's back-LAN address in this family.
    pub fn addr(self, n: u8) -> IpAddr {
        match self {
            BackFamily::V4 => box_back_addr(n).into(),
            BackFamily::V6 => box_back_addr6(n).into(),
        }
    }
}

/// The TOML text of box `id`'s configuration in a lab of `boxes` boxes.
#[allow(clippy::too_many_arguments)]
pub fn box_toml(
    lab: &Lab,
    id: u8,
    boxes: u8,
    backend: Backend,
    segment_mode: SegmentMode,
    tx_offload: bool,
    back: BackFamily,
    anycast: Option<std::net::Ipv4Addr>,
    secrets: &ClusterSecrets,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `baton lab up` for lab {:?}.", lab.prefix());
    let _ = writeln!(s, "[box]\nid = {id}\nname = \"box{id}\"\n");
    let _ = writeln!(s, "[cluster]\nkey = \"{}\"\n", secrets.key);
    for m in 1..=boxes {
        let _ = writeln!(
            s,
            "[[cluster.members]]\nid = {m}\nback_addr = \"{}\"\n",
            SocketAddr::new(back.addr(m), 7400)
        );
    }
    // The anycast addresses of a steered lab (IPv4, then IPv6) come last:
    // the first two are the box's own, which a survivor inherits when the
    // box dies.
    let anycast = anycast.map_or(String::new(), |a| {
        format!(", \"{a}\", \"{}\"", crate::steering::ANYCAST_ADDR6)
    });
    let _ = writeln!(
        s,
        "[service]\nips = [\"{}\", \"{}\"{anycast}]\nport = 80\n",
        box_service_addr(id),
        box_service_addr6(id)
    );
    let _ = writeln!(
        s,
        "[dataplane]\nbackend = \"{}\"\ninterface = \"front0\"\nworkers = {LAB_WORKERS}\ncores = []\npoll_mode = \"adaptive\"\nmac = \"{}\"\ntx_offload = {tx_offload}\n",
        backend.as_str(),
        box_mac(id)
    );
    if backend == Backend::Dpdk {
        // net_af_packet on the box's front0 (whose MAC the lab set to the
        // box's, so the device's MAC is the configured one), one queue pair
        // per worker, no hugepages: the lab runs on any machine. The EAL's
        // file prefix is the box name, so the boxes' EALs never meet.
        let _ = writeln!(
            s,
            "[dataplane.dpdk]\nvdevs = [\"net_af_packet0,iface=front0,qpairs={LAB_WORKERS}\"]\nhugepages = false\nmemory_mb = {LAB_DPDK_MEMORY_MB}\nlog_level = \"notice\"\n"
        );
    }
    let (segment, mode) = match segment_mode {
        SegmentMode::Shared => (lab.segment_path(), "shared"),
        SegmentMode::Replicated => (lab.box_segment_path(id), "replicated"),
    };
    let _ = writeln!(
        s,
        "[checkpoint]\nsegment_path = \"{}\"\nslots = 20000\nmode = \"{mode}\"\nupload_dir = \"{}\"\n",
        segment.display(),
        // One host: every box sees the same spool, whatever the segment mode.
        lab.upload_dir().display()
    );
    // Replicated mode: detection must outlast the view Raft's quorum
    // lease (800 ms by default) by three heartbeats, so that a box cut off
    // from the quorum has stopped before its peers take it over.
    let missed = match segment_mode {
        SegmentMode::Shared => SHARED_MISSED,
        SegmentMode::Replicated => REPLICATED_MISSED,
    };
    let _ = writeln!(
        s,
        "[failure]\nheartbeat_interval_ms = {LAB_HEARTBEAT_MS}\nmissed = {missed}\n"
    );
    let _ = writeln!(
        s,
        "[cache]\norigin = \"http://{ORIGIN_ADDR}:80\"\nmemory_bytes = \"512MiB\"\n"
    );
    // FTP beside HTTP (issue 17), with a passive range small enough to
    // read in a capture.
    let _ = writeln!(
        s,
        "[ftp]\nenabled = true\nport = 21\npassive_port_min = {LAB_FTP_PASSIVE_MIN}\npassive_port_max = {LAB_FTP_PASSIVE_MAX}\n"
    );
    // RTSP beside HTTP (issue 18): the origin's clip.ts streamed on the
    // default ports (554, RTP/RTCP from 6970-6971).
    let _ = writeln!(s, "[rtsp]\nenabled = true\n");
    let _ = writeln!(
        s,
        "[admin]\nlisten = \"{}\"\ntoken = \"{}\"",
        SocketAddr::new(back.addr(id), 9090),
        box_token(&secrets.token, id)
    );
    s
}

/// The largest `checkpoint.slot_bytes` (`baton_config::MAX_SLOT_BYTES`,
/// which this crate does not link): below it a box refuses FTP and RTSP.
const LARGEST_SLOT_BYTES: u32 = 768;

/// A lab box's config `text` with `checkpoint.slot_bytes = bytes` (`lab up
/// --slot-bytes`); below the largest slot, FTP and RTSP off, which a box
/// refuses beside smaller slots (their bundles would not fit): such a lab
/// serves HTTP alone.
pub fn with_slot_bytes(text: &str, bytes: u32) -> String {
    let mut text =
        crate::driver::set_toml_key(text, "checkpoint", "slot_bytes", &bytes.to_string());
    if bytes < LARGEST_SLOT_BYTES {
        for table in ["ftp", "rtsp"] {
            text = crate::driver::set_toml_key(&text, table, "enabled", "false");
        }
    }
    text
}

/// The `[takeover]` table of a lab box (`lab up --assignment`,
/// `--capacity`; issue 20), empty when neither is given (the defaults).
pub fn takeover_toml(assignment: Option<&str>, capacity: Option<u64>) -> String {
    if assignment.is_none() && capacity.is_none() {
        return String::new();
    }
    let mut s = String::from("\n[takeover]\n");
    if let Some(a) = assignment {
        let _ = writeln!(s, "assignment = \"{a}\"");
    }
    if let Some(c) = capacity {
        let _ = writeln!(s, "capacity = {c}");
    }
    s
}

/// The `[balance]` table of a lab box (`lab up --balance-threshold N`):
/// the balancer on, acting when boxes are more than `threshold`
/// connections apart, at most 100 moves a second, looking every 200 ms.
pub fn balance_toml(threshold: Option<u64>) -> String {
    threshold.map_or(String::new(), |t| {
        format!("\n[balance]\nenabled = true\nthreshold = {t}\nrate = 100\ninterval_ms = 200\n")
    })
}

/// The `[tls]` table of a lab box (`lab up --tls`): HTTPS on, on the
/// default port, with the box's certificate and key.
pub fn tls_toml(files: &crate::certs::BoxTlsFiles) -> String {
    format!(
        "\n[tls]\nenabled = true\ncertificate = \"{}\"\nkey = \"{}\"\n",
        files.certificate.display(),
        files.key.display()
    )
}

/// Box `id`'s admin token: SHA-256 of the lab's secret and the id, hex.
/// Knowing one box's token tells nothing of another's.
pub fn box_token(secret: &str, id: u8) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update([0, id]);
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lab "bt" and secrets `check-config` accepts.
    fn lab_bt() -> (Lab, ClusterSecrets) {
        let secrets = ClusterSecrets {
            key: "00".repeat(32),
            token: "t".repeat(32),
        };
        (Lab::new("bt").unwrap(), secrets)
    }

    /// Box 2's config in a lab of three, AF_PACKET, shared segment, IPv4
    /// back LAN: what most of these tests start from.
    fn box2_of_three(lab: &Lab, secrets: &ClusterSecrets) -> String {
        box_toml(
            lab,
            2,
            3,
            Backend::Afpacket,
            SegmentMode::Shared,
            true,
            BackFamily::V4,
            None,
            secrets,
        )
    }

    #[test]
    fn box_config_names_its_own_addresses_and_every_member() {
        let lab = Lab::new("bt").unwrap();
        let secrets = ClusterSecrets {
            key: "k".repeat(64),
            token: "t".repeat(32),
        };
        let text = box2_of_three(&lab, &secrets);
        let v: toml::Value = toml::from_str(&text).expect("valid TOML");
        assert_eq!(v["box"]["id"].as_integer(), Some(2));
        assert_eq!(v["box"]["name"].as_str(), Some("box2"));
        let members = v["cluster"]["members"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members[2]["back_addr"].as_str(), Some("198.19.0.13:7400"));
        assert_eq!(v["service"]["ips"][0].as_str(), Some("198.18.0.12"));
        assert_eq!(v["service"]["ips"][1].as_str(), Some("2001:2:0:18::12"));
        assert_eq!(v["dataplane"]["mac"].as_str(), Some("02:ba:70:00:00:02"));
        assert_eq!(v["dataplane"]["backend"].as_str(), Some("afpacket"));
        assert_eq!(v["dataplane"]["tx_offload"].as_bool(), Some(true));
        assert_eq!(
            v["checkpoint"]["segment_path"].as_str(),
            Some("/dev/shm/baton-lab-bt.seg")
        );
        assert_eq!(v["cache"]["origin"].as_str(), Some("http://198.19.0.2:80"));
        assert_eq!(v["admin"]["listen"].as_str(), Some("198.19.0.12:9090"));
        assert_eq!(v["cluster"]["key"].as_str().unwrap().len(), 64);
        let token = v["admin"]["token"].as_str().unwrap();
        assert_eq!(token, box_token(&secrets.token, 2));
        assert_ne!(token, box_token(&secrets.token, 1), "a token per box");
        assert!(
            !text.contains(&secrets.token),
            "the lab's secret is in no config"
        );
        assert!(
            v["dataplane"].get("dpdk").is_none(),
            "no DPDK table on AF_PACKET"
        );
    }

    /// Smaller slots: the config the box reads has them, and FTP and RTSP
    /// off (or it would refuse them); the largest leaves both on.
    #[test]
    fn a_lab_with_smaller_slots_serves_http_alone() {
        assert_eq!(LARGEST_SLOT_BYTES, baton_config::MAX_SLOT_BYTES);
        let (lab, secrets) = lab_bt();
        let text = box2_of_three(&lab, &secrets);
        let small = with_slot_bytes(&text, 384);
        let c = baton_config::parse(&small, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{small}"));
        assert_eq!(c.checkpoint.slot_bytes, 384);
        assert!(!c.ftp.enabled && !c.rtsp.enabled);
        let c = baton_config::parse(&with_slot_bytes(&text, 768), "box2.toml").unwrap();
        assert!(c.ftp.enabled && c.rtsp.enabled);
    }

    #[test]
    fn a_least_loaded_lab_writes_the_takeover_table_and_the_default_writes_none() {
        let (lab, secrets) = lab_bt();
        let mut text = box2_of_three(&lab, &secrets);
        assert_eq!(takeover_toml(None, None), "");
        text.push_str(&takeover_toml(Some("least_loaded"), Some(100)));
        let c = baton_config::parse(&text, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.takeover.assignment, baton_config::Assignment::LeastLoaded);
        assert_eq!(c.takeover.capacity, 100);
    }

    #[test]
    fn a_replicated_box_config_passes_check_config_with_the_raft_beside_its_segment() {
        let (lab, secrets) = lab_bt();
        let text = box_toml(
            &lab,
            2,
            3,
            Backend::Afpacket,
            SegmentMode::Replicated,
            true,
            BackFamily::V4,
            None,
            &secrets,
        );
        let c = baton_config::parse(&text, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            c.raft.state_path(&c.checkpoint.segment_path),
            std::path::PathBuf::from("/dev/shm/baton-lab-bt-box2.seg.raft")
        );
        assert!(c.failure.detection_ms() >= c.raft.min_detection_ms(30));
    }

    #[test]
    fn a_back_v6_replicated_config_puts_members_and_admin_on_ipv6_and_passes_check_config() {
        let (lab, secrets) = lab_bt();
        let text = box_toml(
            &lab,
            2,
            3,
            Backend::Afpacket,
            SegmentMode::Replicated,
            true,
            BackFamily::V6,
            None,
            &secrets,
        );
        let c = baton_config::parse(&text, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let backs: Vec<String> = c
            .cluster
            .members
            .iter()
            .map(|m| m.back_addr.to_string())
            .collect();
        assert_eq!(
            backs,
            [
                "[2001:2:0:19::11]:7400",
                "[2001:2:0:19::12]:7400",
                "[2001:2:0:19::13]:7400"
            ]
        );
        assert_eq!(c.admin.listen.to_string(), "[2001:2:0:19::12]:9090");
        assert!(
            text.contains("origin = \"http://198.19.0.2:80\""),
            "origin stays IPv4"
        );
    }

    #[test]
    fn dpdk_box_config_drives_front0_through_net_af_packet() {
        let (lab, secrets) = lab_bt();
        let text = box_toml(
            &lab,
            3,
            3,
            Backend::Dpdk,
            SegmentMode::Shared,
            true,
            BackFamily::V4,
            None,
            &secrets,
        );
        let c = baton_config::parse(&text, "box3.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.dataplane.backend, baton_config::Backend::Dpdk);
        let d = c.dataplane.dpdk.expect("a [dataplane.dpdk] table");
        assert_eq!(
            d.vdevs,
            vec![format!(
                "net_af_packet0,iface=front0,qpairs={}",
                c.dataplane.workers
            )]
        );
        assert!(!d.hugepages);
        assert_eq!(d.memory_mb, LAB_DPDK_MEMORY_MB);
        assert_eq!(c.node.name, "box3", "the box name is the EAL's file prefix");
    }

    #[test]
    fn afxdp_box_config_passes_check_config_with_one_worker() {
        let (lab, secrets) = lab_bt();
        let text = box_toml(
            &lab,
            2,
            3,
            Backend::Afxdp,
            SegmentMode::Shared,
            true,
            BackFamily::V4,
            None,
            &secrets,
        );
        let c = baton_config::parse(&text, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.dataplane.backend, baton_config::Backend::AfXdp);
        assert_eq!(c.dataplane.interface, "front0");
        assert_eq!(c.dataplane.workers, 1);
        assert!(c.dataplane.dpdk.is_none());
        // Every lab box streams RTSP (issue 18) on the default ports.
        assert!(c.rtsp.enabled);
        assert_eq!(c.rtsp.port, 554);
    }

    #[test]
    fn a_tls_box_config_enables_tls_with_its_own_files() {
        let (lab, secrets) = lab_bt();
        let files = crate::certs::box_files(&lab, 2);
        let mut text = box2_of_three(&lab, &secrets);
        text.push_str(&tls_toml(&files));
        let c = baton_config::parse(&text, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(c.tls.enabled);
        assert_eq!(c.tls.port, 443);
        assert_eq!(c.tls.certificate.as_ref(), Some(&files.certificate));
        assert_eq!(c.tls.key.as_ref(), Some(&files.key));
    }

    #[test]
    fn no_offload_writes_tx_offload_false_that_check_config_reads() {
        let (lab, secrets) = lab_bt();
        for (offload, backend) in [
            (false, Backend::Afpacket),
            (true, Backend::Afpacket),
            (false, Backend::Dpdk),
        ] {
            let text = box_toml(
                &lab,
                1,
                2,
                backend,
                SegmentMode::Shared,
                offload,
                BackFamily::V4,
                None,
                &secrets,
            );
            let c =
                baton_config::parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(c.dataplane.tx_offload, offload, "{text}");
        }
    }

    #[test]
    fn balance_threshold_and_steering_write_what_the_config_crate_reads() {
        let (lab, secrets) = lab_bt();
        let mut text = box_toml(
            &lab,
            2,
            3,
            Backend::Afpacket,
            SegmentMode::Shared,
            true,
            BackFamily::V4,
            Some(crate::steering::ANYCAST_ADDR),
            &secrets,
        );
        text.push_str(&balance_toml(Some(4)));
        let c = baton_config::parse(&text, "box2.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(c.balance.enabled, "{text}");
        assert_eq!(
            (c.balance.threshold, c.balance.rate, c.balance.interval_ms),
            (4, 100, 200)
        );
        assert_eq!(
            c.service.ips[2..],
            [
                std::net::IpAddr::V4(crate::steering::ANYCAST_ADDR),
                std::net::IpAddr::V6(crate::steering::ANYCAST_ADDR6)
            ],
            "the anycast addresses come after the box's own"
        );
        assert_eq!(balance_toml(None), "");
    }
}
