//! Real FTP clients (curl, wget) against the session, hosted here on
//! loopback sockets by a minimal blocking host: EPSV, PASV, active (EPRT
//! to the client itself), REST (`curl -C -`) and a listing, each object
//! compared byte for byte. Not the lab (no namespaces, no userspace TCP):
//! it proves the state machine speaks FTP as clients expect. A missing
//! client fails the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use baton_ftp::{Action, Config, DataKind, Entry, Session};

fn object(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Objects(Vec<(Entry, Vec<u8>)>);

impl Objects {
    fn new() -> Self {
        Objects(
            [
                ("1k.bin", 1024usize),
                ("300k.bin", 300_000),
                ("3m.bin", 3 << 20),
            ]
            .iter()
            .enumerate()
            .map(|(i, (n, s))| {
                (
                    Entry {
                        name: n.to_string(),
                        size: *s as u64,
                        modified: 1_700_000_000,
                    },
                    object(*s, 0x9e37 + i as u64),
                )
            })
            .collect(),
        )
    }
    fn catalog(&self) -> Vec<Entry> {
        self.0.iter().map(|(e, _)| e.clone()).collect()
    }
    fn bytes(&self, name: &str) -> &[u8] {
        &self
            .0
            .iter()
            .find(|(e, _)| e.name == name)
            .expect("object")
            .1
    }
}

/// Serves control connections one after the other until `sessions` are done.
fn serve(listener: TcpListener, objects: &Objects, sessions: usize) {
    for _ in 0..sessions {
        let (control, client) = listener.accept().expect("accept control");
        session(control, client, objects);
    }
}

fn session(mut control: TcpStream, client: SocketAddr, objects: &Objects) {
    let cat = objects.catalog();
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let config = Config {
        passive_ports: (0, 0),
        ..Config::default()
    };
    let local = control.local_addr().expect("local");
    let (mut s, hello) = Session::new(config, client, local, now());
    // Passive ports: the host binds port 0 and tells the session through a
    // one-port range, so that parallel test runs never collide.
    let mut listener: Option<TcpListener> = None;
    let mut data: Option<TcpStream> = None;
    let mut pending = hello;
    control
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        let mut i = 0;
        while i < pending.len() {
            let a = pending[i].clone();
            i += 1;
            match a {
                Action::Send(b) => control.write_all(&b).expect("reply"),
                Action::OpenPassive { .. } => {}
                Action::ConnectActive { addr } => {
                    let d = TcpStream::connect(addr).expect("active connect");
                    let peer = d.peer_addr().expect("peer").ip();
                    data = Some(d);
                    pending.extend(s.data_connected(peer, now()));
                }
                Action::StartTransfer(kind) => {
                    let bytes: Vec<u8> = match kind {
                        DataKind::Retr { object, offset, .. } => {
                            objects.bytes(&object)[offset as usize..].to_vec()
                        }
                        DataKind::Listing(b) => b,
                    };
                    let mut d = data.take().expect("data connection");
                    d.write_all(&bytes).expect("data");
                    drop(d);
                    listener = None;
                    pending.extend(s.transfer_done(now(), &cat, &|_| true));
                }
                Action::RefuseData => data = None,
                Action::CloseData => {
                    data = None;
                    listener = None;
                }
                Action::Close => return,
            }
        }
        pending.clear();
        if let Some(l) = &listener {
            if let Ok((d, peer)) = l.accept() {
                data = Some(d);
                pending.extend(s.data_connected(peer.ip(), now()));
                continue;
            }
        }
        match control.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                // Bind the passive port before the session names it.
                let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                if text.starts_with("EPSV") || text.starts_with("PASV") {
                    let l = TcpListener::bind((local.ip(), 0)).expect("passive bind");
                    l.set_nonblocking(true).expect("nonblocking");
                    let port = l.local_addr().expect("addr").port();
                    s = rebind(s, port);
                    listener = Some(l);
                }
                pending = s.on_input(&buf[..n], now(), &cat, &|_| true);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("control read: {e}"),
        }
    }
}

/// The session with its passive range narrowed to the port the host bound.
fn rebind(s: Session, port: u16) -> Session {
    s.with_passive_ports((port, port))
}

fn run_client(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run (install it: scripts/test's package list): {e}",
                args[0]
            )
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("baton-ftp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn curl_and_wget_fetch_byte_exact_in_epsv_pasv_active_and_resumed() {
    let objects = Objects::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = |o: &str| format!("ftp://127.0.0.1:{port}/{o}");
    let resumed = tmp("resumed");
    let part = objects.bytes("3m.bin")[..1_000_000].to_vec();
    std::fs::write(&resumed, &part).expect("partial file");
    let cases: Vec<(&str, Vec<String>, std::path::PathBuf, &str)> = vec![
        (
            "curl EPSV",
            vec!["curl".into(), "-sS".into(), url("3m.bin"), "-o".into()],
            tmp("epsv"),
            "3m.bin",
        ),
        (
            "curl PASV",
            vec![
                "curl".into(),
                "-sS".into(),
                "--disable-epsv".into(),
                url("300k.bin"),
                "-o".into(),
            ],
            tmp("pasv"),
            "300k.bin",
        ),
        (
            "curl active EPRT",
            vec![
                "curl".into(),
                "-sS".into(),
                "--ftp-port".into(),
                "127.0.0.1".into(),
                url("1k.bin"),
                "-o".into(),
            ],
            tmp("active"),
            "1k.bin",
        ),
        (
            "curl -C -",
            vec![
                "curl".into(),
                "-sS".into(),
                "-C".into(),
                "-".into(),
                url("3m.bin"),
                "-o".into(),
            ],
            resumed.clone(),
            "3m.bin",
        ),
        (
            "wget",
            vec!["wget".into(), "-q".into(), url("300k.bin"), "-O".into()],
            tmp("wget"),
            "300k.bin",
        ),
    ];
    let n = cases.len() + 1;
    thread::scope(|scope| {
        scope.spawn(|| serve(listener, &objects, n));
        for (what, mut args, out, name) in cases {
            args.push(out.display().to_string());
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            run_client(&argv);
            let got = std::fs::read(&out).expect("output");
            assert_eq!(got.len(), objects.bytes(name).len(), "{what}: length");
            assert!(got == objects.bytes(name), "{what}: bytes differ");
            let _ = std::fs::remove_file(&out);
        }
        let list = tmp("list");
        run_client(&[
            "curl",
            "-sS",
            "-l",
            &format!("ftp://127.0.0.1:{port}/"),
            "-o",
            &list.display().to_string(),
        ]);
        let names = std::fs::read_to_string(&list).expect("listing");
        // curl fetches listings in ASCII mode: CRLF arrives as the local newline.
        assert_eq!(
            names.lines().collect::<Vec<_>>(),
            vec!["1k.bin", "300k.bin", "3m.bin"]
        );
        let _ = std::fs::remove_file(&list);
    });
}
