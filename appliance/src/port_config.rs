//! The port a box's `[dataplane]` table names, as the dataplane's
//! [`PortConfig`]: AF_PACKET on `dataplane.interface` (with
//! `dataplane.mac` and `dataplane.tx_offload`), AF_XDP on the same
//! interface (with `dataplane.mac`; it has no offload, so `tx_offload`
//! does not apply), or (cargo feature `dpdk`) DPDK from
//! `[dataplane.dpdk]`. The dataplane opens the port and starts the
//! workers; this file only translates the configuration.
//!
//! Without vdevs in the config, a DPDK box drives its `dataplane.interface`
//! through `net_af_packet` with `qpairs` = workers (the PMD spreads frames
//! over its queues with the kernel's fanout hash; the DPDK port steers each
//! frame to the worker that owns its flow, so a taken-over connection
//! reaches its owner: see `baton_dataplane::port::dpdk`). Each box's EAL
//! gets its own file prefix (the box name), so boxes on one host never
//! share runtime files or hugepages.

#[cfg(feature = "dpdk")]
use baton_config::DpdkConfig;
use baton_config::{Backend, Config};
use baton_dataplane::port::afpacket::AfPacketConfig;
use baton_dataplane::port::afxdp::AfXdpConfig;
#[cfg(feature = "dpdk")]
use baton_dataplane::port::dpdk::DpdkOptions;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_dataplane::PortConfig;
#[cfg(feature = "dpdk")]
use std::time::Duration;

/// Why a `[dataplane]` table names no port this build can open.
#[derive(Debug, thiserror::Error)]
pub enum PortConfigError {
    /// The config asks for DPDK and this build has none.
    #[error(
        "dataplane.backend = \"dpdk\": this build has no DPDK support (build with --features dpdk)"
    )]
    NoDpdk,
    /// More workers than a DPDK port has queue pairs.
    #[error("dataplane.workers = {0}: DPDK has at most 65535 queue pairs")]
    TooManyQueues(usize),
}

/// The port `config` names.
pub fn port_config(config: &Config) -> Result<PortConfig, PortConfigError> {
    let dp = &config.dataplane;
    match dp.backend {
        Backend::AfPacket => {
            let mut c = AfPacketConfig::new(&dp.interface);
            c.mac_override = dp.mac.map(|m| MacAddr(m.0));
            c.tx_offload = dp.tx_offload;
            Ok(PortConfig::AfPacket(c))
        }
        Backend::AfXdp => {
            let mut c = AfXdpConfig::new(&dp.interface);
            c.mac_override = dp.mac.map(|m| MacAddr(m.0));
            Ok(PortConfig::AfXdp(c))
        }
        #[cfg(feature = "dpdk")]
        Backend::Dpdk => Ok(PortConfig::Dpdk(dpdk_options(config)?)),
        #[cfg(not(feature = "dpdk"))]
        Backend::Dpdk => Err(PortConfigError::NoDpdk),
    }
}

/// The EAL file prefix of a box: its name, cut to the characters a file
/// name and the EAL's argument parser take as they are (the EAL builds
/// paths under /var/run/dpdk from it).
#[cfg(feature = "dpdk")]
fn file_prefix(config: &Config) -> String {
    let name: String = config
        .node
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if name.trim_matches('_').is_empty() {
        format!("box{}", config.node.id)
    } else {
        name
    }
}

/// The DPDK options a config implies: `[dataplane.dpdk]` (defaults when the
/// table is absent), one queue pair per worker, the default vdev
/// `net_af_packet0,iface=<interface>,qpairs=<workers>`.
#[cfg(feature = "dpdk")]
fn dpdk_options(config: &Config) -> Result<DpdkOptions, PortConfigError> {
    let dp = &config.dataplane;
    let d = dp.dpdk.clone().unwrap_or_default();
    let queues =
        u16::try_from(dp.workers).map_err(|_| PortConfigError::TooManyQueues(dp.workers))?;
    let mut o = DpdkOptions::af_packet(&dp.interface, queues);
    let DpdkConfig {
        eal_args,
        hugepages,
        vdevs,
        memory_mb,
        mbufs,
        main_lcore,
        idle_sleep_us,
        log_level,
    } = d;
    if !vdevs.is_empty() {
        o.vdevs = vdevs;
    }
    o.eal_extra = eal_args;
    o.hugepages = hugepages;
    o.memory_mb = memory_mb;
    o.mbufs = mbufs;
    if let Some(lcore) = main_lcore {
        o.main_lcore = lcore;
    }
    o.idle_sleep = Duration::from_micros(u64::from(idle_sleep_us));
    o.log_level = log_level;
    o.file_prefix = file_prefix(config);
    // A vdev takes its device's MAC: dataplane.mac cannot override it
    // (give the interface that address instead, as the lab does); the
    // port warns when they differ.
    o.expected_mac = config.dataplane.mac.map(|m| MacAddr(m.0));
    Ok(o)
}

#[cfg(all(test, feature = "dpdk"))]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = baton_config::EXAMPLE
            .replace("backend = \"afpacket\"", "backend = \"dpdk\"")
            .replace(baton_config::EXAMPLE_KEY, &"5a".repeat(32))
            .replace(baton_config::EXAMPLE_TOKEN, "a-secret-token");
        let text = match text.find("[dataplane.dpdk]") {
            // Replace the example's DPDK table by the test's.
            Some(start) => {
                let end = text[start..]
                    .find("\n[checkpoint]")
                    .map_or(text.len(), |e| start + e);
                format!("{}{extra}\n{}", &text[..start], &text[end..])
            }
            None => panic!("the example has a [dataplane.dpdk] table"),
        };
        baton_config::parse(&text, "box.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn without_vdevs_the_box_drives_its_interface_with_a_queue_pair_per_worker() {
        let c = config("");
        let o = dpdk_options(&c).expect("options");
        assert_eq!(
            o.vdevs,
            vec!["net_af_packet0,iface=front0,qpairs=2".to_string()]
        );
        assert_eq!(o.queues, 2);
        assert!(!o.hugepages);
        let args = o.eal_args();
        assert!(args.contains(&"--no-huge".to_string()), "{args:?}");
        assert!(args.contains(&"--file-prefix=box1".to_string()), "{args:?}");
        assert!(
            args.contains(&"--vdev=net_af_packet0,iface=front0,qpairs=2".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"--log-level=notice".to_string()), "{args:?}");
        assert_eq!(o.idle_sleep, Duration::from_millis(1));
    }

    #[test]
    fn dpdk_table_keys_become_eal_arguments() {
        let c = config(
            "[dataplane.dpdk]\nhugepages = true\nmemory_mb = 512\nmbufs = 16383\nmain_lcore = 1\n\
             idle_sleep_us = 50\nlog_level = \"debug\"\nvdevs = [\"net_af_packet1,iface=eth7,qpairs=2\"]\n\
             eal_args = [\"-d\", \"/opt/pmd.so\"]\n",
        );
        let o = dpdk_options(&c).expect("options");
        assert_eq!(o.mbufs, 16383);
        assert_eq!(o.idle_sleep, Duration::from_micros(50));
        assert_eq!(o.device_name(), Some("net_af_packet1"));
        let args = o.eal_args();
        for want in [
            "-l",
            "1",
            "--in-memory",
            "-m512",
            "--log-level=debug",
            "--vdev=net_af_packet1,iface=eth7,qpairs=2",
        ] {
            assert!(
                args.contains(&want.to_string()),
                "{want} missing from {args:?}"
            );
        }
        assert!(!args.contains(&"--no-huge".to_string()), "{args:?}");
        assert_eq!(
            &args[args.len() - 2..],
            &["-d".to_string(), "/opt/pmd.so".to_string()],
            "extra arguments come last"
        );
    }

    #[test]
    fn file_prefix_is_the_box_name_made_safe_for_a_path() {
        let mut c = config("");
        c.node.name = "box 1/../x".into();
        assert_eq!(file_prefix(&c), "box_1____x");
        c.node.name = "///".into();
        assert_eq!(
            file_prefix(&c),
            "box1",
            "a name with nothing usable falls back to the id"
        );
    }
}

#[cfg(test)]
mod afpacket_tests {
    use super::*;

    fn afpacket(extra: &str) -> AfPacketConfig {
        let text = baton_config::EXAMPLE
            .replace(baton_config::EXAMPLE_KEY, &"5a".repeat(32))
            .replace(baton_config::EXAMPLE_TOKEN, "a-secret-token")
            .replace("tx_offload = true\n", extra);
        let c = baton_config::parse(&text, "box.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        match port_config(&c) {
            Ok(PortConfig::AfPacket(a)) => a,
            other => panic!("expected an AF_PACKET port, got {other:?}"),
        }
    }

    #[test]
    fn afxdp_backend_opens_an_af_xdp_port_on_the_interface_with_the_mac() {
        let text = baton_config::EXAMPLE
            .replace(baton_config::EXAMPLE_KEY, &"5a".repeat(32))
            .replace(baton_config::EXAMPLE_TOKEN, "a-secret-token")
            .replace("backend = \"afpacket\"", "backend = \"afxdp\"")
            .replace("workers = 2", "workers = 1")
            .replace("cores = [0, 1]", "cores = [0]");
        let c = baton_config::parse(&text, "box.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        match port_config(&c) {
            Ok(PortConfig::AfXdp(x)) => {
                assert_eq!(x.interface, "front0");
                assert_eq!(
                    x.mac_override,
                    Some(MacAddr([0x02, 0xba, 0x70, 0, 0, 1])),
                    "dataplane.mac"
                );
            }
            other => panic!("expected an AF_XDP port, got {other:?}"),
        }
    }

    #[test]
    fn tx_offload_reaches_the_afpacket_port_and_defaults_to_on() {
        assert!(afpacket("tx_offload = true\n").tx_offload);
        assert!(afpacket("").tx_offload, "absent key: today's behaviour");
        let off = afpacket("tx_offload = false\n");
        assert!(!off.tx_offload);
        assert_eq!(off.interface, "front0");
        assert!(off.mac_override.is_some());
    }
}
