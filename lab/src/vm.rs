//! VM boxes (`lab up --vm`): each box is a QEMU machine booted from the
//! appliance image (`scripts/image`, target/image/), run inside the box's
//! namespace. Its front and back NICs are virtio-net on taps bridged, in
//! that namespace, to the box's veths on the lab's LANs (so LAB.md's
//! addresses and the `lab impair` hooks stay as they are), its config comes
//! from a config disk (a tar archive the image's `baton-vm-setup` reads),
//! and the checkpoint segment is one host shared-memory file that every VM
//! sees as an `ivshmem-plain` PCI device, mapped by baton through the
//! device's BAR (`checkpoint.segment_path = "pci:0000:00:05.0"`).
//! With `--backend dpdk` the front NIC is DPDK's inside the VM (bound to
//! uio_pci_generic by the config disk's `dpdk.conf`, driven by net_virtio);
//! `lab exec boxN` reaches the VM over a serial line ([`crate::vm_exec`]).
//! It must not know a box's insides: the VM is ready when its serial
//! console says systemd started `baton.service` (`Type=notify`: READY=1
//! comes once the box serves as a member of the view).
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::bail;
use crate::error::{Context, Result};
use crate::names::{box_back_addr, box_mac, Lab, Node};
use crate::sys::{self, ip_in};

/// Memory of each VM box, MiB: room for the kernel, systemd, the 64 MiB of
/// hugepages the image's command line reserves and the box's cache.
pub const VM_MEMORY_MB: u32 = 512;
/// The ivshmem device's BAR, the lab's segment: a power of two (a PCI BAR's
/// size), above what [`VM_SLOTS`] slots in up to ten regions need.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Slots per region in a VM lab: the segment fits the BAR above.
pub const VM_SLOTS: u32 = 4096;
/// Where the segment's BAR sits in every VM (bus 0, slot 5).
pub const SEGMENT_PCI: &str = "0000:00:05.0";
/// The cache of a VM box, within its 512 MiB (the lab's objects go up to
/// 100 MB).
const VM_CACHE: &str = "160MiB";
/// How long the KVM probe waits for the kernel's first console line.
const KVM_PROBE: Duration = Duration::from_secs(6);
/// What the serial console shows once the box serves: baton's own log line
/// as it tells systemd READY=1 (`Type=notify`: a member of the view, its
/// dataplane up). systemd's "Started baton.service" is not relied on: it
/// stops writing status lines to the console once a getty runs there.
const SERVING_MARK: &str = "telling the service manager READY=1";

/// QEMU's accelerator for the lab's VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's own translator: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// QEMU's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// Parses `kvm` or `tcg`.
    pub fn parse(s: &str) -> Option<Accel> {
        match s.trim() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

/// The appliance image's files.
#[derive(Debug, Clone)]
pub struct Image {
    /// The root filesystem (qcow2); each box boots its own overlay of it
    /// (`boxN.qcow2` in the run folder, kept across `lab start`, as a
    /// real box keeps its disk across reboots).
    pub disk: PathBuf,
    /// Its kernel.
    pub kernel: PathBuf,
    /// Its initramfs.
    pub initrd: PathBuf,
    /// Its kernel command line (root, console, hugepages).
    pub cmdline: String,
}

/// The image `scripts/image` built: in `BATON_LAB_IMAGE_DIR`, else in
/// `target/image/` beside the `target/PROFILE/baton` that runs the lab.
pub fn find_image() -> Result<Image> {
    let dir = match std::env::var_os("BATON_LAB_IMAGE_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().context("cannot find the baton binary")?;
            exe.parent()
                .and_then(Path::parent)
                .map(|t| t.join("image"))
                .context("cannot place target/image beside the baton binary")?
        }
    };
    let image = Image {
        disk: dir.join("baton.qcow2"),
        kernel: dir.join("baton.vmlinuz"),
        initrd: dir.join("baton.initrd"),
        cmdline: String::new(),
    };
    for f in [&image.disk, &image.kernel, &image.initrd] {
        if !f.exists() {
            bail!(
                "--vm needs the appliance image: {} is missing (build it with scripts/image, or set BATON_LAB_IMAGE_DIR)",
                f.display()
            );
        }
    }
    let cmdline = fs::read_to_string(dir.join("baton.cmdline"))
        .with_context(|| format!("cannot read {}", dir.join("baton.cmdline").display()))?;
    Ok(Image {
        cmdline: cmdline.trim().to_string(),
        ..image
    })
}

/// The QEMU binary, or a clear message.
fn qemu() -> Result<PathBuf> {
    sys::find_in_path("qemu-system-x86_64")
        .context("--vm needs QEMU: apt-get install qemu-system-x86")
}

/// KVM when it boots a kernel, else TCG. `BATON_LAB_ACCEL=kvm|tcg`
/// decides without probing. The probe boots the image's kernel with no
/// root under KVM and waits for its first console line: a KVM that hangs
/// after the kernel's decompression (as on some nested hosts) prints none.
pub fn probe_accel(lab: &Lab, image: &Image) -> Result<Accel> {
    if let Some(a) = std::env::var("BATON_LAB_ACCEL")
        .ok()
        .and_then(|s| Accel::parse(&s))
    {
        info!("accelerator {} (BATON_LAB_ACCEL)", a.as_str());
        return Ok(a);
    }
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        info!("accelerator tcg: /dev/kvm is not usable");
        return Ok(Accel::Tcg);
    }
    let serial = lab.file("kvm-probe.log");
    let _ = fs::remove_file(&serial);
    let mut child = std::process::Command::new(qemu()?)
        .args(["-accel", "kvm", "-m", "256", "-smp", "1", "-nodefaults"])
        .args(["-display", "none", "-no-reboot", "-kernel"])
        .arg(&image.kernel)
        .args(["-append", "console=ttyS0 panic=-1 root=/dev/nonexistent"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot run qemu-system-x86_64")?;
    let booted = sys::wait_until(KVM_PROBE, || {
        fs::read_to_string(&serial).is_ok_and(|s| s.contains("Linux version"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_file(&serial);
    if booted {
        info!("accelerator kvm: a KVM guest printed its kernel banner");
        Ok(Accel::Kvm)
    } else {
        warn!(
            "accelerator tcg: a KVM guest printed nothing in {} s (it hangs on this host)",
            KVM_PROBE.as_secs()
        );
        Ok(Accel::Tcg)
    }
}

/// Refuses a backend VM boxes cannot run, before anything is made: DPDK
/// needs an image built with it (`scripts/image --features dpdk` writes
/// `dpdk` into `baton.features` beside the image, and puts DPDK's runtime
/// in the image).
pub fn supports_backend(backend: crate::boxconf::Backend) -> Result<()> {
    if backend != crate::boxconf::Backend::Dpdk {
        return Ok(());
    }
    let dir = find_image()?
        .disk
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    image_has_dpdk(&fs::read_to_string(dir.join("baton.features")).unwrap_or_default())
}

fn image_has_dpdk(features: &str) -> Result<()> {
    if !features.split_whitespace().any(|f| f == "dpdk") {
        bail!(
            "--vm --backend dpdk needs an appliance image built with DPDK: scripts/image --features dpdk \
             (this image's baton.features does not name dpdk)"
        );
    }
    Ok(())
}

/// The front NIC's PCI address in every VM (bus 0, slot 3): what a DPDK
/// box's EAL is given instead of a vdev.
pub const FRONT_PCI: &str = "0000:00:03.0";

/// Whether a box config runs the DPDK backend.
fn is_dpdk(toml: &str) -> bool {
    toml.lines()
        .any(|l| l.replace(' ', "") == "backend=\"dpdk\"")
}

/// Box `n`'s back NIC MAC, 02:ba:70:01:00:0N.
pub fn back_mac(n: u8) -> String {
    format!("02:ba:70:01:00:{n:02x}")
}

/// In box `n`'s namespace: a tap per NIC, bridged to the box's veth on
/// that LAN (`front0`, `back0`), which the lab left without a MAC of the
/// box's or an address: those belong to the VM's NICs.
pub fn wire_box(lab: &Lab, n: u8) -> Result<()> {
    let ns = lab.ns(Node::Box(n));
    for (veth, tap, bridge) in [("front0", "tapf", "vmf"), ("back0", "tapb", "vmb")] {
        ip_in(&ns, &["tuntap", "add", "dev", tap, "mode", "tap"])?;
        ip_in(&ns, &["link", "add", "name", bridge, "type", "bridge"])?;
        for port in [veth, tap] {
            ip_in(&ns, &["link", "set", "dev", port, "master", bridge, "up"])?;
        }
        ip_in(&ns, &["link", "set", "dev", bridge, "up"])?;
    }
    Ok(())
}

/// The host's side of the segment: a zero file of [`SEGMENT_BYTES`] that
/// QEMU shares into every VM; the first box to map it writes its header.
pub fn create_segment(lab: &Lab) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = lab.segment_path();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.set_len(SEGMENT_BYTES)
        .with_context(|| format!("cannot size {}", path.display()))?;
    info!(
        "segment {} ({} MiB), every VM's ivshmem device at {SEGMENT_PCI}",
        path.display(),
        SEGMENT_BYTES >> 20
    );
    Ok(())
}

/// Replaces `key`'s value in `[table]` of a box config written by
/// `boxconf` (one `key = value` per line), or adds the key to the table.
fn set_key(text: &str, table: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut done = false;
    let header = format!("[{table}]");
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if current == header && !done {
                out.insert(out.len().saturating_sub(1), format!("{key} = {value}"));
                done = true;
            }
            current = t.to_string();
        }
        if current == header && !done && t.split('=').next().map(str::trim) == Some(key) {
            out.push(format!("{key} = {value}"));
            done = true;
            continue;
        }
        out.push(line.to_string());
    }
    if !done && current == header {
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// A box config for a VM lab as the host sees it (`boxN.toml`, read by
/// `lab status` through the host's segment file): fewer slots, so the
/// segment fits the BAR; a cache that fits the VM.
pub fn host_toml(text: &str) -> String {
    let t = set_key(text, "checkpoint", "slots", &VM_SLOTS.to_string());
    let t = set_key(&t, "failure", "missed", &VM_MISSED.to_string());
    set_key(&t, "cache", "memory_bytes", &format!("\"{VM_CACHE}\""))
}

/// `failure.missed` of a VM box: 70 heartbeats of
/// [`crate::boxconf::LAB_HEARTBEAT_MS`] (30 ms), 2.1 s. A TCG guest on a
/// shared host is descheduled for longer than a process box's 90 ms, and
/// a live box judged dead fences itself. 900 ms was not enough: in
/// CI a DPDK guest just up was starved for 1.53 s (its watcher's tick
/// gap), its peer judged it dead after 916 ms of silence and took a slot
/// it was still writing, and the download in it was lost.
pub const VM_MISSED: u32 = 70;

/// The same config as the VM sees it: the segment is the ivshmem device's
/// BAR, uploads spool in the VM, and frames leave with full checksums
/// (virtio's offload would leave them to a host that does not compute them
/// for a bridged tap).
pub fn guest_toml(host: &str) -> String {
    let t = set_key(
        host,
        "checkpoint",
        "segment_path",
        &format!("\"pci:{SEGMENT_PCI}\""),
    );
    let t = set_key(&t, "checkpoint", "upload_dir", "\"/dev/shm/baton.uploads\"");
    let mut t = set_key(&t, "dataplane", "tx_offload", "false");
    if is_dpdk(&t) {
        // The front NIC itself, a virtio PCI device bound to
        // uio_pci_generic (baton-vm-setup), on the image's hugepages:
        // physical addresses, as uio has no IOMMU to map others.
        t = set_key(&t, "dataplane.dpdk", "vdevs", &format!("[\"{FRONT_PCI}\"]"));
        t = set_key(&t, "dataplane.dpdk", "hugepages", "true");
        t = set_key(
            &t,
            "dataplane.dpdk",
            "memory_mb",
            &DPDK_MEMORY_MB.to_string(),
        );
    }
    // The epoch file lies beside the Raft state, by default beside the
    // segment, which sysfs has no room for: the unit's state directory
    // (on the VM's own disk, kept across `lab start`).
    if t.lines().any(|l| l.trim() == "[raft]") {
        t = set_key(&t, "raft", "state_path", GUEST_RAFT_STATE);
    } else {
        t.push_str(&format!("\n[raft]\nstate_path = {GUEST_RAFT_STATE}\n"));
    }
    t
}

/// MiB a DPDK VM box's EAL reserves from the hugepages its command line
/// asks for ([`DPDK_HUGEPAGES`] x 2 MiB): the mbuf pool and the EAL's own.
const DPDK_MEMORY_MB: u32 = 64;
/// 2 MiB hugepages a DPDK VM box reserves at boot (the image's command line
/// has 32: the EAL wants its 64 MiB and a margin).
const DPDK_HUGEPAGES: u32 = 64;

/// `raft.state_path` inside a VM box (baton.service's StateDirectory).
const GUEST_RAFT_STATE: &str = "\"/var/lib/baton/raft\"";

/// Writes box `n`'s config disk, `boxN.cfg.tar`: the guest config, the
/// NICs by MAC (front0 without an address, back0 with LAB.md's) and the
/// PCI device to enable (packaging/image/baton-vm-setup reads them), and
/// `lab-exec`, which turns on the image's command line for `lab exec`
/// ([`crate::vm_exec`]): a lab's VM, unlike an operator's box, takes
/// commands from its host.
pub fn write_config_disk(lab: &Lab, n: u8, guest: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = lab.file(&format!("box{n}.cfg"));
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    fs::write(dir.join("baton.toml"), guest)?;
    let dpdk = is_dpdk(guest);
    // A DPDK box's front NIC is DPDK's (dpdk.conf), not the kernel's.
    let front = if dpdk {
        String::new()
    } else {
        format!("front0 {}\n", box_mac(n))
    };
    fs::write(
        dir.join("net.conf"),
        format!("{front}back0 {} {}/24\n", back_mac(n), box_back_addr(n)),
    )?;
    let mut files = vec!["baton.toml", "net.conf", "pci.conf", "lab-exec"];
    if dpdk {
        fs::write(dir.join("dpdk.conf"), format!("{FRONT_PCI}\n"))?;
        files.push("dpdk.conf");
    }
    fs::write(dir.join("pci.conf"), format!("{SEGMENT_PCI}\n"))?;
    fs::write(dir.join("lab-exec"), "ttyS1\n")?;
    let tar = lab.file(&format!("box{n}.cfg.tar"));
    let tar_s = tar.display().to_string();
    let dir_s = dir.display().to_string();
    let mut args = vec!["-cf", &tar_s, "-C", &dir_s];
    args.extend(files);
    sys::run("tar", &args)?;
    fs::set_permissions(&tar, fs::Permissions::from_mode(0o600))?;
    Ok(tar)
}

/// QEMU's arguments for box `n`.
fn qemu_args(lab: &Lab, n: u8, image: &Image, accel: Accel) -> Vec<String> {
    let cfg = lab.file(&format!("box{n}.cfg.tar"));
    let serial = lab.file(&format!("box{n}.log"));
    let mut a: Vec<String> = [
        "-name",
        &format!("{}-box{n}", lab.prefix()),
        "-accel",
        accel.as_str(),
        "-cpu",
        if accel == Accel::Kvm { "host" } else { "max" },
        "-m",
        &VM_MEMORY_MB.to_string(),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend([
        "-serial".into(),
        format!("file:{}", serial.display()),
        "-kernel".into(),
        image.kernel.display().to_string(),
        "-initrd".into(),
        image.initrd.display().to_string(),
        "-append".into(),
        if is_dpdk(
            &fs::read_to_string(lab.file(&format!("box{n}.cfg")).join("baton.toml"))
                .unwrap_or_default(),
        ) {
            image
                .cmdline
                .replace("hugepages=32", &format!("hugepages={DPDK_HUGEPAGES}"))
        } else {
            image.cmdline.clone()
        },
        "-drive".into(),
        format!(
            "file={},if=virtio,format=qcow2",
            lab.file(&format!("box{n}.qcow2")).display()
        ),
        "-drive".into(),
        format!("file={},if=virtio,format=raw,readonly=on", cfg.display()),
        "-netdev".into(),
        "tap,id=front,ifname=tapf,script=no,downscript=no".into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=front,mac={},addr=0x3", box_mac(n)),
        "-netdev".into(),
        "tap,id=back,ifname=tapb,script=no,downscript=no".into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=back,mac={},addr=0x4", back_mac(n)),
        "-object".into(),
        format!(
            "memory-backend-file,id=seg,share=on,mem-path={},size={SEGMENT_BYTES}",
            lab.segment_path().display()
        ),
        "-device".into(),
        "ivshmem-plain,memdev=seg,addr=0x5".into(),
    ]);
    // ttyS1: `lab exec boxN`'s command line into the VM.
    a.extend(crate::vm_exec::qemu_args(lab, n));
    a
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Boots box `n`'s VM in its namespace, without waiting; its serial
/// console goes to `boxN.log`, QEMU's own messages to `boxN.qemu.log`.
pub fn spawn_vm(lab: &Lab, n: u8, accel: Accel) -> Result<i32> {
    let image = find_image()?;
    let disk = lab.file(&format!("box{n}.qcow2"));
    if !disk.exists() {
        let base = image.disk.canonicalize().context("the image vanished")?;
        let base = base.display().to_string();
        let disk = disk.display().to_string();
        sys::run(
            "qemu-img",
            &[
                "create", "-q", "-f", "qcow2", "-b", &base, "-F", "qcow2", &disk,
            ],
        )?;
    }
    // A new boot: the serial log starts over, so the ready mark found is
    // this boot's.
    let serial = lab.file(&format!("box{n}.log"));
    let _ = fs::remove_file(&serial);
    let _ = fs::remove_file(lab.file(&format!("box{n}.ready")));
    fs::write(lab.file(&format!("box{n}.booted_at")), now_ms().to_string())?;
    let pid = sys::spawn_daemon(
        &lab.ns(Node::Box(n)),
        &qemu()?,
        &qemu_args(lab, n, &image, accel),
        &lab.file(&format!("box{n}.qemu.log")),
        &lab.file(&format!("box{n}.pid")),
    )?;
    info!("box{n}: VM booting ({}), QEMU pid {pid}", accel.as_str());
    Ok(pid as i32)
}

/// Whether box `n`'s VM serves: its console says baton told systemd
/// READY=1. The first time, writes the ready file and
/// `boxN.boot_ms` (boot to serving, milliseconds) and logs it.
pub fn check_serving(lab: &Lab, n: u8) -> bool {
    let ready = lab.file(&format!("box{n}.ready"));
    if ready.exists() {
        return true;
    }
    let Ok(log) = fs::read(lab.file(&format!("box{n}.log"))) else {
        return false;
    };
    let log = String::from_utf8_lossy(&log);
    let serving = log.contains(SERVING_MARK);
    if !serving {
        return false;
    }
    let booted: u128 = fs::read_to_string(lab.file(&format!("box{n}.booted_at")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let took = now_ms().saturating_sub(booted);
    let _ = fs::write(lab.file(&format!("box{n}.boot_ms")), took.to_string());
    let _ = fs::write(&ready, "");
    info!(
        "box{n}: VM serving {:.1} s after QEMU started",
        took as f64 / 1000.0
    );
    true
}

/// Whether box `n`'s VM failed to start its box: the console shows the
/// unit or its setup failed (systemd retries baton.service, so only the
/// setup's failure or the start limit is final).
pub fn failed(lab: &Lab, n: u8) -> bool {
    fs::read(lab.file(&format!("box{n}.log"))).is_ok_and(|b| {
        let s = String::from_utf8_lossy(&b);
        let failures = |unit: &str| {
            s.lines()
                .filter(|l| l.contains("Failed to start") && l.contains(unit))
                .count()
        };
        // baton.service's StartLimitBurst: its last restart failed too.
        failures("baton-vm-setup") > 0 || failures("baton.service") >= 5
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[box]\nid = 1\n\n[failure]\nheartbeat_interval_ms = 30\nmissed = 3\n\n[dataplane]\ninterface = \"front0\"\ntx_offload = true\n\n[checkpoint]\nsegment_path = \"/dev/shm/x.seg\"\nslots = 20000\nmode = \"shared\"\nupload_dir = \"/dev/shm/x.uploads\"\n\n[cache]\norigin = \"http://198.19.0.2:80\"\nmemory_bytes = \"512MiB\"\n";

    #[test]
    fn the_guest_maps_the_bar_and_the_host_the_file() {
        let host = host_toml(TEXT);
        assert!(host.contains("segment_path = \"/dev/shm/x.seg\""));
        assert!(host.contains("slots = 4096\n"));
        assert!(host.contains(&format!("missed = {VM_MISSED}\n")));
        assert!(host.contains("memory_bytes = \"160MiB\""));
        let guest = guest_toml(&host);
        assert!(guest.contains("segment_path = \"pci:0000:00:05.0\""));
        assert!(guest.contains("upload_dir = \"/dev/shm/baton.uploads\""));
        assert!(guest.contains("tx_offload = false"));
        assert!(guest.contains("[raft]\nstate_path = \"/var/lib/baton/raft\""));
        assert!(!guest.contains("/dev/shm/x.seg"));
        assert_eq!(guest.matches("slots =").count(), 1);
    }

    #[test]
    fn a_missing_key_is_added_to_its_table() {
        let t = set_key("[a]\nx = 1\n\n[b]\ny = 2\n", "a", "z", "3");
        assert_eq!(t, "[a]\nx = 1\nz = 3\n\n[b]\ny = 2\n");
        let t = set_key("[a]\nx = 1\n", "a", "z", "3");
        assert_eq!(t, "[a]\nx = 1\nz = 3\n");
    }

    #[test]
    fn dpdk_in_a_vm_needs_an_image_built_with_it() {
        let e = image_has_dpdk("").unwrap_err();
        assert!(e.to_string().contains("--features dpdk"), "{e}");
        assert!(image_has_dpdk("dpdk\n").is_ok());
        assert!(supports_backend(crate::boxconf::Backend::Afpacket).is_ok());
    }

    #[test]
    fn a_dpdk_guest_drives_the_front_nic_on_hugepages() {
        let text = TEXT.replace(
            "[checkpoint]",
            "[dataplane.dpdk]\nvdevs = [\"net_af_packet0,iface=front0,qpairs=1\"]\nhugepages = false\nmemory_mb = 256\n\n[checkpoint]",
        )
        .replace("interface = \"front0\"", "backend = \"dpdk\"\ninterface = \"front0\"");
        let guest = guest_toml(&host_toml(&text));
        assert!(guest.contains("vdevs = [\"0000:00:03.0\"]"), "{guest}");
        assert!(guest.contains("hugepages = true"));
        assert!(guest.contains("memory_mb = 64\n"));
        assert!(!guest.contains("net_af_packet"));
        assert!(!guest_toml(&host_toml(TEXT)).contains("0000:00:03.0"));
    }

    #[test]
    fn the_segment_fits_the_bar() {
        // 4096 slots and 256 overflow pieces of 768 bytes per region, ten
        // regions (box ids up to 9), plus claims: under 64 MiB.
        let region = (VM_SLOTS as u64 + 32 * 15) * 768 + 4096;
        assert!(4096 + 10 * region + 10 * VM_SLOTS as u64 * 8 < SEGMENT_BYTES);
        assert!(SEGMENT_BYTES.is_power_of_two());
    }
}
