//! Target `ftp_control`: the FTP control session driven by untrusted
//! command bytes and host events, and the bundle's records decoded from
//! untrusted segment bytes and restored. Beyond "no panic" it checks the
//! RFC 2577 promises: an active connection goes only to the client's own
//! address at a port of 1024 or above, a passive port is in the range, and
//! a checkpoint of any reached state round-trips.
//!
//! Input: records (`crate::records`), the control byte choosing the event.

use std::net::{IpAddr, SocketAddr};

use baton_ftp::{Action, Config, ControlRecord, DataRecord, Entry, Session};

/// The control connection's client.
pub const CLIENT: &str = "198.18.0.10:50000";
/// The service address.
pub const SERVICE: &str = "198.19.0.1:21";
const PORTS: (u16, u16) = (40000, 40015);

fn addr(s: &str) -> SocketAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad constant address {s}: {e}"),
    }
}

fn catalog() -> Vec<Entry> {
    vec![
        Entry {
            name: "1k.bin".into(),
            size: 1024,
            modified: 1_700_000_000,
        },
        Entry {
            name: "empty".into(),
            size: 0,
            modified: 0,
        },
    ]
}

fn config() -> Config {
    Config {
        passive_ports: PORTS,
        max_line: 128,
        idle_timeout_ms: 60_000,
    }
}

fn check(actions: &[Action], client: IpAddr) {
    for a in actions {
        match a {
            Action::ConnectActive { addr } => {
                assert_eq!(addr.ip(), client, "active connection to a third party");
                assert!(
                    addr.port() >= 1024,
                    "active connection to a privileged port"
                );
            }
            Action::OpenPassive { port } => {
                assert!(
                    (PORTS.0..=PORTS.1).contains(port),
                    "passive port {port} out of range"
                )
            }
            _ => {}
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let client = addr(CLIENT);
    let cat = catalog();
    let free = |p: u16| p % 3 != 0;
    let (mut s, _) = Session::new(config(), client, addr(SERVICE), 0);
    let mut now = 0u64;
    for (ctl, bytes) in crate::records(data) {
        let out = match ctl % 8 {
            0 | 1 => s.on_input(bytes, now, &cat, &free),
            2 => {
                let peer = if bytes.first().is_some_and(|b| b & 1 == 1) {
                    "198.18.0.99".parse().unwrap_or(client.ip())
                } else {
                    client.ip()
                };
                s.data_connected(peer, now)
            }
            3 => s.transfer_done(now, &cat, &free),
            4 => s.transfer_failed(now, &cat, &free),
            5 => {
                now += u64::from(u16::from_le_bytes([
                    bytes.first().copied().unwrap_or(0),
                    bytes.get(1).copied().unwrap_or(0),
                ])) * 10;
                s.tick(now)
            }
            6 => {
                let c = ControlRecord::decode(bytes);
                let d = bytes.get(ControlRecord::LEN..).map(DataRecord::decode);
                match (c, d) {
                    (Ok(c), Some(Ok(d))) => {
                        let r = Session::restore(
                            config(),
                            client,
                            addr(SERVICE),
                            &c,
                            Some(&d),
                            &cat,
                            now,
                        );
                        match r {
                            Ok((restored, out)) => {
                                s = restored;
                                out
                            }
                            Err(_) => Vec::new(),
                        }
                    }
                    (Ok(c), _) => {
                        match Session::restore(config(), client, addr(SERVICE), &c, None, &cat, now)
                        {
                            Ok((restored, out)) => {
                                s = restored;
                                out
                            }
                            Err(_) => Vec::new(),
                        }
                    }
                    _ => Vec::new(),
                }
            }
            _ => {
                if let Ok((c, d)) = s.checkpoint(0x1234_5678) {
                    assert_eq!(ControlRecord::decode(&c.encode()).as_ref(), Ok(&c));
                    if let Some(d) = d {
                        if let Ok(b) = d.encode() {
                            assert_eq!(DataRecord::decode(&b).as_ref(), Ok(&d));
                        }
                    }
                }
                Vec::new()
            }
        };
        check(&out, client.ip());
    }
}
