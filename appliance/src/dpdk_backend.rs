//! The DPDK backend of `baton run` (cargo feature `dpdk`): turns the
//! `[dataplane]` and `[dataplane.dpdk]` configuration into the dataplane's
//! [`DpdkOptions`], starts the EAL, opens one queue pair per worker on the
//! first vdev and starts the workers on them
//! ([`baton_dataplane::app::start_with_ports`]).
//!
//! Without vdevs in the config, the box drives its `dataplane.interface`
//! through `net_af_packet` with `qpairs` = workers (the PMD spreads frames
//! over its queues with the kernel's fanout hash; the DPDK port steers each
//! frame to the worker that owns its flow, so a taken-over connection
//! reaches its owner: see `baton_dataplane::port::dpdk`). Each box's EAL
//! gets its own file prefix (the box name), so boxes on one host never
//! share runtime files or hugepages.
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use baton_config::{Config, DpdkConfig};
use baton_dataplane::app::{start_with_ports, App};
use baton_dataplane::port::dpdk::{DpdkOptions, DpdkPort};
use baton_dataplane::{DataplaneHandle, DataplaneOptions};
use tracing::{info, warn};

/// The EAL file prefix of a box: its name, cut to the characters a file
/// name and the EAL's argument parser take as they are (the EAL builds
/// paths under /var/run/dpdk from it).
pub fn file_prefix(config: &Config) -> String {
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
pub fn dpdk_options(config: &Config) -> Result<DpdkOptions> {
    let dp = &config.dataplane;
    let d = dp.dpdk.clone().unwrap_or_default();
    let queues = u16::try_from(dp.workers).map_err(|_| {
        anyhow!(
            "dataplane.workers = {}: DPDK has at most 65535 queue pairs",
            dp.workers
        )
    })?;
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
    Ok(o)
}

/// Starts the EAL and the workers on DPDK. EAL and device errors come back
/// with what went wrong and what to do (no memory, bad vdev, queues).
pub fn start<A, F>(
    config: &Config,
    opts: DataplaneOptions,
    app_factory: F,
) -> Result<DataplaneHandle>
where
    A: App,
    F: Fn(usize) -> A + Send + Sync + 'static,
{
    let dpdk = dpdk_options(config)?;
    info!(eal_args = ?dpdk.eal_args(), "starting the DPDK EAL");
    let ports = DpdkPort::open_with(&dpdk).with_context(|| {
        format!(
            "DPDK backend (vdev {}, {})",
            dpdk.vdevs.first().map(String::as_str).unwrap_or("none"),
            if dpdk.hugepages {
                "hugepages"
            } else {
                "no hugepages"
            }
        )
    })?;
    if let (Some(want), Some(port)) = (config.dataplane.mac, ports.first()) {
        // A vdev takes its device's MAC: dataplane.mac cannot override it
        // (give the interface that address instead, as the lab does).
        let have = baton_dataplane::port::Port::mac(port);
        if have.0 != want.0 {
            warn!(configured = %want, device = %have, "dataplane.mac differs from the DPDK device's MAC; the device's is used");
        }
    }
    start_with_ports(opts, ports, app_factory).context("starting the workers on DPDK")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = baton_config::EXAMPLE.replace("backend = \"afpacket\"", "backend = \"dpdk\"");
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
