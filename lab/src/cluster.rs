//! Building, running and removing one lab: the namespaces and bridges of
//! LAB.md's topology, the origin, and the box processes.
//! It must not know a box's insides: boxes are `baton run` processes, and
//! their table is read through the [`BoxTable`](crate::BoxTable) handed in.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bail;
use crate::error::{Context, Result};
use tracing::{info, warn};

use crate::boxconf::{
    balance_toml, box_toml, takeover_toml, tls_toml, with_slot_bytes, BackFamily, Backend,
    ClusterSecrets, SegmentMode,
};
use crate::names::{
    box_back_addr, box_back_port, box_front_port, box_mac, client_extra_addr, Lab, Node,
    CLIENT_ADDR, CLIENT_ADDR6, ORIGIN_ADDR, ORIGIN_ADDR6,
};
use crate::sys::{self, ip_in};
use crate::{certs, objects, steering, vm};

/// Which origin server `lab up` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OriginKind {
    /// `baton lab serve-origin`, built in.
    Builtin,
    /// nginx from the system, with a generated configuration.
    Nginx,
}

/// What `lab up` builds.
#[derive(Debug, Clone)]
pub struct UpPlan {
    /// Number of boxes, 1..=9.
    pub boxes: u8,
    /// Origin server.
    pub origin: OriginKind,
    /// Dataplane backend written into the box configs.
    pub backend: Backend,
    /// One shared segment, or one per box replicated over the back LAN.
    pub segment_mode: SegmentMode,
    /// Extra client addresses beyond 198.18.0.100.
    pub client_addrs: u32,
    /// `dataplane.tx_offload` of every box (`lab up --no-offload`: false).
    pub tx_offload: bool,
    /// How long to wait for every box to create its ready file.
    pub ready_timeout: Duration,
    /// `lab up --tls`: a lab CA, a certificate per box, `[tls]` enabled.
    pub tls: bool,
    /// `lab up --vm`: boxes are QEMU VMs (see [`crate::vm`]).
    pub vm: bool,
    /// `lab up --back-v6`: the back LAN is dual-stack and the boxes'
    /// members, replication, Raft and admin API use its IPv6 addresses.
    pub back: BackFamily,
    /// `lab up --assignment`: every box's `takeover.assignment`.
    pub assignment: Option<String>,
    /// `lab up --capacity`: every box's `takeover.capacity`.
    pub capacity: Option<u64>,
    /// `lab up --slot-bytes`: every box's `checkpoint.slot_bytes`.
    pub slot_bytes: Option<u32>,
    /// `lab up --steering ecmp`: the anycast address on every box and the
    /// LAN's flow hashing, with this health-check delay
    /// ([`crate::steering`]).
    pub steering: Option<Duration>,
    /// `lab up --balance-threshold N`: every box's balancer on
    /// ([`balance_toml`]).
    pub balance_threshold: Option<u64>,
}

/// What a running lab remembers about how it was built (`lab.state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabState {
    /// Number of boxes.
    pub boxes: u8,
    /// `builtin` or `nginx`.
    pub origin: String,
    /// VM boxes (`lab up --vm`): the accelerator their QEMUs use.
    pub accel: Option<vm::Accel>,
    /// `lab up --steering ecmp`: the anycast address every box serves.
    pub anycast: Option<std::net::Ipv4Addr>,
}

impl LabState {
    fn render(&self) -> String {
        let mut s = format!("boxes={}\norigin={}\n", self.boxes, self.origin);
        if let Some(a) = self.accel {
            s.push_str(&format!("vm={}\n", a.as_str()));
        }
        if let Some(a) = self.anycast {
            s.push_str(&format!("anycast={a}\n"));
        }
        s
    }

    fn parse(text: &str) -> Option<LabState> {
        let mut boxes = None;
        let mut origin = None;
        let mut accel = None;
        let mut anycast = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("vm", v)) => accel = vm::Accel::parse(v),
                Some(("anycast", v)) => anycast = v.trim().parse().ok(),
                Some(("boxes", v)) => boxes = v.trim().parse().ok(),
                Some(("origin", v)) => origin = Some(v.trim().to_string()),
                _ => {}
            }
        }
        Some(LabState {
            boxes: boxes?,
            origin: origin?,
            accel,
            anycast,
        })
    }

    /// Reads the state of lab `lab`; fails with a clear message if there is
    /// no such lab.
    pub fn load(lab: &Lab) -> Result<LabState> {
        let path = lab.file("lab.state");
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "no lab with prefix {:?} ({} is missing): run `baton lab up --prefix {}`",
                lab.prefix(),
                path.display(),
                lab.prefix()
            )
        })?;
        LabState::parse(&text).with_context(|| format!("{} is damaged", path.display()))
    }
}

/// Whether anything of lab `lab` exists: its run folder or a namespace.
pub fn exists(lab: &Lab) -> Result<bool> {
    Ok(lab.dir().exists() || sys::netns_list()?.iter().any(|ns| lab.owns_ns(ns)))
}

/// `lab up`: builds everything, or tears down what it made and fails.
pub fn up(lab: &Lab, plan: &UpPlan) -> Result<()> {
    if exists(lab)? {
        bail!(
            "a lab with prefix {:?} already exists: use it, or remove it with `baton lab down --prefix {}`",
            lab.prefix(),
            lab.prefix()
        );
    }
    if plan.vm {
        vm::supports_backend(plan.backend)?;
    }
    let started = std::time::Instant::now();
    let result = build(lab, plan);
    if let Err(e) = result {
        warn!("lab up failed, removing what it made: {e:#}");
        if let Err(d) = down(lab) {
            warn!("teardown after failure: {d:#}");
        }
        return Err(e);
    }
    info!(
        "lab {:?} is up: {} boxes in {:.1} s",
        lab.prefix(),
        plan.boxes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn build(lab: &Lab, plan: &UpPlan) -> Result<()> {
    fs::create_dir_all(lab.dir())
        .with_context(|| format!("cannot create {}", lab.dir().display()))?;
    let accel = if plan.vm {
        let image = vm::find_image()?;
        Some(vm::probe_accel(lab, &image)?)
    } else {
        None
    };
    let state = LabState {
        accel,
        anycast: plan.steering.map(|_| steering::ANYCAST_ADDR),
        boxes: plan.boxes,
        origin: match plan.origin {
            OriginKind::Builtin => "builtin".into(),
            OriginKind::Nginx => "nginx".into(),
        },
    };
    fs::write(lab.file("lab.state"), state.render())?;

    build_topology(lab, plan)?;
    if plan.steering.is_some() {
        steering::install(lab, plan.boxes)?;
    }

    info!("installing objects into {}", lab.objects_dir().display());
    objects::install(
        Path::new(objects::CACHE_DIR),
        &lab.objects_dir(),
        &lab.file("objects.sha256"),
    )?;

    let secrets = ClusterSecrets {
        key: sys::random_hex(32)?,
        token: sys::random_hex(16)?,
    };
    let tls = if plan.tls {
        let files = certs::make(lab, plan.boxes)?;
        info!(
            "TLS: lab CA in {}, a certificate per box for {}",
            certs::ca_path(lab).display(),
            certs::box_sans(plan.boxes).join(", ")
        );
        files
    } else {
        Vec::new()
    };
    for n in 1..=plan.boxes {
        let mut text = box_toml(
            lab,
            n,
            plan.boxes,
            plan.backend,
            plan.segment_mode,
            plan.tx_offload,
            plan.back,
            plan.steering.map(|_| steering::ANYCAST_ADDR),
            &secrets,
        );
        if let Some(files) = tls.get(usize::from(n - 1)) {
            text.push_str(&tls_toml(files));
        }
        text.push_str(&takeover_toml(plan.assignment.as_deref(), plan.capacity));
        if let Some(bytes) = plan.slot_bytes {
            text = with_slot_bytes(&text, bytes);
        }
        text.push_str(&balance_toml(plan.balance_threshold));
        if plan.vm {
            text = vm::host_toml(&text);
            vm::write_config_disk(lab, n, &vm::guest_toml(&text))?;
        }
        write_private(&lab.file(&format!("box{n}.toml")), &text)?;
    }
    // No lab of this prefix exists (checked above), so a segment of that
    // name is a leftover of a crashed lab: boxes must not adopt its state.
    for seg in lab.segment_files() {
        info!("removing stale segment {}", seg.display());
        fs::remove_file(&seg).with_context(|| format!("cannot remove {}", seg.display()))?;
    }

    if plan.vm {
        vm::create_segment(lab)?;
    }

    start_origin(lab, plan.origin)?;
    for n in 1..=plan.boxes {
        match accel {
            Some(a) => vm::spawn_vm(lab, n, a).map(|_| ())?,
            None => spawn_box(lab, n).map(|_| ())?,
        }
    }
    wait_boxes_ready(
        lab,
        &(1..=plan.boxes).collect::<Vec<_>>(),
        plan.ready_timeout,
    )?;
    if let Some(delay) = plan.steering {
        steering::start_health_check(lab, plan.boxes, delay)?;
    }
    Ok(())
}

/// Writes a file only root may read: box configs hold the cluster key and
/// the admin token.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Namespaces, bridges, veths, addresses, sysctls and offloads.
fn build_topology(lab: &Lab, plan: &UpPlan) -> Result<()> {
    let lan = lab.ns(Node::Lan);
    let mut nodes = vec![Node::Lan, Node::Client, Node::Origin];
    nodes.extend((1..=plan.boxes).map(Node::Box));
    info!(
        "creating namespaces {}",
        nodes
            .iter()
            .map(|n| lab.ns(*n))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for node in &nodes {
        let ns = lab.ns(*node);
        sys::run("ip", &["netns", "add", &ns])?;
        // IPv6 off before any interface appears, so none gets a link-local
        // address or sends router solicitations: the LANs stay quiet.
        sys::sysctls_in(
            &ns,
            &[
                ("net.ipv6.conf.all.disable_ipv6".into(), "1".into()),
                ("net.ipv6.conf.default.disable_ipv6".into(), "1".into()),
            ],
        )?;
        ip_in(&ns, &["link", "set", "dev", "lo", "up"])?;
    }

    // A host with br_netfilter loaded (a container host, most often) sends
    // every bridged frame through the IP hooks too: 1-5 % of a server's CPU
    // a request in this lab (BENCHMARKS.md), charged to the box or nginx
    // that sent the frame. The lab's own rules are bridge and netdev
    // tables, which need none of it.
    if std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        let off = |family: &str| (format!("net.bridge.bridge-nf-call-{family}"), "0".into());
        sys::sysctls_in(&lan, &[off("iptables"), off("ip6tables"), off("arptables")])?;
    }

    // The bridges get fixed MACs: a bridge otherwise takes the lowest MAC
    // of its ports, which changes when `lab impair` rewires a port.
    for (bridge, mac) in [
        ("front", "02:ba:70:ff:00:01"),
        ("back", "02:ba:70:ff:00:02"),
    ] {
        ip_in(
            &lan,
            &[
                "link", "add", "name", bridge, "address", mac, "type", "bridge",
            ],
        )?;
        // No MLD snooping: the dataplane joins no group by MLD, so a
        // snooping bridge that learned the client's groups must still
        // flood solicitations for the boxes' addresses to every port.
        ip_in(
            &lan,
            &[
                "link",
                "set",
                "dev",
                bridge,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        ip_in(&lan, &["link", "set", "dev", bridge, "up"])?;
    }

    let veth = |port: &str, bridge: &str, node: Node, dev: &str| -> Result<()> {
        let ns = lab.ns(node);
        ip_in(
            &lan,
            &[
                "link", "add", "name", port, "type", "veth", "peer", "name", dev, "netns", &ns,
            ],
        )?;
        ip_in(&lan, &["link", "set", "dev", port, "master", bridge, "up"])?;
        Ok(())
    };

    // Client: eth0 on the front LAN.
    let client = lab.ns(Node::Client);
    veth("client", "front", Node::Client, "eth0")?;
    ip_in(
        &client,
        &["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "eth0"],
    )?;
    for k in 1..=plan.client_addrs {
        let (addr, len) = client_extra_addr(k).with_context(|| {
            format!(
                "--client-addrs {} is more than the range holds",
                plan.client_addrs
            )
        })?;
        ip_in(
            &client,
            &["addr", "add", &format!("{addr}/{len}"), "dev", "eth0"],
        )?;
    }
    // Dual stack: the IPv6 address without duplicate address detection,
    // so it is usable at once (nothing else on the lab LAN holds it). A
    // new namespace may start with IPv6 off (the host's default).
    // No link-local address: the kernel then sends no router
    // solicitations, MLD reports or DAD probes of its own, and the LAN
    // carries only the lab's traffic.
    ip_in(
        &client,
        &["link", "set", "dev", "eth0", "addrgenmode", "none"],
    )?;
    sys::exec_in(
        &client,
        "sysctl",
        &["-qw", "net.ipv6.conf.eth0.disable_ipv6=0"],
    )?;
    ip_in(
        &client,
        &[
            "-6",
            "addr",
            "add",
            &format!("{CLIENT_ADDR6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    ip_in(&client, &["link", "set", "dev", "eth0", "up"])?;
    // LAB.md "Checksums on veth": the client's kernel must put real
    // checksums on what it sends, because a box reads raw frames.
    sys::exec_in(&client, "ethtool", &["-K", "eth0", "tx", "off"])?;

    // Origin: eth0 on the back LAN.
    let origin = lab.ns(Node::Origin);
    veth("origin", "back", Node::Origin, "eth0")?;
    ip_in(
        &origin,
        &["addr", "add", &format!("{ORIGIN_ADDR}/24"), "dev", "eth0"],
    )?;
    if plan.back == BackFamily::V6 {
        sys::enable_ipv6(&origin, "eth0", &format!("{ORIGIN_ADDR6}/64"))?;
    }
    ip_in(&origin, &["link", "set", "dev", "eth0", "up"])?;

    // Boxes: front0 without any kernel address, back0 with one.
    for n in 1..=plan.boxes {
        let ns = lab.ns(Node::Box(n));
        veth(&box_front_port(n), "front", Node::Box(n), "front0")?;
        veth(&box_back_port(n), "back", Node::Box(n), "back0")?;
        if plan.vm {
            // The VM's NICs own the box's MAC and back address; front0
            // and back0 only carry frames to their taps.
            vm::wire_box(lab, n)?;
            continue;
        }
        ip_in(
            &ns,
            &["link", "set", "dev", "front0", "address", &box_mac(n), "up"],
        )?;
        // No kernel IPv6 on front0 either: the kernel must neither answer
        // for nor reject (ICMPv6 unreachable) what is the dataplane's.
        // AF_PACKET sees the frames all the same.
        sys::exec_in(
            &ns,
            "sysctl",
            &["-qw", "net.ipv6.conf.front0.disable_ipv6=1"],
        )?;
        // The dataplane's AF_PACKET ring must see wire-sized frames, never
        // GRO/GSO super-frames.
        sys::exec_in(
            &ns,
            "ethtool",
            &[
                "-K", "front0", "gro", "off", "lro", "off", "tso", "off", "gso", "off",
            ],
        )?;
        ip_in(
            &ns,
            &[
                "addr",
                "add",
                &format!("{}/24", box_back_addr(n)),
                "dev",
                "back0",
            ],
        )?;
        if plan.back == BackFamily::V6 {
            sys::enable_ipv6(&ns, "back0", &format!("{}/64", plan.back.addr(n)))?;
        }
        ip_in(&ns, &["link", "set", "dev", "back0", "up"])?;
    }
    Ok(())
}

/// Starts the origin server and waits until it listens.
fn start_origin(lab: &Lab, kind: OriginKind) -> Result<()> {
    let ns = lab.ns(Node::Origin);
    let log = lab.file("origin.log");
    let pid_file = lab.file("origin.pid");
    match kind {
        OriginKind::Builtin => {
            let ready = lab.file("origin.ready");
            let exe = std::env::current_exe().context("cannot find the baton binary")?;
            let args = vec![
                "lab".to_string(),
                "serve-origin".into(),
                "--root".into(),
                lab.objects_dir().display().to_string(),
                "--listen".into(),
                format!("{ORIGIN_ADDR}:80"),
                "--ready-file".into(),
                ready.display().to_string(),
            ];
            let pid = sys::spawn_daemon(&ns, &exe, &args, &log, &pid_file)? as i32;
            info!("origin (built in) started, pid {pid}");
            if !sys::wait_until(Duration::from_secs(10), || {
                ready.exists() || !sys::pid_alive(pid)
            }) || !ready.exists()
            {
                bail!(
                    "the origin did not start; its log says:\n{}",
                    sys::tail(&log, 2000)
                );
            }
        }
        OriginKind::Nginx => {
            if sys::find_in_path("nginx").is_none() {
                bail!("--origin nginx needs nginx: apt-get install nginx");
            }
            let conf = crate::nginx::write_conf(lab)?;
            let nginx = sys::find_in_path("nginx").context("nginx vanished")?;
            let nginx = nginx.display().to_string();
            let conf = conf.display().to_string();
            let prefix = lab.file("nginx").display().to_string() + "/";
            // nginx forks into the background itself; its output goes to
            // the log, never to a pipe that its daemon could hold open.
            let out = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)?;
            let log_s = log.display().to_string();
            let st = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &ns, &nginx, "-e", &log_s, "-p", &prefix, "-c", &conf,
                ])
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .status()
                .context("cannot run nginx")?;
            if !st.success() {
                bail!(
                    "nginx did not start ({st}); its log says:\n{}",
                    sys::tail(&log, 2000)
                );
            }
            if !sys::wait_until(Duration::from_secs(10), || {
                sys::read_pid(&pid_file).is_some()
            }) {
                bail!(
                    "nginx wrote no pid file; its log says:\n{}",
                    sys::tail(&log, 2000)
                );
            }
            info!("origin (nginx) started, pid {:?}", sys::read_pid(&pid_file));
        }
    }
    Ok(())
}

/// Starts box `n` in its namespace (`baton run`), without waiting.
fn spawn_box(lab: &Lab, n: u8) -> Result<i32> {
    let ready = lab.file(&format!("box{n}.ready"));
    let _ = fs::remove_file(&ready);
    // BATON_LAB_BOX_EXE runs the boxes from another build of baton (say, a
    // release build under a debug lab); by default the lab's own binary.
    let exe = match std::env::var_os("BATON_LAB_BOX_EXE") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe().context("cannot find the baton binary")?,
    };
    let args = vec![
        "run".to_string(),
        "--config".into(),
        lab.file(&format!("box{n}.toml")).display().to_string(),
        "--ready-file".into(),
        ready.display().to_string(),
    ];
    let log = lab.file(&format!("box{n}.log"));
    let pid = sys::spawn_daemon(
        &lab.ns(Node::Box(n)),
        &exe,
        &args,
        &log,
        &lab.file(&format!("box{n}.pid")),
    )?;
    info!("box{n} started, pid {pid}");
    Ok(pid as i32)
}

/// Waits until every box in `ids` has created its ready file; fails early
/// when one dies, quoting its log.
fn wait_boxes_ready(lab: &Lab, ids: &[u8], timeout: Duration) -> Result<()> {
    let mut failed: Option<u8> = None;
    let is_vm = LabState::load(lab).is_ok_and(|s| s.accel.is_some());
    let all = sys::wait_until(timeout, || {
        let mut all = true;
        for &n in ids {
            if lab.file(&format!("box{n}.ready")).exists() || (is_vm && vm::check_serving(lab, n)) {
                continue;
            }
            all = false;
            let alive =
                sys::read_pid(&lab.file(&format!("box{n}.pid"))).is_some_and(sys::pid_alive);
            if !alive || (is_vm && vm::failed(lab, n)) {
                failed = Some(n);
                return true;
            }
        }
        all
    });
    if let Some(n) = failed {
        bail!(
            "box{n} exited before it was ready; the tail of {} says:\n{}",
            lab.file(&format!("box{n}.log")).display(),
            sys::tail(&lab.file(&format!("box{n}.log")), 2000)
        );
    }
    if !all {
        let late: Vec<u8> = ids
            .iter()
            .copied()
            .filter(|n| !lab.file(&format!("box{n}.ready")).exists())
            .collect();
        let n = late.first().copied().unwrap_or(1);
        bail!(
            "box{n} was not ready after {} s; the tail of {} says:\n{}",
            timeout.as_secs(),
            lab.file(&format!("box{n}.log")).display(),
            sys::tail(&lab.file(&format!("box{n}.log")), 2000)
        );
    }
    info!("boxes {ids:?} are ready");
    Ok(())
}

/// The pid of box `n` if it runs inside its namespace.
pub fn box_pid(lab: &Lab, n: u8) -> Option<i32> {
    sys::live_pid(&lab.file(&format!("box{n}.pid")), &lab.ns(Node::Box(n)))
}

/// `lab kill boxN`: SIGKILL, a crash without goodbye.
pub fn kill_box(lab: &Lab, n: u8) -> Result<()> {
    let state = LabState::load(lab)?;
    if n > state.boxes {
        bail!(
            "lab {:?} has boxes 1..={}, not box{n}",
            lab.prefix(),
            state.boxes
        );
    }
    let pid = box_pid(lab, n).with_context(|| format!("box{n} is not running"))?;
    sys::signal(pid, libc::SIGKILL);
    let _ = fs::remove_file(lab.file(&format!("box{n}.ready")));
    if !sys::wait_until(Duration::from_secs(5), || !sys::pid_alive(pid)) {
        bail!("box{n} (pid {pid}) survived SIGKILL for 5 s");
    }
    info!("box{n} (pid {pid}) killed");
    Ok(())
}

/// `lab drain boxN`: SIGUSR1, the box's drain signal; returns once the box
/// table says it is draining (its connections are handed over).
pub fn drain_box(lab: &Lab, n: u8, table: crate::BoxTable) -> Result<()> {
    let pid = box_pid(lab, n).with_context(|| format!("box{n} is not running"))?;
    sys::signal(pid, libc::SIGUSR1);
    let config = lab.file(&format!("box{n}.toml"));
    let draining = || {
        table(&config)
            .map(|boxes| {
                boxes
                    .iter()
                    .any(|b| b.id == u16::from(n) && b.state == "draining")
            })
            .unwrap_or(false)
    };
    if !sys::wait_until(Duration::from_secs(10), draining) {
        bail!("box{n} (pid {pid}) did not report draining within 10 s: see its log");
    }
    info!("box{n} (pid {pid}) drained: its connections went to the other boxes");
    Ok(())
}

/// `lab start boxN`: starts the box process again; it rejoins as a new
/// member.
pub fn start_box(lab: &Lab, n: u8, timeout: Duration) -> Result<()> {
    let state = LabState::load(lab)?;
    if n > state.boxes {
        bail!(
            "lab {:?} has boxes 1..={}, not box{n}",
            lab.prefix(),
            state.boxes
        );
    }
    if let Some(pid) = box_pid(lab, n) {
        bail!("box{n} is already running (pid {pid})");
    }
    match state.accel {
        Some(a) => vm::spawn_vm(lab, n, a).map(|_| ())?,
        None => spawn_box(lab, n).map(|_| ())?,
    }
    wait_boxes_ready(lab, &[n], timeout)
}

/// `lab down`: kills every process in the lab's namespaces, deletes the
/// namespaces (and with them bridges and veths), the segment and the run
/// folder. Safe on a half-built lab and when nothing is left.
pub fn down(lab: &Lab) -> Result<()> {
    let namespaces: Vec<String> = sys::netns_list()?
        .into_iter()
        .filter(|ns| lab.owns_ns(ns))
        .collect();
    let mut pids = Vec::new();
    for ns in &namespaces {
        for pid in sys::netns_pids(ns) {
            sys::signal(pid, libc::SIGKILL);
            pids.push(pid);
        }
    }
    if !pids.is_empty() {
        info!("killed {} lab processes", pids.len());
    }
    // Let them go before their namespaces do, so no veth outlives `down`.
    sys::wait_until(Duration::from_secs(5), || {
        pids.iter().all(|p| !sys::pid_alive(*p))
    });
    let mut errors = Vec::new();
    for ns in &namespaces {
        if let Err(e) = sys::run("ip", &["netns", "del", ns]) {
            errors.push(format!("{e:#}"));
        }
    }
    if !namespaces.is_empty() {
        info!("deleted namespaces {}", namespaces.join(" "));
    }
    for seg in lab.segment_files() {
        if let Err(e) = fs::remove_file(&seg) {
            errors.push(format!("cannot remove {}: {e}", seg.display()));
        }
    }
    for dir in lab.upload_dirs() {
        if let Err(e) = fs::remove_dir_all(&dir) {
            errors.push(format!("cannot remove {}: {e}", dir.display()));
        }
    }
    if lab.dir().exists() {
        if let Err(e) = fs::remove_dir_all(lab.dir()) {
            errors.push(format!("cannot remove {}: {e}", lab.dir().display()));
        }
    }
    if !errors.is_empty() {
        bail!("lab down left things behind: {}", errors.join("; "));
    }
    Ok(())
}

/// `lab exec NODE -- CMD…`: runs CMD in the node's namespace with our
/// stdio; returns its exit code (128 + signal when killed by one).
/// In a VM lab, `boxN` is the VM itself ([`crate::vm_exec`]).
pub fn exec(lab: &Lab, node: Node, cmd: &[String]) -> Result<i32> {
    if let Node::Box(n) = node {
        if LabState::load(lab).is_ok_and(|s| s.accel.is_some()) {
            return crate::vm_exec::exec(lab, n, cmd);
        }
    }
    let ns = lab.ns(node);
    if !sys::netns_list()?.contains(&ns) {
        bail!("no namespace {ns}: is the lab {:?} up?", lab.prefix());
    }
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(cmd)
        .status()
        .context("cannot run ip netns exec")?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_state_round_trips() {
        let s = LabState {
            boxes: 3,
            origin: "nginx".into(),
            accel: None,
            anycast: None,
        };
        assert_eq!(LabState::parse(&s.render()), Some(s));
        let s = LabState {
            boxes: 2,
            origin: "builtin".into(),
            accel: Some(vm::Accel::Tcg),
            anycast: Some(steering::ANYCAST_ADDR),
        };
        assert_eq!(LabState::parse(&s.render()), Some(s));
        assert_eq!(LabState::parse("origin=builtin\n"), None);
    }
}
