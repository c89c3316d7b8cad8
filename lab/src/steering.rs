//! `lab up --steering ecmp`: the lab's front LAN as an L4 switch in front
//! of the boxes (issue 20, TAKEOVER.md "Network-steered takeover").
//!
//! Every box also serves one anycast address per family, [`ANYCAST_ADDR`]
//! and [`ANYCAST_ADDR6`]. The client reaches them through a router MAC ([`ROUTER_MAC`], a permanent neighbour
//! entry, so no box answers its ARP), and an nftables rule on the LAN
//! namespace's bridge rewrites such a frame's destination MAC to one box's
//! by a hash of the flow (client address and port) into [`BUCKETS`]
//! buckets. Resilient hashing, as switches do it: a dead box's buckets go
//! to the survivors in turn and every other flow stays where it is.
//!
//! The health check is a daemon in the LAN namespace (`baton lab steer`):
//! a box that has been unhealthy (its process gone, or not ready yet) for
//! the configured delay is dropped from the buckets, as a switch's probe
//! would drop it, and its flows land on survivors that may never have seen
//! them; a dropped box healthy again for the same delay gets its home
//! buckets back, and with them flows that other boxes hold now (each box
//! forwards a frame of a connection another box holds to it, through the
//! segment's tuple index: TAKEOVER.md "Network-steered takeover").
//! An operator takes a live box out of the hash and puts it back with
//! `baton lab switch out|in boxN` ([`OUT_FILE`]), as for maintenance.
//!
//! It must not know a box's insides: a box is healthy while its process
//! lives. The pure half (bucket tables and the nftables text) is tested
//! here; the daemon only applies it.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::error::{Context, Result};
use crate::names::{box_mac, Lab};
use crate::sys;

/// The one IPv4 service address every box of a steered lab serves.
pub const ANYCAST_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// The one IPv6 service address every box of a steered lab serves, on the
/// front LAN beside the boxes' own (`2001:2:0:18::11`…).
pub const ANYCAST_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0x10);

/// The MAC the client sends anycast traffic to: the "switch", which the
/// bridge rewrites to a box's.
pub const ROUTER_MAC: &str = "02:ba:70:ff:00:10";

/// Hash buckets of the flow table: more than boxes, so that a dead box's
/// share spreads over every survivor.
pub const BUCKETS: u32 = 64;

/// The nftables table (bridge family) that steers, in the LAN namespace.
const TABLE: &str = "baton_steer";

/// Which box each bucket sends to, boxes `1..=boxes` minus `dropped`:
/// a bucket's home box is `bucket mod boxes + 1`; a dropped box's buckets
/// go to the live boxes in turn. `None` when no box is left.
pub fn buckets(boxes: u8, dropped: &BTreeSet<u8>) -> Option<Vec<u8>> {
    let live: Vec<u8> = (1..=boxes).filter(|n| !dropped.contains(n)).collect();
    if live.is_empty() {
        return None;
    }
    let mut next = 0usize;
    Some(
        (0..BUCKETS)
            .map(|b| {
                let home = (b % u32::from(boxes)) as u8 + 1;
                if dropped.contains(&home) {
                    let to = live[next % live.len()];
                    next += 1;
                    to
                } else {
                    home
                }
            })
            .collect(),
    )
}

/// The `map` elements of a bucket table: `0 : MAC, 1 : MAC, …`.
fn elements(table: &[u8]) -> String {
    table
        .iter()
        .enumerate()
        .map(|(b, n)| format!("{b} : {}", box_mac(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nftables script that creates the steering table with `table`.
pub fn ruleset(table: &[u8]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table bridge {TABLE} {{");
    let _ = writeln!(s, "  map buckets {{");
    let _ = writeln!(s, "    typeof numgen inc mod {BUCKETS} : ether daddr");
    let _ = writeln!(s, "    elements = {{ {} }}", elements(table));
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  chain steer {{");
    let _ = writeln!(
        s,
        "    type filter hook prerouting priority dstnat; policy accept;"
    );
    let _ = writeln!(
        s,
        "    ether daddr {ROUTER_MAC} ip daddr {ANYCAST_ADDR} ether daddr set jhash ip saddr . tcp sport mod {BUCKETS} map @buckets"
    );
    let _ = writeln!(
        s,
        "    ether daddr {ROUTER_MAC} ip6 daddr {ANYCAST_ADDR6} ether daddr set jhash ip6 saddr . tcp sport mod {BUCKETS} map @buckets"
    );
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    s
}

/// The nftables script that replaces the table's buckets in one
/// transaction (no frame sees a half-written map).
pub fn update(table: &[u8]) -> String {
    format!(
        "flush map bridge {TABLE} buckets\nadd element bridge {TABLE} buckets {{ {} }}\n",
        elements(table)
    )
}

/// Puts the steering in place for a lab of `boxes` boxes: the bridge's
/// table with every box in it, and the client's permanent neighbour entry
/// for each anycast address.
pub fn install(lab: &Lab, boxes: u8) -> Result<()> {
    let all = buckets(boxes, &BTreeSet::new()).context("a steered lab needs a box")?;
    nft(lab, &ruleset(&all))?;
    for addr in [ANYCAST_ADDR.to_string(), ANYCAST_ADDR6.to_string()] {
        sys::ip_in(
            &lab.ns(crate::names::Node::Client),
            &[
                "neigh",
                "replace",
                &addr,
                "lladdr",
                ROUTER_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )?;
    }
    Ok(())
}

/// Applies an nftables script in the LAN namespace, through a file of the
/// run state (kept: the last one applied shows what the switch does).
fn nft(lab: &Lab, script: &str) -> Result<()> {
    let path = lab.file("steering.nft");
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    sys::exec_in(
        &lab.ns(crate::names::Node::Lan),
        "nft",
        &["-f", &path.display().to_string()],
    )
    .map(|_| ())
}

/// Starts the steering's health check in the LAN namespace (`lab down`
/// kills it with the namespace's other processes).
pub fn start_health_check(lab: &Lab, boxes: u8, delay: Duration) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the baton binary")?;
    let args: Vec<String> = [
        "lab",
        "--prefix",
        lab.prefix(),
        "steer",
        "--boxes",
        &boxes.to_string(),
        "--delay-ms",
        &delay.as_millis().to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let pid = sys::spawn_daemon(
        &lab.ns(crate::names::Node::Lan),
        &exe,
        &args,
        &lab.file("steering.log"),
        &lab.file("steering.pid"),
    )?;
    info!(
        pid,
        "steering: 198.18.0.10 on every box, flows hashed by the LAN, a box dropped {} ms after its process is gone",
        delay.as_millis()
    );
    Ok(())
}

/// File of the run state that lists the boxes out of the hash (dropped by
/// the health check or taken out by the operator), one id a line (tests
/// wait on it).
pub const DROPPED_FILE: &str = "steering.dropped";

/// File of the run state that lists the boxes the operator took out of the
/// hash (`baton lab switch out boxN`), one id a line; the health check
/// reads it at every tick.
pub const OUT_FILE: &str = "steering.out";

/// Reads a file of box ids, one a line (missing: none).
fn read_ids(path: &std::path::Path) -> BTreeSet<u8> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Writes a file of box ids, one a line.
fn write_ids(path: &std::path::Path, ids: &BTreeSet<u8>) -> Result<()> {
    let list: String = ids.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(path, list).with_context(|| format!("cannot write {}", path.display()))
}

/// `baton lab switch out|in boxN`: takes box `n` out of the steering's
/// hash (`out = true`) or puts it back; the health check applies it
/// within a tick. The box keeps running: its flows go to the others.
pub fn set_out(lab: &Lab, n: u8, out: bool) -> Result<()> {
    let path = lab.file(OUT_FILE);
    let mut ids = read_ids(&path);
    if out {
        ids.insert(n);
    } else {
        ids.remove(&n);
    }
    write_ids(&path, &ids)?;
    info!(
        box_id = n,
        out, "steering: operator change written; the health check applies it"
    );
    Ok(())
}

/// Whether box `n` passes the health check: its process lives and it is
/// ready (a box still starting serves nothing).
fn healthy(lab: &Lab, n: u8) -> bool {
    let ns = lab.ns(crate::names::Node::Box(n));
    sys::live_pid(&lab.file(&format!("box{n}.pid")), &ns).is_some()
        && lab.file(&format!("box{n}.ready")).exists()
}

/// The health check's memory of each box: out of the hash or in, and
/// since when its health has disagreed with that.
#[derive(Debug, Default)]
pub struct HealthCheck {
    dropped: BTreeSet<u8>,
    disagree_since: BTreeMap<u8, Instant>,
}

impl HealthCheck {
    /// One look at box `n`: `healthy` now, at `now`. A box whose health
    /// has disagreed with its place in the hash for `delay` changes place;
    /// returns whether it did.
    pub fn observe(&mut self, n: u8, healthy: bool, now: Instant, delay: Duration) -> bool {
        let in_hash = !self.dropped.contains(&n);
        if healthy == in_hash {
            self.disagree_since.remove(&n);
            return false;
        }
        let since = *self.disagree_since.entry(n).or_insert(now);
        if now.duration_since(since) < delay {
            return false;
        }
        self.disagree_since.remove(&n);
        if healthy {
            self.dropped.remove(&n);
            info!(
                box_id = n,
                "steering: box healthy again, its home buckets come back to it"
            );
        } else {
            self.dropped.insert(n);
            info!(
                box_id = n,
                after_ms = now.duration_since(since).as_millis() as u64,
                "steering: box failed its health check, its buckets go to the others"
            );
        }
        true
    }

    /// The boxes the health check dropped.
    pub fn dropped(&self) -> &BTreeSet<u8> {
        &self.dropped
    }
}

/// The health check (`baton lab steer`): every 50 ms, is each box healthy
/// (process alive and ready); a box unhealthy for `delay` is dropped from
/// the buckets, one healthy again for `delay` is put back; the operator's
/// [`OUT_FILE`] is applied too. Runs until killed (`lab down` kills the
/// LAN namespace's processes).
pub fn run_health_check(lab: &Lab, boxes: u8, delay: Duration) -> Result<()> {
    let mut check = HealthCheck::default();
    let mut applied: Option<BTreeSet<u8>> = None;
    info!(
        boxes,
        delay_ms = delay.as_millis() as u64,
        "steering: health check running"
    );
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        for n in 1..=boxes {
            check.observe(n, healthy(lab, n), now, delay);
        }
        let out: BTreeSet<u8> = check
            .dropped()
            .union(&read_ids(&lab.file(OUT_FILE)))
            .copied()
            .collect();
        if applied.as_ref() == Some(&out) {
            continue;
        }
        match buckets(boxes, &out) {
            Some(table) => nft(lab, &update(&table))?,
            None => warn!("steering: every box is out, buckets left as they were"),
        }
        write_ids(&lab.file(DROPPED_FILE), &out)?;
        applied = Some(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_box_gets_its_home_buckets_while_all_live() {
        let t = buckets(3, &BTreeSet::new()).unwrap();
        assert_eq!(t.len(), BUCKETS as usize);
        for n in 1..=3u8 {
            let share = t.iter().filter(|&&b| b == n).count();
            assert!((21..=22).contains(&share), "box {n}: {share}");
        }
    }

    #[test]
    fn a_dropped_box_s_buckets_spread_over_the_others_and_nothing_else_moves() {
        let all = buckets(3, &BTreeSet::new()).unwrap();
        let t = buckets(3, &BTreeSet::from([1])).unwrap();
        for (b, (before, after)) in all.iter().zip(&t).enumerate() {
            if *before == 1 {
                assert_ne!(*after, 1, "bucket {b} still on the dropped box");
            } else {
                assert_eq!(before, after, "bucket {b} moved though its box lives");
            }
        }
        let to2 = t.iter().filter(|&&n| n == 2).count();
        let to3 = t.iter().filter(|&&n| n == 3).count();
        assert!(to2.abs_diff(to3) <= 1, "{to2} vs {to3}");
        assert_eq!(buckets(3, &BTreeSet::from([1, 2, 3])), None);
    }

    #[test]
    fn a_box_leaves_the_hash_after_the_delay_and_comes_back_after_it_too() {
        let delay = Duration::from_millis(1000);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut h = HealthCheck::default();
        assert!(!h.observe(1, true, at(0), delay));
        // Unhealthy: out only once the delay has passed.
        assert!(!h.observe(1, false, at(100), delay));
        assert!(!h.observe(1, false, at(1099), delay));
        assert!(h.observe(1, false, at(1100), delay));
        assert_eq!(h.dropped(), &BTreeSet::from([1]));
        // A blip of health does not bring it back; health held does.
        assert!(!h.observe(1, true, at(1200), delay));
        assert!(!h.observe(1, false, at(1300), delay));
        assert!(!h.observe(1, true, at(1400), delay));
        assert!(!h.observe(1, true, at(2399), delay));
        assert!(h.observe(1, true, at(2400), delay));
        assert!(h.dropped().is_empty());
    }

    #[test]
    fn the_ruleset_hashes_anycast_frames_to_the_router_mac_into_box_macs() {
        let t = buckets(2, &BTreeSet::new()).unwrap();
        let r = ruleset(&t);
        assert!(r.contains("table bridge baton_steer {"), "{r}");
        assert!(r.contains("ether daddr 02:ba:70:ff:00:10 ip daddr 198.18.0.10 ether daddr set jhash ip saddr . tcp sport mod 64 map @buckets"), "{r}");
        assert!(r.contains("ether daddr 02:ba:70:ff:00:10 ip6 daddr 2001:2:0:18::10 ether daddr set jhash ip6 saddr . tcp sport mod 64 map @buckets"), "{r}");
        assert!(
            r.contains("0 : 02:ba:70:00:00:01, 1 : 02:ba:70:00:00:02, 2 : 02:ba:70:00:00:01"),
            "{r}"
        );
        let u = update(&t);
        assert!(u.starts_with("flush map bridge baton_steer buckets\nadd element bridge baton_steer buckets { 0 : "), "{u}");
    }
}
