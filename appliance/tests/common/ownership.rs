//! The ownership checker (issue #21): reads the boxes' logs of a lab run
//! and asserts, per connection (4-tuple and client ISN), at most one owner
//! per view, and that every owner was a member of the view it restored in.
//!
//! What it reads, from lines the boxes write anyway: `box started …
//! epoch=N` (the incarnation a box's later lines belong to), each
//! committed change `view A → B: …; members [id/epoch, …]`, and the line
//! a survivor writes per connection it restores after a committed change
//! (`restored connections owner= view= dead= count= conns=REGION.SLOT
//! LOCAL REMOTE CLIENT_ISN, …`, `appliance/src/control/ownership.rs`;
//! many connections a line). Logs are plain
//! text (terminal colours stripped). It knows nothing of the lab.
use std::collections::{BTreeMap, HashMap};

/// One connection, as the checker tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn {
    pub local: String,
    pub remote: String,
    pub client_isn: u32,
}

/// One restore: who (box, epoch) restored which connection in which view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    pub owner: u16,
    pub epoch: u32,
    pub view: u64,
    pub dead: u16,
    pub slot: u32,
    pub conn: Conn,
}

/// What a run's logs showed.
#[derive(Debug, Default)]
pub struct Report {
    /// Every restore line read.
    pub restores: Vec<Restore>,
    /// The members (id, epoch) of each committed view, by number.
    pub members: BTreeMap<u64, Vec<(u16, u32)>>,
    /// Broken rules, one sentence each; empty when the run is clean.
    pub violations: Vec<String>,
}

/// Reads `logs` (box id, plain log text) and checks them.
pub fn check(logs: &[(u16, &str)]) -> Report {
    let mut report = Report::default();
    for (n, text) in logs {
        let mut epoch: Option<u32> = None;
        for line in text.lines() {
            if line.contains("box started") {
                epoch = value(line, "epoch").and_then(|e| e.parse().ok());
            } else if let Some((number, members)) = change_of(line) {
                let first = report
                    .members
                    .entry(number)
                    .or_insert_with(|| members.clone());
                if *first != members {
                    report.violations.push(format!(
                        "box{n}: view {number} has members {members:?}, another box logged {first:?}"
                    ));
                }
            } else if line.contains("restored connections") {
                match restores_of(line, epoch) {
                    Some(rs) => {
                        for r in rs {
                            if r.owner == *n {
                                report.restores.push(r);
                            } else {
                                report.violations.push(format!(
                                    "box{n} logged a restore by box{}: {line}",
                                    r.owner
                                ));
                            }
                        }
                    }
                    None => report
                        .violations
                        .push(format!("box{n}: unreadable restore line: {line}")),
                }
            }
        }
    }
    let mut owners: HashMap<(&Conn, u64), Vec<&Restore>> = HashMap::new();
    for r in &report.restores {
        owners.entry((&r.conn, r.view)).or_default().push(r);
        match report.members.get(&r.view) {
            None => report.violations.push(format!(
                "box{} restored {:?} in view {}, which no box logged committing",
                r.owner, r.conn, r.view
            )),
            Some(members) if !members.contains(&(r.owner, r.epoch)) => {
                report.violations.push(format!(
                    "box{} (epoch {}) restored {:?} in view {}, whose members are {members:?}",
                    r.owner, r.epoch, r.conn, r.view
                ))
            }
            Some(_) => {}
        }
    }
    let mut split: Vec<String> = owners
        .into_iter()
        .filter_map(|((conn, view), rs)| {
            let mut who: Vec<(u16, u32)> = rs.iter().map(|r| (r.owner, r.epoch)).collect();
            who.sort();
            who.dedup();
            (who.len() > 1)
                .then(|| format!("{conn:?} had {} owners in view {view}: {who:?}", who.len()))
        })
        .collect();
    split.sort();
    report.violations.extend(split);
    report
}

/// `view A → B: …; members [1/1, 2/4]` → (B, members), else None.
fn change_of(line: &str) -> Option<(u64, Vec<(u16, u32)>)> {
    let rest = &line[line.find("view ")?..];
    let number = rest.split(" → ").nth(1)?.split(':').next()?.parse().ok()?;
    let list = rest.split("; members [").nth(1)?.split(']').next()?;
    let members = list
        .split(", ")
        .filter(|m| !m.is_empty())
        .map(|m| {
            let (id, epoch) = m.split_once('/')?;
            Some((id.parse().ok()?, epoch.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((number, members))
}

/// The restores one `restored connections` line lists, or None when it
/// does not read (a count that does not match its list included).
pub fn restores_of(line: &str, epoch: Option<u32>) -> Option<Vec<Restore>> {
    let owner: u16 = value(line, "owner")?.parse().ok()?;
    let view: u64 = value(line, "view")?.parse().ok()?;
    let dead: u16 = value(line, "dead")?.parse().ok()?;
    let count: usize = value(line, "count")?.parse().ok()?;
    let epoch = epoch?;
    let list = &line[line.find(" conns=")? + " conns=".len()..];
    let rs = list
        .split(", ")
        .map(|entry| {
            let mut f = entry.split_whitespace();
            let (_region, slot) = f.next()?.split_once('.')?;
            let conn = Conn {
                local: f.next()?.to_string(),
                remote: f.next()?.to_string(),
                client_isn: f.next()?.parse().ok()?,
            };
            f.next().is_none().then_some(())?;
            Some(Restore {
                owner,
                epoch,
                view,
                dead,
                slot: slot.parse().ok()?,
                conn,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    (rs.len() == count).then_some(rs)
}

/// The value of ` key=value` in a log line.
fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))?;
    line[at + key.len() + 2..].split_whitespace().next()
}
