//! Unit tests: the session driven command by command on virtual time, and
//! the checkpoint records. A harness plays the host.

mod checkpoint;
mod session;

use std::net::SocketAddr;

use crate::listing::Entry;
use crate::session::{Action, Config, Session};

pub(crate) const CLIENT: &str = "198.18.0.10:50000";
pub(crate) const LOCAL: &str = "198.19.0.1:21";

pub(crate) fn catalog() -> Vec<Entry> {
    vec![
        Entry {
            name: "1k.bin".into(),
            size: 1024,
            modified: 1_700_000_000,
        },
        Entry {
            name: "100m.bin".into(),
            size: 100 << 20,
            modified: 0,
        },
    ]
}

pub(crate) fn config() -> Config {
    Config {
        passive_ports: (40000, 40009),
        max_line: 64,
        idle_timeout_ms: 10_000,
    }
}

/// The host side: a session, its catalog, the ports other sessions hold,
/// virtual time.
pub(crate) struct Host {
    pub s: Session,
    pub cat: Vec<Entry>,
    pub busy: Vec<u16>,
    pub now: u64,
}

impl Host {
    pub fn new() -> (Host, Vec<Action>) {
        let (s, out) = Session::new(config(), addr(CLIENT), addr(LOCAL), 0);
        (
            Host {
                s,
                cat: catalog(),
                busy: Vec::new(),
                now: 0,
            },
            out,
        )
    }

    pub fn logged_in() -> Host {
        let (mut h, _) = Host::new();
        h.cmd("USER anonymous");
        h.cmd("PASS guest@");
        h
    }

    pub fn input(&mut self, bytes: &[u8]) -> Vec<Action> {
        let busy = self.busy.clone();
        self.s
            .on_input(bytes, self.now, &self.cat, &move |p| !busy.contains(&p))
    }

    pub fn cmd(&mut self, line: &str) -> Vec<Action> {
        self.input(format!("{line}\r\n").as_bytes())
    }

    pub fn done(&mut self) -> Vec<Action> {
        let busy = self.busy.clone();
        self.s
            .transfer_done(self.now, &self.cat, &move |p| !busy.contains(&p))
    }
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// The reply lines sent in these actions.
pub(crate) fn replies(actions: &[Action]) -> Vec<String> {
    let mut all = String::new();
    for a in actions {
        if let Action::Send(b) = a {
            all.push_str(&String::from_utf8_lossy(b));
        }
    }
    all.split_terminator("\r\n").map(str::to_string).collect()
}

/// The codes of the final lines of the replies sent.
pub(crate) fn codes(actions: &[Action]) -> Vec<u16> {
    replies(actions)
        .iter()
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .filter_map(|l| l[..3].parse().ok())
        .collect()
}
