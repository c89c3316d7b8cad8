//! The session command by command.

use std::net::IpAddr;

use proptest::prelude::*;

use super::{addr, codes, replies, Host};
use crate::session::{Action, Data, DataKind, Login};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

#[test]
fn curl_epsv_sequence_retrieves_the_object() {
    let (mut h, hello) = Host::new();
    assert_eq!(codes(&hello), vec![220]);
    assert_eq!(codes(&h.cmd("USER anonymous")), vec![331]);
    assert_eq!(codes(&h.cmd("PASS ftp@example.com")), vec![230]);
    assert_eq!(h.s.login(), Login::LoggedIn);
    assert_eq!(
        replies(&h.cmd("PWD")),
        vec!["257 \"/\" is the current directory"]
    );
    let epsv = h.cmd("EPSV");
    let port = match epsv[0] {
        Action::OpenPassive { port } => port,
        ref a => panic!("expected OpenPassive, got {a:?}"),
    };
    assert!((40000..=40009).contains(&port));
    assert_eq!(
        replies(&epsv),
        vec![format!("229 Entering Extended Passive Mode (|||{port}|)")]
    );
    assert_eq!(codes(&h.cmd("TYPE I")), vec![200]);
    assert_eq!(replies(&h.cmd("SIZE 1k.bin")), vec!["213 1024"]);
    // curl connects the data connection before RETR.
    assert!(h.s.data_connected(ip("198.18.0.10"), 1).is_empty());
    let retr = h.cmd("RETR 1k.bin");
    assert_eq!(codes(&retr), vec![150]);
    assert!(retr.contains(&Action::StartTransfer(DataKind::Retr {
        object: "1k.bin".into(),
        offset: 0,
        size: 1024
    })));
    let done = h.done();
    assert_eq!(done[0], Action::CloseData);
    assert_eq!(replies(&done), vec!["226 Transfer complete"]);
    assert_eq!(h.s.data(), Data::None);
    let quit = h.cmd("QUIT");
    assert_eq!(codes(&quit), vec![221]);
    assert_eq!(quit.last(), Some(&Action::Close));
    assert!(h.s.is_closed());
}

#[test]
fn retr_before_the_data_connection_starts_when_it_arrives() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    let retr = h.cmd("RETR /1k.bin");
    assert!(
        retr.is_empty(),
        "150 waits for the data connection: {retr:?}"
    );
    let go = h.s.data_connected(ip("198.18.0.10"), 1);
    assert_eq!(codes(&go), vec![150]);
    assert!(matches!(
        go[1],
        Action::StartTransfer(DataKind::Retr { .. })
    ));
}

#[test]
fn only_anonymous_logs_in() {
    let (mut h, _) = Host::new();
    assert_eq!(codes(&h.cmd("RETR 1k.bin")), vec![530]);
    assert_eq!(codes(&h.cmd("USER root")), vec![530]);
    assert_eq!(codes(&h.cmd("PASS secret")), vec![503]);
    assert_eq!(h.s.login(), Login::None);
    assert_eq!(codes(&h.cmd("SYST")), vec![215]);
    assert_eq!(codes(&h.cmd("user FTP")), vec![331]);
    assert_eq!(codes(&h.cmd("PASS")), vec![230]);
    assert_eq!(codes(&h.cmd("USER anonymous")), vec![530]);
}

#[test]
fn pasv_names_the_service_address_and_skips_busy_ports() {
    let mut h = Host::logged_in();
    h.busy = (40000..=40008).collect();
    let out = h.cmd("PASV");
    assert_eq!(out[0], Action::OpenPassive { port: 40009 });
    assert_eq!(
        replies(&out),
        vec!["227 Entering Passive Mode (198,19,0,1,156,73)."]
    );
    // A second PASV closes the first listener and takes another port.
    h.busy = vec![];
    let again = h.cmd("PASV");
    assert_eq!(again[0], Action::CloseData);
    assert!(matches!(again[1], Action::OpenPassive { port } if port != 40009));
    h.busy = (40000..=40009).collect();
    assert_eq!(codes(&h.cmd("EPSV")), vec![425]);
}

#[test]
fn rest_sets_the_offset_of_the_next_retr_only() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    assert_eq!(
        replies(&h.cmd("REST 100")),
        vec!["350 Restarting at 100. Send RETR"]
    );
    assert_eq!(h.s.pending_rest(), Some(100));
    let retr = h.cmd("RETR 1k.bin");
    assert!(retr.contains(&Action::StartTransfer(DataKind::Retr {
        object: "1k.bin".into(),
        offset: 100,
        size: 1024
    })));
    assert_eq!(
        replies(&retr),
        vec!["150 Opening ASCII mode data connection for 1k.bin (924 bytes)"]
    );
    h.done();
    assert_eq!(h.s.pending_rest(), None);
    h.cmd("REST 5");
    h.cmd("NOOP");
    assert_eq!(h.s.pending_rest(), None, "another command cancels REST");
    h.cmd("REST 2000");
    assert_eq!(codes(&h.cmd("RETR 1k.bin")), vec![554]);
    assert_eq!(codes(&h.cmd("REST -1")), vec![501]);
}

#[test]
fn port_and_eprt_only_to_the_client_itself() {
    let mut h = Host::logged_in();
    assert_eq!(codes(&h.cmd("PORT 10,0,0,1,4,1")), vec![504]);
    assert_eq!(codes(&h.cmd("EPRT |1|198.18.0.11|5000|")), vec![504]);
    assert_eq!(
        codes(&h.cmd("PORT 198,18,0,10,0,25")),
        vec![504],
        "privileged port"
    );
    assert_eq!(h.s.counters().bounces, 3);
    assert_eq!(h.s.data(), Data::None);
    assert_eq!(codes(&h.cmd("EPRT |1|198.18.0.10|50001|")), vec![200]);
    let retr = h.cmd("RETR 1k.bin");
    assert_eq!(
        retr,
        vec![Action::ConnectActive {
            addr: addr("198.18.0.10:50001")
        }]
    );
    let go = h.s.data_connected(ip("198.18.0.10"), 0);
    assert_eq!(codes(&go), vec![150]);
    assert_eq!(codes(&h.done()), vec![226]);
    assert_eq!(codes(&h.cmd("PORT 198,18,0,10,195,81")), vec![200]);
    assert_eq!(codes(&h.cmd("EPRT |3|x|1|")), vec![522]);
    assert_eq!(codes(&h.cmd("EPRT |2|::1|1")), vec![501]);
}

#[test]
fn a_data_connection_from_another_address_is_refused() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.cmd("RETR 1k.bin");
    assert_eq!(
        h.s.data_connected(ip("198.18.0.99"), 0),
        vec![Action::RefuseData]
    );
    assert_eq!(h.s.counters().foreign_data, 1);
    // The listener stays for the client's own connection.
    assert_eq!(
        codes(&h.s.data_connected(ip("::ffff:198.18.0.10"), 0)),
        vec![150]
    );
}

#[test]
fn an_overlong_line_is_refused_and_the_session_goes_on() {
    let mut h = Host::logged_in();
    let long = format!("RETR {}\r\nNOOP\r\n", "a".repeat(200));
    let out = h.input(long.as_bytes());
    assert_eq!(codes(&out), vec![500, 200]);
    assert_eq!(h.s.counters().overlong, 1);
    // Split across calls too.
    let mut out = h.input("SIZE ".repeat(20).as_bytes());
    out.extend(h.input(b"x\r\nSIZE 1k.bin\r\n"));
    assert_eq!(codes(&out), vec![500, 213]);
}

#[test]
fn errors_are_500_501_502_504() {
    let mut h = Host::logged_in();
    assert_eq!(codes(&h.cmd("XYZZY")), vec![500]);
    assert_eq!(codes(&h.cmd("")), vec![500]);
    assert_eq!(codes(&h.cmd("STOR x")), vec![502]);
    assert_eq!(codes(&h.cmd("DELE 1k.bin")), vec![502]);
    assert_eq!(codes(&h.cmd("MODE B")), vec![504]);
    assert_eq!(codes(&h.cmd("MODE S")), vec![200]);
    assert_eq!(codes(&h.cmd("STRU F")), vec![200]);
    assert_eq!(codes(&h.cmd("TYPE E")), vec![504]);
    assert_eq!(codes(&h.cmd("TYPE L 8")), vec![200]);
    assert_eq!(codes(&h.cmd("RETR")), vec![501]);
    assert_eq!(codes(&h.cmd("RETR nope")), vec![550]);
    assert_eq!(codes(&h.cmd("RETR sub/1k.bin")), vec![550]);
    assert_eq!(
        codes(&h.cmd("RETR 1k.bin")),
        vec![425],
        "no data channel yet"
    );
    assert_eq!(codes(&h.cmd("CWD /pub")), vec![550]);
    assert_eq!(codes(&h.cmd("CWD /")), vec![250]);
    assert_eq!(codes(&h.cmd("CDUP")), vec![250]);
    assert_eq!(
        codes(&h.input(b"NOOP\xff\xfe\r\n")),
        vec![200],
        "IAC DONT stripped"
    );
    assert_eq!(codes(&h.input(b"NO\x01OP\r\n")), vec![500]);
    assert_eq!(codes(&h.cmd("OPTS UTF8 ON")), vec![200]);
    assert_eq!(codes(&h.cmd("OPTS MLST type")), vec![501]);
    assert_eq!(h.s.counters().rejected, 8);
}

#[test]
fn feat_lists_the_extensions() {
    let (mut h, _) = Host::new();
    let lines = replies(&h.cmd("FEAT"));
    assert_eq!(lines.first().map(String::as_str), Some("211-Features:"));
    assert_eq!(lines.last().map(String::as_str), Some("211 End"));
    for f in [" EPSV", " EPRT", " SIZE", " MDTM", " REST STREAM", " UTF8"] {
        assert!(lines.iter().any(|l| l == f), "{f} missing from {lines:?}");
    }
}

#[test]
fn size_and_mdtm() {
    let mut h = Host::logged_in();
    assert_eq!(replies(&h.cmd("MDTM 1k.bin")), vec!["213 20231114221320"]);
    assert_eq!(
        replies(&h.cmd("MDTM /100m.bin")),
        vec!["213 19700101000000"]
    );
    assert_eq!(replies(&h.cmd("SIZE 100m.bin")), vec!["213 104857600"]);
    assert_eq!(codes(&h.cmd("SIZE none")), vec![550]);
}

#[test]
fn listings_go_on_the_data_connection() {
    let mut h = Host::logged_in();
    for (cmd, want) in [
        ("NLST", "1k.bin\r\n100m.bin\r\n".to_string()),
        (
            "MLSD",
            "type=file;size=1024;modify=20231114221320;perm=r; 1k.bin\r\n\
             type=file;size=104857600;modify=19700101000000;perm=r; 100m.bin\r\n"
                .to_string(),
        ),
        (
            "LIST -la",
            "-r--r--r--   1 ftp      ftp              1024 Nov 14  2023 1k.bin\r\n\
             -r--r--r--   1 ftp      ftp         104857600 Jan  1  1970 100m.bin\r\n"
                .to_string(),
        ),
    ] {
        h.cmd("EPSV");
        h.s.data_connected(ip("198.18.0.10"), 0);
        let out = h.cmd(cmd);
        assert_eq!(codes(&out), vec![150], "{cmd}");
        assert!(
            out.contains(&Action::StartTransfer(DataKind::Listing(
                want.clone().into_bytes()
            ))),
            "{cmd}: {out:?}"
        );
        assert_eq!(codes(&h.done()), vec![226]);
    }
}

#[test]
fn names_with_line_breaks_are_not_listed() {
    let mut h = Host::logged_in();
    h.cat.push(crate::listing::Entry {
        name: "evil\r\n226 x".into(),
        size: 1,
        modified: 0,
    });
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    let out = h.cmd("NLST");
    assert!(out.contains(&Action::StartTransfer(DataKind::Listing(
        b"1k.bin\r\n100m.bin\r\n".to_vec()
    ))));
}

#[test]
fn idle_sessions_close_with_421_on_virtual_time() {
    let mut h = Host::logged_in();
    assert!(h.s.tick(9_999).is_empty());
    h.now = 5_000;
    h.cmd("NOOP");
    assert!(h.s.tick(14_999).is_empty(), "NOOP restarted the idle clock");
    let out = h.s.tick(15_000);
    assert_eq!(codes(&out), vec![421]);
    assert_eq!(out.last(), Some(&Action::Close));
    assert!(h.s.is_closed());
    assert!(h.cmd("NOOP").is_empty());
}

#[test]
fn a_transfer_is_not_idle() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    h.cmd("RETR 100m.bin");
    assert!(h.s.tick(1_000_000).is_empty());
    h.now = 1_000_000;
    assert_eq!(codes(&h.done()), vec![226]);
    assert!(h.s.tick(1_009_999).is_empty());
}

#[test]
fn a_data_connection_that_never_comes_does_not_hold_the_session() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.cmd("RETR 1k.bin");
    assert!(h.s.tick(9_999).is_empty());
    let out = h.s.tick(10_000);
    assert_eq!(out[0], Action::CloseData);
    assert_eq!(codes(&out), vec![421]);
    assert_eq!(out.last(), Some(&Action::Close));
}

#[test]
fn abor_stops_the_transfer_with_426_then_226() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    h.cmd("RETR 100m.bin");
    // As the BSD client sends it: IAC IP, IAC DM, ABOR.
    let out = h.input(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(out[0], Action::CloseData);
    assert_eq!(codes(&out), vec![426, 226]);
    assert_eq!(h.s.transfer(), None);
    assert_eq!(codes(&h.cmd("ABOR")), vec![225]);
}

#[test]
fn commands_during_a_transfer_wait_for_its_226() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    h.cmd("RETR 1k.bin");
    assert!(h.cmd("SIZE 1k.bin").is_empty());
    assert!(h.cmd("NOOP").is_empty());
    assert_eq!(codes(&h.done()), vec![226, 213, 200]);
    for _ in 0..3 {
        h.cmd("EPSV");
    }
    h.s.data_connected(ip("198.18.0.10"), 0);
    h.cmd("RETR 1k.bin");
    let mut out = Vec::new();
    for _ in 0..9 {
        out.extend(h.cmd("NOOP"));
    }
    assert_eq!(codes(&out), vec![421], "queue bounded");
    assert!(out.contains(&Action::CloseData));
}

#[test]
fn a_broken_data_connection_is_426_and_a_failed_connect_425() {
    let mut h = Host::logged_in();
    h.cmd("EPSV");
    h.s.data_connected(ip("198.18.0.10"), 0);
    h.cmd("RETR 1k.bin");
    let busy = h.busy.clone();
    let out = h.s.transfer_failed(0, &h.cat, &move |p| !busy.contains(&p));
    assert_eq!(codes(&out), vec![426]);
    h.cmd("EPRT |1|198.18.0.10|50001|");
    h.cmd("RETR 1k.bin");
    assert_eq!(codes(&h.s.data_connect_failed(0)), vec![425]);
    assert_eq!(h.s.data(), Data::None);
}

#[test]
fn ipv6_control_gets_epsv_not_pasv() {
    let (mut s, _) = crate::Session::new(
        super::config(),
        addr("[2001:2::10]:50000"),
        addr("[2001:2::1]:21"),
        0,
    );
    let cat = super::catalog();
    let free = |_p: u16| true;
    s.on_input(b"USER ftp\r\nPASS x\r\n", 0, &cat, &free);
    assert_eq!(codes(&s.on_input(b"PASV\r\n", 0, &cat, &free)), vec![502]);
    assert_eq!(codes(&s.on_input(b"EPSV\r\n", 0, &cat, &free)), vec![229]);
    assert_eq!(
        codes(&s.on_input(b"EPRT |2|2001:2::10|5000|\r\n", 0, &cat, &free)),
        vec![200]
    );
    assert_eq!(
        codes(&s.on_input(b"EPRT |2|2001:2::11|5000|\r\n", 0, &cat, &free)),
        vec![504]
    );
}

proptest! {
    /// Any bytes: no panic, every reply line well formed, and the same
    /// actions however the input is split into segments.
    #[test]
    fn any_input_any_split(input in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
        let (mut whole, _) = Host::new();
        let a = whole.input(&input);
        let (mut split, _) = Host::new();
        let cut = cut.min(input.len());
        let mut b = split.input(&input[..cut]);
        b.extend(split.input(&input[cut..]));
        prop_assert_eq!(&a, &b);
        for line in replies(&a) {
            prop_assert!(line.len() >= 3 && line[..3].bytes().all(|c| c.is_ascii_digit()) || line.starts_with(' '));
        }
    }

    /// Command lines from the grammar's alphabet, logged in.
    #[test]
    fn command_like_lines(lines in proptest::collection::vec("(RETR|REST|EPSV|PASV|PORT|EPRT|LIST|ABOR|SIZE|TYPE|CWD|NOOP) [ -~]{0,30}", 0..20)) {
        let mut h = Host::logged_in();
        for l in &lines {
            let out = h.cmd(l);
            if let Some(Action::ConnectActive { addr }) = out.iter().find(|a| matches!(a, Action::ConnectActive { .. })) {
                prop_assert_eq!(addr.ip(), "198.18.0.10".parse::<IpAddr>().unwrap());
                prop_assert!(addr.port() >= 1024);
            }
            if let Some(Action::OpenPassive { port }) = out.iter().find(|a| matches!(a, Action::OpenPassive { .. })) {
                prop_assert!((40000..=40009).contains(port));
            }
        }
    }
}
