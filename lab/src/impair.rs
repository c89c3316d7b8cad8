//! `lab impair`: spoils what the LAN delivers to one node, without netem
//! (LAB.md, "Impairment without netem").
//!
//! Everything acts on the node's bridge-side veth in the lan namespace
//! (`client`, `origin`, `boxNf`), whose egress is what the node receives:
//! - loss: an nftables netdev table with an egress chain on that device,
//!   `numgen random mod 10000 < P*100 drop`;
//! - rate: a tbf qdisc on that device;
//! - delay, jitter, reordering, duplication: the port is taken off its
//!   bridge, a new veth pair `<port>B`/`<port>R` joins the bridge in its
//!   place, and a `baton lab delay-line` process relays frames between
//!   `<port>R` and the port, holding those toward the node.
//!
//! The delay line sends through the port, so loss and rate still apply
//! after it. Each `impair` replaces the node's previous impairment;
//! `--clear` restores the original wiring.
//!
//! Loss counts frames as the kernel hands them to the port. What boxes and
//! the client send is wire-sized (the dataplane sends single frames, the
//! client's offloads are off), but a kernel sender with TSO on the back LAN
//! may hand over 64 KiB GSO frames, each lost or kept as one.
//!
//! It must not know the boxes or the origin: only the node's port.
use std::fs;
use std::time::Duration;

use crate::bail;
use crate::error::{Context, Result};
use tracing::info;

use crate::names::{Lab, Node};
use crate::sys;

/// What to do to the frames a node receives.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ImpairOpts {
    /// Percent of frames lost (0..=100).
    #[arg(long)]
    pub loss: Option<f64>,
    /// Percent of frames delivered twice (0..=100).
    #[arg(long)]
    pub duplicate: Option<f64>,
    /// Added one-way delay in milliseconds.
    #[arg(long)]
    pub delay: Option<f64>,
    /// Uniform ± jitter around the delay, in milliseconds (reorders frames
    /// when larger than their spacing, as on a real path).
    #[arg(long)]
    pub jitter: Option<f64>,
    /// Percent of frames that skip the delay and overtake earlier ones.
    #[arg(long)]
    pub reorder: Option<f64>,
    /// Rate limit in Mbit/s.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Remove every impairment of the node.
    #[arg(long, conflicts_with_all = ["loss", "duplicate", "delay", "jitter", "reorder", "rate"])]
    pub clear: bool,
    /// Impair what the back LAN delivers to a box (replication, heartbeats,
    /// origin answers) instead of its front port; loss and rate only.
    #[arg(long, conflicts_with_all = ["duplicate", "delay", "jitter", "reorder"])]
    pub back: bool,
}

impl ImpairOpts {
    fn check(&self) -> Result<()> {
        for (name, v) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if let Some(v) = v {
                if !(0.0..=100.0).contains(&v) {
                    bail!("--{name} {v} is not a percentage (0..=100)");
                }
            }
        }
        for (name, v) in [("delay", self.delay), ("jitter", self.jitter)] {
            if let Some(v) = v {
                if !(0.0..=60_000.0).contains(&v) {
                    bail!("--{name} {v} must be 0..=60000 ms");
                }
            }
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r <= 100_000.0) {
                bail!("--rate {r} must be above 0 and at most 100000 Mbit/s");
            }
        }
        Ok(())
    }

    fn needs_delay_line(&self) -> bool {
        [self.delay, self.jitter, self.reorder, self.duplicate]
            .iter()
            .any(|v| v.is_some_and(|v| v > 0.0))
    }

    fn is_empty(&self) -> bool {
        !self.needs_delay_line() && self.loss.unwrap_or(0.0) <= 0.0 && self.rate.is_none()
    }
}

/// The nftables table that drops `permyriad`/10000 of what leaves `port`.
fn loss_rules(port: &str, permyriad: u32) -> String {
    format!(
        "table netdev {table} {{\n\
         \x20   chain egress {{\n\
         \x20       type filter hook egress device \"{port}\" priority 0; policy accept;\n\
         \x20       numgen random mod 10000 < {permyriad} drop\n\
         \x20   }}\n\
         }}\n",
        table = nft_table(port)
    )
}

fn nft_table(port: &str) -> String {
    format!("impair_{port}")
}

/// The bridge a node's port belongs to.
fn bridge_of(node: Node) -> &'static str {
    match node {
        Node::Origin => "back",
        _ => "front",
    }
}

/// tbf parameters for `mbit`: the bucket holds at least one 64 KiB GSO
/// frame (tbf splits larger ones) and 10 ms worth of traffic.
fn tbf_args(mbit: f64) -> (String, String) {
    let bytes_per_s = mbit * 1e6 / 8.0;
    let burst = (bytes_per_s / 100.0).max(65_536.0 + 1514.0) as u64;
    (
        format!("{}kbit", (mbit * 1000.0).round() as u64),
        format!("{burst}"),
    )
}

/// `lab impair NODE …` or `--clear`.
pub fn impair(lab: &Lab, node: Node, opts: &ImpairOpts) -> Result<()> {
    opts.check()?;
    let port = match (node, opts.back) {
        (Node::Box(n), true) => super::names::box_back_port(n),
        (_, true) => bail!("--back applies to boxes only (boxN)"),
        _ => node
            .lan_port()
            .context("the lan namespace itself cannot be impaired: name client, origin or boxN")?,
    };
    let lan = lab.ns(Node::Lan);
    if !sys::netns_list()?.contains(&lan) {
        bail!("no namespace {lan}: is the lab {:?} up?", lab.prefix());
    }
    if let Node::Box(n) = node {
        let boxes = super::cluster::LabState::load(lab)?.boxes;
        if n > boxes {
            bail!("lab {:?} has boxes 1..={boxes}, not box{n}", lab.prefix());
        }
    }
    clear(lab, node, &port)?;
    if opts.clear || opts.is_empty() {
        info!("{} is no longer impaired", node.name());
        return Ok(());
    }
    let result = apply(lab, node, &port, opts);
    if result.is_err() {
        let _ = clear(lab, node, &port);
    }
    result
}

fn apply(lab: &Lab, node: Node, port: &str, opts: &ImpairOpts) -> Result<()> {
    let lan = lab.ns(Node::Lan);
    if let Some(loss) = opts.loss.filter(|l| *l > 0.0) {
        let rules = lab.file(&format!("impair-{}.nft", node.name()));
        fs::write(&rules, loss_rules(port, (loss * 100.0).round() as u32))?;
        sys::exec_in(&lan, "nft", &["-f", &rules.display().to_string()])?;
        info!("{}: {loss} % loss", node.name());
    }
    if let Some(mbit) = opts.rate {
        let (rate, burst) = tbf_args(mbit);
        sys::exec_in(
            &lan,
            "tc",
            &[
                "qdisc", "replace", "dev", port, "root", "tbf", "rate", &rate, "burst", &burst,
                "latency", "100ms",
            ],
        )?;
        info!("{}: rate {mbit} Mbit/s", node.name());
    }
    if opts.needs_delay_line() {
        start_delay_line(lab, node, port, opts)?;
    }
    Ok(())
}

fn start_delay_line(lab: &Lab, node: Node, port: &str, opts: &ImpairOpts) -> Result<()> {
    let lan = lab.ns(Node::Lan);
    let (b, r) = (format!("{port}B"), format!("{port}R"));
    sys::ip_in(
        &lan,
        &[
            "link", "add", "name", &b, "type", "veth", "peer", "name", &r,
        ],
    )?;
    // Once off the bridge, the port and the relay end are plain devices of
    // the lan namespace: its kernel must not answer ARP on them (it would
    // for an address a test put on a bridge, Linux being a weak host).
    sys::sysctls_in(
        &lan,
        &[
            (format!("net.ipv4.conf.{port}.arp_ignore"), "8".into()),
            (format!("net.ipv4.conf.{r}.arp_ignore"), "8".into()),
        ],
    )?;
    sys::ip_in(&lan, &["link", "set", "dev", &r, "up"])?;
    sys::ip_in(&lan, &["link", "set", "dev", &b, "up"])?;

    let ready = lab.file(&format!("delay-{}.ready", node.name()));
    let _ = fs::remove_file(&ready);
    let log = lab.file(&format!("delay-{}.log", node.name()));
    let mut args = vec![
        "lab".to_string(),
        "delay-line".into(),
        "--node-dev".into(),
        port.to_string(),
        "--lan-dev".into(),
        r.clone(),
        "--ready-file".into(),
        ready.display().to_string(),
    ];
    for (flag, v) in [
        ("--delay", opts.delay),
        ("--jitter", opts.jitter),
        ("--reorder", opts.reorder),
        ("--duplicate", opts.duplicate),
    ] {
        if let Some(v) = v {
            args.push(flag.into());
            args.push(v.to_string());
        }
    }
    let exe = std::env::current_exe().context("cannot find the baton binary")?;
    let pid = sys::spawn_daemon(
        &lan,
        &exe,
        &args,
        &log,
        &lab.file(&format!("delay-{}.pid", node.name())),
    )? as i32;
    if !sys::wait_until(Duration::from_secs(5), || {
        ready.exists() || !sys::pid_alive(pid)
    }) || !ready.exists()
    {
        bail!(
            "the delay line did not start; its log says:\n{}",
            sys::tail(&log, 2000)
        );
    }
    // Swap the port for the relay on the bridge: from now on the bridge
    // reaches the node only through the delay line.
    sys::ip_in(&lan, &["link", "set", "dev", port, "nomaster"])?;
    sys::ip_in(&lan, &["link", "set", "dev", &b, "master", bridge_of(node)])?;
    info!(
        "{}: {} (delay line pid {pid})",
        node.name(),
        describe_delay_line(opts)
    );
    Ok(())
}

/// "delay 20 ms ± 2 ms, reorder 1 %" for the log.
fn describe_delay_line(opts: &ImpairOpts) -> String {
    let mut parts = Vec::new();
    if let Some(d) = opts.delay {
        parts.push(format!("delay {d} ms"));
    }
    if let Some(j) = opts.jitter {
        parts.push(format!("jitter ± {j} ms"));
    }
    if let Some(r) = opts.reorder {
        parts.push(format!("reorder {r} %"));
    }
    if let Some(d) = opts.duplicate {
        parts.push(format!("duplicate {d} %"));
    }
    parts.join(", ")
}

/// Removes whatever impairs `node`; idempotent.
fn clear(lab: &Lab, node: Node, port: &str) -> Result<()> {
    let lan = lab.ns(Node::Lan);
    let pid_file = lab.file(&format!("delay-{}.pid", node.name()));
    if let Some(pid) = sys::read_pid(&pid_file) {
        if sys::pid_alive(pid) && sys::pid_in_ns(pid, &lan) {
            sys::signal(pid, libc::SIGKILL);
            sys::wait_until(Duration::from_secs(5), || !sys::pid_alive(pid));
        }
    }
    for suffix in ["pid", "ready"] {
        let _ = fs::remove_file(lab.file(&format!("delay-{}.{suffix}", node.name())));
    }
    let b = format!("{port}B");
    if sys::run_quiet("ip", &["-n", &lan, "link", "show", "dev", &b]) {
        sys::ip_in(
            &lan,
            &["link", "set", "dev", port, "master", bridge_of(node)],
        )?;
        // Deleting one end of a veth pair deletes both.
        sys::ip_in(&lan, &["link", "del", "dev", &b])?;
    }
    sys::run_quiet(
        "ip",
        &[
            "netns",
            "exec",
            &lan,
            "nft",
            "delete",
            "table",
            "netdev",
            &nft_table(port),
        ],
    );
    sys::run_quiet(
        "ip",
        &[
            "netns", "exec", &lan, "tc", "qdisc", "del", "dev", port, "root",
        ],
    );
    let _ = fs::remove_file(lab.file(&format!("impair-{}.nft", node.name())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_percent_loss_drops_500_in_10000() {
        let rules = loss_rules("client", 500);
        assert!(rules.contains("table netdev impair_client"));
        assert!(rules.contains("hook egress device \"client\""));
        assert!(rules.contains("numgen random mod 10000 < 500 drop"));
    }

    #[test]
    fn tbf_bucket_holds_a_gso_frame_even_at_low_rates() {
        let (rate, burst) = tbf_args(1.0);
        assert_eq!(rate, "1000kbit");
        assert!(burst.parse::<u64>().unwrap() >= 65_536);
        let (_, burst) = tbf_args(10_000.0);
        assert_eq!(burst.parse::<u64>().unwrap(), 12_500_000);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let bad = ImpairOpts {
            loss: Some(120.0),
            ..Default::default()
        };
        assert!(bad.check().is_err());
        let bad = ImpairOpts {
            rate: Some(0.0),
            ..Default::default()
        };
        assert!(bad.check().is_err());
        let good = ImpairOpts {
            loss: Some(5.0),
            delay: Some(20.0),
            ..Default::default()
        };
        assert!(good.check().is_ok());
        assert!(good.needs_delay_line());
    }

    #[test]
    fn loss_alone_needs_no_delay_line() {
        let o = ImpairOpts {
            loss: Some(5.0),
            ..Default::default()
        };
        assert!(!o.needs_delay_line());
        assert!(!o.is_empty());
        assert!(ImpairOpts::default().is_empty());
    }
}
