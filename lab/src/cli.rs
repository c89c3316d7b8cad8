//! The `baton lab` command line: clap arguments and their dispatch to
//! [`cluster`], [`impair`] and the hidden helpers (origin, delay line).
//! It prints for a user; it must not hold lab logic of its own.
use std::time::Duration;

use crate::error::Result;
use clap::{Args, Subcommand};

use crate::names::{Lab, Node, MAX_BOXES};
use crate::{boxconf, cluster, delay_line, impair, origin, steering, sys, BoxTable};

/// Arguments of `baton lab`.
#[derive(Args, Debug)]
pub struct LabArgs {
    /// Names the lab: its namespaces are PREFIX-lan, PREFIX-client,
    /// PREFIX-origin, PREFIX-boxN; its run state is /run/baton-lab/PREFIX/.
    #[arg(long, global = true, default_value = "baton")]
    pub prefix: String,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Build the topology, generate objects, start the origin and the
    /// boxes; returns once every box serves.
    Up(UpArgs),
    /// Show the boxes: pid, alive, heartbeat age, connections, checkpoints.
    Status,
    /// SIGKILL a box: a crash, no goodbye.
    Kill {
        /// boxN
        node: String,
    },
    /// Drain a box (a planned move): its connections go to the other boxes
    /// with exact final checkpoints and no detection delay; the box stays
    /// up, serving nothing, until it is killed or stopped.
    Drain {
        /// boxN
        node: String,
    },
    /// Take a live box out of the steering's hash or put it back (a lab
    /// made with `up --steering ecmp`), as an operator does for
    /// maintenance: its flows go to the other boxes, which forward each
    /// frame to the box that holds its connection.
    Switch {
        /// `out` or `in`.
        #[arg(value_parser = ["out", "in"])]
        action: String,
        /// boxN
        node: String,
    },
    /// Start a killed box again; it rejoins as a new member.
    Start {
        /// boxN
        node: String,
        /// Seconds to wait for it to be ready (default 30; 300 for a VM
        /// box, which boots first).
        #[arg(long)]
        ready_timeout: Option<u64>,
    },
    /// Run a command inside a node's namespace: client, origin, boxN or lan
    /// (`baton lab exec client -- curl http://198.18.0.11/1M.bin`); in a VM
    /// lab, boxN is the VM itself (over its command serial port; output
    /// merged, no stdin).
    Exec {
        /// client, origin, boxN or lan
        node: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Impair what the LAN delivers to NODE (client, origin or boxN's
    /// front port). Replaces the node's previous impairment.
    Impair {
        /// client, origin or boxN
        node: String,
        #[command(flatten)]
        opts: impair::ImpairOpts,
    },
    /// Stop every process of the lab, delete its namespaces, bridges,
    /// segment and run state. Safe to run twice.
    Down,
    /// Internal: the built-in origin server.
    #[command(hide = true)]
    ServeOrigin(origin::OriginArgs),
    /// Internal: the userspace delay line of `impair`.
    #[command(hide = true)]
    DelayLine(delay_line::DelayArgs),
    /// Internal: the health check of `up --steering ecmp`.
    #[command(hide = true)]
    Steer {
        /// Boxes of the lab.
        #[arg(long)]
        boxes: u8,
        /// Milliseconds a box's process must be gone before it is dropped.
        #[arg(long)]
        delay_ms: u64,
    },
}

/// How client flows reach the boxes (`lab up --steering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Steering {
    /// Each box's own service address, as always.
    None,
    /// One anycast address on every box, the LAN hashing each flow to one
    /// live box (`crate::steering`).
    Ecmp,
}

/// Arguments of `baton lab up`.
#[derive(Args, Debug)]
struct UpArgs {
    /// Number of boxes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=MAX_BOXES as i64))]
    boxes: u8,
    /// Origin server: the built-in one, or the system's nginx.
    #[arg(long, value_enum, default_value = "builtin")]
    origin: cluster::OriginKind,
    /// Dataplane backend written into the box configurations.
    #[arg(long, value_enum, default_value = "afpacket")]
    backend: boxconf::Backend,
    /// Checkpoint segment: one shared by all boxes (a /dev/shm file), or one
    /// per box with replication over the back LAN.
    #[arg(long, value_enum, default_value = "shared")]
    segment_mode: boxconf::SegmentMode,
    /// Extra client addresses (198.18.0.101.., then 198.18.1.1.. on the
    /// same LAN) for large connection counts.
    #[arg(long, default_value_t = 0)]
    client_addrs: u32,
    /// Boxes send every frame with full checksums (`dataplane.tx_offload =
    /// false`), for raw-socket testers and checksum-verifying captures.
    #[arg(long)]
    no_offload: bool,
    /// Seconds to wait for every box to be ready (default 30; 300 with
    /// `--vm`, whose boxes boot first).
    #[arg(long)]
    ready_timeout: Option<u64>,
    /// Boxes are QEMU VMs booted from the appliance image (scripts/image,
    /// target/image/): virtio NICs on the lab's LANs, the segment one host
    /// file that every VM maps as an ivshmem-plain PCI device. KVM when it
    /// works, else TCG (`BATON_LAB_ACCEL=kvm|tcg` decides).
    #[arg(long)]
    vm: bool,
    /// Make a lab CA (/run/baton-lab/PREFIX/ca.pem) and a certificate per
    /// box for lab.baton.test and every service IP, and enable `[tls]` in
    /// every box config: boxes serve HTTPS on 443 beside HTTP on 80.
    #[arg(long)]
    tls: bool,
    /// Run the back LAN over IPv6 too: boxes get 2001:2:0:19::(10+N)/64 on
    /// back0 and the origin 2001:2:0:19::2/64 beside their IPv4 addresses,
    /// and every box's members (heartbeats, replication, Raft) and admin
    /// API use the IPv6 ones. Origin fetches stay IPv4. Not with --vm.
    #[arg(long, conflicts_with = "vm")]
    back_v6: bool,
    /// `takeover.assignment` of every box: how a dead box's connections
    /// are split among the survivors (issue 20).
    #[arg(long, value_parser = ["round_robin", "least_loaded"])]
    assignment: Option<String>,
    /// `takeover.capacity` of every box: the connections a box is sized
    /// for, against which least_loaded weighs each survivor's spare room.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    capacity: Option<u64>,
    /// `checkpoint.slot_bytes` of every box: 320..=768 in steps of 64
    /// (the box refuses other sizes, and sizes below 768 with --tls).
    #[arg(long, value_parser = clap::value_parser!(u32).range(320..=768))]
    slot_bytes: Option<u32>,
    /// `ecmp`: every box also serves 198.18.0.10, and the LAN hashes each
    /// client flow to one live box like an L4 switch, dropping a box from
    /// the hash once its process has been gone for --steering-delay-ms.
    #[arg(long, value_enum, default_value = "none")]
    steering: Steering,
    /// The steering's health-check delay: how long a dead box keeps
    /// receiving its flows (longer than the boxes' own detection, as a
    /// switch's probe usually is).
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    steering_delay_ms: u64,
    /// Turn every box's balancer on (`[balance]`): connections move to
    /// less loaded boxes once the most and least loaded are more than N
    /// apart, 100 a second at most, looked at every 200 ms.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    balance_threshold: Option<u64>,
}

/// Seconds `up` and `start` wait for a box process to be ready.
const READY_S: u64 = 30;
/// The same for a VM box: it boots first (under TCG, tens of seconds).
const VM_READY_S: u64 = 300;

/// Parses a `boxN` argument.
fn parse_box(s: &str) -> Result<u8> {
    match Node::parse(s)? {
        Node::Box(n) => Ok(n),
        _ => crate::bail!("{s:?} is not a box: expected box1..box{MAX_BOXES}"),
    }
}

/// Runs a `baton lab` command.
pub fn run(args: LabArgs, table: BoxTable) -> Result<()> {
    let lab = Lab::new(&args.prefix)?;
    match args.command {
        // The hidden helpers run inside namespaces the lab made; they need
        // no checks of their own.
        LabCommand::ServeOrigin(a) => return Ok(origin::serve(a)?),
        LabCommand::DelayLine(a) => return delay_line::run(a),
        LabCommand::Steer { boxes, delay_ms } => {
            return steering::run_health_check(&lab, boxes, Duration::from_millis(delay_ms))
        }
        _ => {}
    }
    sys::require_root()?;
    match args.command {
        LabCommand::Up(a) => {
            sys::require_tools(sys::LAB_TOOLS)?;
            cluster::up(
                &lab,
                &cluster::UpPlan {
                    boxes: a.boxes,
                    origin: a.origin,
                    backend: a.backend,
                    segment_mode: a.segment_mode,
                    client_addrs: a.client_addrs,
                    tx_offload: !a.no_offload,
                    ready_timeout: Duration::from_secs(a.ready_timeout.unwrap_or(if a.vm {
                        VM_READY_S
                    } else {
                        READY_S
                    })),
                    tls: a.tls,
                    vm: a.vm,
                    back: if a.back_v6 {
                        boxconf::BackFamily::V6
                    } else {
                        boxconf::BackFamily::V4
                    },
                    assignment: a.assignment,
                    capacity: a.capacity,
                    slot_bytes: a.slot_bytes,
                    steering: (a.steering == Steering::Ecmp)
                        .then(|| Duration::from_millis(a.steering_delay_ms)),
                    balance_threshold: a.balance_threshold,
                },
            )
        }
        LabCommand::Status => status(&lab, table),
        LabCommand::Kill { node } => cluster::kill_box(&lab, parse_box(&node)?),
        LabCommand::Drain { node } => cluster::drain_box(&lab, parse_box(&node)?, table),
        LabCommand::Switch { action, node } => {
            let n = parse_box(&node)?;
            let state = cluster::LabState::load(&lab)?;
            if state.anycast.is_none() {
                crate::bail!("this lab has no switch: make it with `baton lab up --steering ecmp`");
            }
            if n > state.boxes {
                crate::bail!("the lab has {} boxes, no box{n}", state.boxes);
            }
            steering::set_out(&lab, n, action == "out")
        }
        LabCommand::Start {
            node,
            ready_timeout,
        } => {
            let vm = cluster::LabState::load(&lab)?.accel.is_some();
            let secs = ready_timeout.unwrap_or(if vm { VM_READY_S } else { READY_S });
            cluster::start_box(&lab, parse_box(&node)?, Duration::from_secs(secs))
        }
        LabCommand::Exec { node, cmd } => {
            let code = cluster::exec(&lab, Node::parse(&node)?, &cmd)?;
            std::process::exit(code)
        }
        LabCommand::Impair { node, opts } => {
            sys::require_tools(sys::LAB_TOOLS)?;
            impair::impair(&lab, Node::parse(&node)?, &opts)
        }
        LabCommand::Down => cluster::down(&lab),
        LabCommand::ServeOrigin(_) | LabCommand::DelayLine(_) | LabCommand::Steer { .. } => Ok(()),
    }
}

/// `lab status`: one line per box, from its pid file and the segment.
fn status(lab: &Lab, table: BoxTable) -> Result<()> {
    let state = cluster::LabState::load(lab)?;
    let origin_pid = sys::read_pid(&lab.file("origin.pid"));
    let origin_alive =
        origin_pid.is_some_and(|p| sys::pid_alive(p) && sys::pid_in_ns(p, &lab.ns(Node::Origin)));
    println!(
        "lab {}: {} boxes, origin {} ({})",
        lab.prefix(),
        state.boxes,
        state.origin,
        match (origin_pid, origin_alive) {
            (Some(p), true) => format!("pid {p}, alive"),
            (Some(p), false) => format!("pid {p}, dead"),
            (None, _) => "not started".into(),
        }
    );
    if let Some(a) = state.anycast {
        let dropped = std::fs::read_to_string(lab.file(steering::DROPPED_FILE)).unwrap_or_default();
        let dropped: Vec<&str> = dropped.lines().collect();
        println!(
            "steering ecmp: {a} and {} on every box; out of the hash: {}",
            steering::ANYCAST_ADDR6,
            if dropped.is_empty() {
                "none".to_string()
            } else {
                dropped.join(", ")
            }
        );
    }
    println!(
        "{:<6} {:>8} {:<6} {:>10} {:<9} {:>11} {:>11}",
        "box", "pid", "alive", "heartbeat", "state", "connections", "checkpoints"
    );
    for n in 1..=state.boxes {
        let pid = sys::read_pid(&lab.file(&format!("box{n}.pid")));
        let alive = cluster::box_pid(lab, n).is_some();
        // The segment may not exist yet (a box that never started) or be
        // unreadable; status still shows what the pid files know.
        let summary = table(&lab.file(&format!("box{n}.toml")))
            .ok()
            .and_then(|all| all.into_iter().find(|s| s.id == u16::from(n)));
        let (hb, st, conns, cps) = match &summary {
            Some(s) => (
                s.heartbeat_age_ms
                    .map_or("-".to_string(), |ms| format!("{ms} ms")),
                s.state.clone(),
                s.connections.to_string(),
                s.checkpoints.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<6} {:>8} {:<6} {:>10} {:<9} {:>11} {:>11}",
            format!("box{n}"),
            pid.map_or("-".to_string(), |p| p.to_string()),
            if alive { "yes" } else { "no" },
            hb,
            st,
            conns,
            cps
        );
    }
    for node in ["client", "origin"]
        .into_iter()
        .map(String::from)
        .chain((1..=state.boxes).map(|n| format!("box{n}")))
    {
        if let Some(pid) = sys::read_pid(&lab.file(&format!("delay-{node}.pid"))) {
            // A dead delay line cuts the node off: say so.
            let alive = sys::pid_alive(pid) && sys::pid_in_ns(pid, &lab.ns(Node::Lan));
            println!(
                "{node} is impaired through a delay line (pid {pid}, {})",
                if alive {
                    "alive"
                } else {
                    "DEAD: run `baton lab impair NODE --clear`"
                }
            );
        }
        if lab.file(&format!("impair-{node}.nft")).exists() {
            println!("{node} has a loss rule");
        }
    }
    Ok(())
}
