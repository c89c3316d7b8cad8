//! Writes the seed inputs of every target into `fuzz/corpus/<target>/`
//! (`seed-*` files), each built by the workspace's own code: frames by the
//! wire emitters, requests as curl, wget and ab send them, slots by the
//! slot writer, datagrams by a real replicator, Raft messages by the
//! transport's encoder. Run it again when a format changes:
//!
//!     cd fuzz && cargo run --example seeds
//!
//! It is built without instrumentation and outside the test suite.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_dataplane::tcp::{Flags, Options, OutSegment, SeqNum};
use baton_dataplane::wire::arp::{self, ArpPacket};
use baton_dataplane::wire::ethernet::{self, EthernetHeader, MacAddr};
use baton_dataplane::wire::{icmpv6, ipv4, ipv6, tcp, udp};
use baton_fuzz::worker::{
    BOX_MAC, CLIENT, CLIENT6, CLIENT_MAC, RESTORED_PORT, RESTORED_RCV_NXT, RESTORED_SND_UNA,
    SERVICE, SERVICE6,
};
use baton_fuzz::{join_records, replication};
use baton_raft::codec::Writer;
use baton_shmem::{
    AppBlock, ConnRecord, DatagramSocket, Endpoint, Layout, ReplicationConfig, Replicator, SlotId,
    TcpBlock, Transport, UploadBlock, APP_PROTOCOL_HTTP,
};
use bytes::Bytes;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut n = 0;
    let mut put = |target: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let dir: PathBuf = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        n += 1;
        Ok(())
    };
    for (name, f) in frames()? {
        put("wire", name, &[&[0u8][..], &f].concat())?;
    }
    for (name, input) in worker_inputs()? {
        put("worker", name, &input)?;
    }
    for (name, r) in requests() {
        put("http_request", name, r.as_bytes())?;
    }
    let example = include_str!("../../config/baton.example.toml");
    for (name, input) in baton_fuzz::config_file::seeds(example) {
        put("config_file", &name, &input)?;
    }
    for (name, input) in baton_fuzz::tls_records::seeds() {
        put("tls_records", &name, &input)?;
    }
    for (name, r) in rtsp_requests() {
        let mut input = r.as_bytes().to_vec();
        if name == "ffmpeg-tcp" {
            // The player's RTCP receiver report, interleaved on channel 1.
            input.extend_from_slice(&[b'$', 1, 0, 8, 0x81, 201, 0, 1, 0, 0, 0, 1]);
        }
        put("rtsp", name, &input)?;
    }
    // An RTP flow's checkpoint record mid-stream, as a survivor reads it.
    let mut flow = baton_rtsp::RtpFlow::new(baton_rtsp::FlowConfig::default(), 7, 65_000, 1, 0);
    let object: Vec<u8> = (0..40u64)
        .flat_map(|i| {
            baton_rtsp::ts::build_packet(0x100, i as u8, (i % 5 == 0).then_some(i * 54_000), 0)
        })
        .collect();
    flow.seek(&object, 0, 0);
    let mut out = Vec::new();
    for now in (0..200_000).step_by(1000) {
        flow.poll_transmit(now, &object, &mut out);
    }
    put("rtsp", "flow-record", &flow.checkpoint().encode())?;
    for (name, slot) in slots()? {
        put("record", name, &slot)?;
    }
    for (name, input) in datagrams()? {
        put("replication", name, &input)?;
    }
    for (i, m) in messages().iter().enumerate() {
        let mut w = Writer::default();
        m.encode_body(&mut w);
        put(
            "raft_message",
            &format!("{i:02}"),
            &[&[m.kind()][..], &w.into_inner()].concat(),
        )?;
    }
    for (name, input) in ftp_sessions() {
        put("ftp_control", name, &input)?;
    }
    println!("wrote {n} seeds under {}", root.display());
    Ok(())
}

// ---- ftp --------------------------------------------------------------

/// FTP sessions as curl (EPSV, REST) and an active-mode client drive them,
/// with host events between the commands, and a checkpoint taken mid-RETR
/// then restored (control byte 6: the two records back to back).
fn ftp_sessions() -> Vec<(&'static str, Vec<u8>)> {
    let cmds = |c: &str| (0u8, c.as_bytes().to_vec());
    let curl = [
        cmds("USER anonymous\r\nPASS ftp@example.com\r\nPWD\r\nEPSV\r\n"),
        (2, vec![0]),
        cmds("TYPE I\r\nSIZE 1k.bin\r\nREST 100\r\nRETR 1k.bin\r\n"),
        (7, vec![]),
        (3, vec![]),
        cmds("QUIT\r\n"),
    ];
    let active = [
        cmds("USER ftp\r\nPASS x\r\nEPRT |1|198.18.0.10|50001|\r\nMLSD\r\n"),
        (2, vec![0]),
        (3, vec![]),
        cmds("PORT 10,0,0,1,4,1\r\nPASV\r\nLIST\r\n"),
        (2, vec![1]),
        (5, vec![0xff, 0xff]),
    ];
    let mut restore = Vec::new();
    let (mut s, _) = baton_ftp::Session::new(
        baton_ftp::Config::default(),
        "198.18.0.10:50000".parse().expect("addr"),
        "198.19.0.1:21".parse().expect("addr"),
        0,
    );
    let cat = vec![baton_ftp::Entry {
        name: "1k.bin".into(),
        size: 1024,
        modified: 0,
    }];
    let free = |_p: u16| true;
    s.on_input(
        b"USER ftp\r\nPASS x\r\nEPSV\r\nRETR 1k.bin\r\n",
        0,
        &cat,
        &free,
    );
    s.data_connected("198.18.0.10".parse().expect("ip"), 0);
    if let Ok((c, Some(d))) = s.checkpoint(7) {
        if let Ok(db) = d.encode() {
            restore = [&c.encode()[..], &db[..]].concat();
        }
    }
    let restored = [(6u8, restore), (3, vec![]), cmds("NOOP\r\n")];
    let join = |items: &[(u8, Vec<u8>)]| {
        let refs: Vec<(u8, &[u8])> = items.iter().map(|(c, b)| (*c, &b[..])).collect();
        join_records(&refs)
    };
    vec![
        ("curl-epsv-rest", join(&curl)),
        ("active-and-bounce", join(&active)),
        ("restore-mid-retr", join(&restored)),
    ]
}

// ---- frames -----------------------------------------------------------

fn tcp_frame(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: Flags,
    opts: Options,
    payload: &[u8],
) -> Result<Vec<u8>> {
    let seg = OutSegment {
        src_port,
        dst_port,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65_535,
        options: opts,
        payload: if payload.is_empty() {
            vec![]
        } else {
            vec![Bytes::copy_from_slice(payload)]
        },
    };
    let mut f = vec![0u8; 2048];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV4,
        },
    )?;
    let t = tcp::emit(
        &mut f[e + 20..],
        IpAddr::V4(CLIENT),
        IpAddr::V4(SERVICE),
        &seg,
    )?;
    ipv4::emit(&mut f[e..], CLIENT, SERVICE, ipv4::PROTO_TCP, 7, t)?;
    f.truncate(e + 20 + t);
    Ok(f)
}

fn arp_frame(op: u16, dst: MacAddr) -> Result<Vec<u8>> {
    let mut f = vec![0u8; 60];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_ARP,
        },
    )?;
    arp::emit(
        &mut f[e..],
        &ArpPacket {
            op,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT,
            target_mac: MacAddr([0; 6]),
            target_ip: SERVICE,
        },
    )?;
    Ok(f)
}

fn icmp_echo() -> Result<Vec<u8>> {
    let mut f = vec![0u8; 14 + 20 + 16];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV4,
        },
    )?;
    let icmp = &mut f[e + 20..];
    icmp[0] = 8; // echo request
    icmp[4..8].copy_from_slice(&[0, 1, 0, 1]);
    icmp[8..].copy_from_slice(b"pingping");
    let c = baton_dataplane::wire::checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4::emit(&mut f[e..], CLIENT, SERVICE, ipv4::PROTO_ICMP, 9, 16)?;
    Ok(f)
}

fn flags(syn: bool, ack: bool, fin: bool, rst: bool, psh: bool) -> Flags {
    Flags {
        syn,
        ack,
        fin,
        rst,
        psh,
        ..Flags::default()
    }
}

const GET: &[u8] =
    b"GET /1K.bin HTTP/1.1\r\nHost: box\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

fn frames() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let syn_opts = Options {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((1, 0)),
        ..Options::default()
    };
    let sack = Options {
        timestamps: Some((5, 9)),
        sack_blocks: [
            Some((SeqNum(10), SeqNum(20))),
            Some((SeqNum(30), SeqNum(40))),
            None,
            None,
        ],
        ..Options::default()
    };
    let (r, u, p) = (RESTORED_RCV_NXT, RESTORED_SND_UNA, RESTORED_PORT);
    let quoted = ipv6_syn(Options::default())?;
    Ok(vec![
        (
            "syn",
            tcp_frame(
                50_000,
                80,
                777,
                0,
                flags(true, false, false, false, false),
                syn_opts,
                b"",
            )?,
        ),
        (
            "get",
            tcp_frame(
                p,
                80,
                r,
                u,
                flags(false, true, false, false, true),
                Options::default(),
                GET,
            )?,
        ),
        (
            "ack-sack",
            tcp_frame(
                p,
                80,
                r,
                u,
                flags(false, true, false, false, false),
                sack,
                b"",
            )?,
        ),
        (
            "fin",
            tcp_frame(
                p,
                80,
                r,
                u,
                flags(false, true, true, false, false),
                Options::default(),
                b"",
            )?,
        ),
        (
            "rst",
            tcp_frame(
                p,
                80,
                r,
                0,
                flags(false, false, false, true, false),
                Options::default(),
                b"",
            )?,
        ),
        (
            "arp-request",
            arp_frame(arp::OP_REQUEST, ethernet::BROADCAST)?,
        ),
        ("arp-reply", baton_fuzz::worker::arp_reply()),
        ("icmp-echo", icmp_echo()?),
        ("ipv6-syn", ipv6_syn(syn_opts)?),
        ("ipv6-ext-syn", ipv6_with_extensions(ipv6_syn(syn_opts)?)),
        (
            "icmpv6-echo",
            icmpv6_frame(
                |b| {
                    let n = icmpv6::emit_echo_reply(b, CLIENT6, SERVICE6, 1, 1, b"pingping")?;
                    b[0] = icmpv6::TYPE_ECHO_REQUEST;
                    Ok(n)
                },
                64,
            )?,
        ),
        (
            "icmpv6-ns",
            icmpv6_frame(
                |b| {
                    let group = ipv6::solicited_node(SERVICE6);
                    icmpv6::emit_neighbor_solicitation(
                        b,
                        CLIENT6,
                        group,
                        SERVICE6,
                        Some(CLIENT_MAC),
                    )
                },
                255,
            )?,
        ),
        (
            "icmpv6-na",
            icmpv6_frame(
                |b| {
                    let flags = icmpv6::NaFlags {
                        override_: true,
                        solicited: true,
                        router: false,
                    };
                    icmpv6::emit_neighbor_advertisement(
                        b,
                        CLIENT6,
                        SERVICE6,
                        CLIENT6,
                        flags,
                        Some(CLIENT_MAC),
                    )
                },
                255,
            )?,
        ),
        (
            "icmpv6-ptb",
            icmpv6_frame(
                |b| icmpv6::emit_packet_too_big(b, CLIENT6, SERVICE6, 1280, &quoted[14..]),
                64,
            )?,
        ),
        // An RTCP receiver report from a player to the server's RTCP port.
        (
            "udp-rtcp-rr",
            udp_frame(5001, 6971, &[0x81, 201, 0, 7, 0, 0, 0, 1])?,
        ),
    ])
}

fn eth6(f: &mut [u8]) -> Result<usize> {
    Ok(ethernet::emit(
        f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV6,
        },
    )?)
}

fn ipv6_syn(opts: Options) -> Result<Vec<u8>> {
    let seg = OutSegment {
        src_port: 50_000,
        dst_port: 80,
        seq: SeqNum(777),
        flags: flags(true, false, false, false, false),
        window: 65_535,
        options: opts,
        ..OutSegment::default()
    };
    let mut f = vec![0u8; 256];
    let e = eth6(&mut f)?;
    let t = tcp::emit(&mut f[e + 40..], CLIENT6.into(), SERVICE6.into(), &seg)?;
    ipv6::emit(&mut f[e..], CLIENT6, SERVICE6, ipv6::PROTO_TCP, 64, t)?;
    f.truncate(e + 40 + t);
    Ok(f)
}

/// `f` (an IPv6 frame without extension headers) with hop-by-hop and
/// destination options inserted before its upper-layer header.
fn ipv6_with_extensions(f: Vec<u8>) -> Vec<u8> {
    let (head, l4) = f.split_at(14 + 40);
    let mut out = head.to_vec();
    let next = out[14 + 6];
    out[14 + 6] = ipv6::NEXT_HOP_BY_HOP;
    out.extend_from_slice(&[ipv6::NEXT_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
    out.extend_from_slice(&[next, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(l4);
    let len = (out.len() - 14 - 40) as u16;
    out[14 + 4..14 + 6].copy_from_slice(&len.to_be_bytes());
    out
}

fn icmpv6_frame(
    body: impl Fn(&mut [u8]) -> std::result::Result<usize, baton_dataplane::wire::WireError>,
    hop_limit: u8,
) -> Result<Vec<u8>> {
    let mut f = vec![0u8; 1600];
    let e = eth6(&mut f)?;
    let n = body(&mut f[e + 40..])?;
    let dst = match f[e + 40] {
        icmpv6::TYPE_NEIGHBOR_SOLICITATION => ipv6::solicited_node(SERVICE6),
        _ => SERVICE6,
    };
    ipv6::emit(&mut f[e..], CLIENT6, dst, ipv6::PROTO_ICMPV6, hop_limit, n)?;
    f.truncate(e + 40 + n);
    // The bodies are sealed for their own addresses; the fuzz target's
    // checksum fixer makes them whole for these (control byte bit 0).
    baton_fuzz::frames::fix_checksums(&mut f);
    Ok(f)
}

fn udp_frame(src_port: u16, dst_port: u16, payload: &[u8]) -> Result<Vec<u8>> {
    let mut f = vec![0u8; 2048];
    let e = ethernet::emit(
        &mut f,
        &EthernetHeader {
            dst: BOX_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV4,
        },
    )?;
    let u = udp::emit(
        &mut f[e + 20..],
        IpAddr::V4(CLIENT),
        IpAddr::V4(SERVICE),
        src_port,
        dst_port,
        payload,
    )?;
    ipv4::emit(&mut f[e..], CLIENT, SERVICE, udp::PROTOCOL, 7, u)?;
    f.truncate(e + 20 + u);
    Ok(f)
}

fn worker_inputs() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let f: std::collections::HashMap<_, _> = frames()?.into_iter().collect();
    let (r, u, p) = (RESTORED_RCV_NXT, RESTORED_SND_UNA, RESTORED_PORT);
    // The answer to the GET starts at SND.UNA; acknowledge all of it.
    let ack_all = tcp_frame(
        p,
        80,
        r + GET.len() as u32,
        u + 1300,
        flags(false, true, false, false, false),
        Options::default(),
        b"",
    )?;
    let dup = tcp_frame(
        p,
        80,
        r + GET.len() as u32,
        u,
        flags(false, true, false, false, false),
        Options::default(),
        b"",
    )?;
    let mut out = vec![];
    for name in [
        "syn",
        "arp-request",
        "icmp-echo",
        "rst",
        "fin",
        "ipv6-syn",
        "ipv6-ext-syn",
        "icmpv6-echo",
        "icmpv6-ns",
        "icmpv6-na",
        "icmpv6-ptb",
    ] {
        out.push((name, join_records(&[(0, &f[name][..])])));
    }
    // Control bytes (see baton_fuzz::worker::run): 1 fix checksums, 4
    // answer the box's last segment, 8 × n: n × 32 ms later.
    out.push((
        "get-ack",
        join_records(&[
            (0, &f["get"][..]),
            (8 | 4 | 1, &ack_all[..]),
            (4 | 1, &f["fin"][..]),
        ]),
    ));
    // A new connection: the handshake completed by answering the SYN-ACK,
    // a request, the client acknowledging the answer, then closing.
    let ack = |payload: &[u8], fin: bool| {
        tcp_frame(
            50_000,
            80,
            0,
            0,
            flags(false, true, fin, false, !payload.is_empty()),
            Options::default(),
            payload,
        )
    };
    out.push((
        "handshake-get",
        join_records(&[
            (0, &f["syn"][..]),
            (4 | 1, &ack(b"", false)?[..]),
            (4 | 1, &ack(GET, false)?[..]),
            (8 | 4 | 1, &ack(b"", false)?[..]),
            (4 | 1, &ack(b"", true)?[..]),
            (64 | 4 | 1, &ack(b"", false)?[..]),
        ]),
    ));
    out.push((
        "get-dupacks",
        join_records(&[
            (0, &f["get"][..]),
            (0, &dup[..]),
            (0, &dup[..]),
            (0, &dup[..]),
            (255, &f["ack-sack"][..]),
        ]),
    ));
    out.push((
        "get-trusted",
        join_records(&[(2, &f["get"][..]), (2 | 200, &f["rst"][..])]),
    ));
    Ok(out)
}

// ---- HTTP requests ----------------------------------------------------

fn requests() -> Vec<(&'static str, &'static str)> {
    vec![
        ("curl", "GET /1K.bin HTTP/1.1\r\nHost: 198.18.0.11\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
        ("curl-range", "GET /big.bin HTTP/1.1\r\nHost: 198.18.0.11\r\nRange: bytes=100-\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nIf-Range: \"abc\"\r\n\r\n"),
        ("wget", "GET /a/b?x=1&y=%20 HTTP/1.1\r\nUser-Agent: Wget/1.21.3\r\nAccept: */*\r\nAccept-Encoding: identity\r\nHost: 198.18.0.11\r\nConnection: Keep-Alive\r\n\r\n"),
        ("ab", "GET /1K.bin HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 198.18.0.11\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n"),
        ("conditional", "HEAD /o HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\", W/\"b\"\r\nIf-None-Match: \"c\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-Match: *\r\nIf-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"),
        ("post", "POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"),
        ("put", "PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        ("chunked", "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("absolute", "GET http://h:8080/p?q HTTP/1.1\r\nHost: h:8080\r\nConnection: close\r\n\r\n"),
        ("pipelined", "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("options", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("plus-length", "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"),
        ("te-gzip", "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("te-and-cl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n"),
        ("bare-lf", "GET / HTTP/1.1\nHost: h\nX: 1\nContent-Length: 5\r\n\r\n"),
        ("bare-cr", "GET / HTTP/1.1\r\nHost: h\r\nX: 1\rContent-Length: 5\r\n\r\n"),
        ("http2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("http12", "GET /v HTTP/1.2\r\nHost: h\r\n\r\n"),
        ("http09", "GET /v\r\n\r\n"),
        ("underscore-length", "POST / HTTP/1.1\r\nHost: h\r\nContent_Length: 5\r\n\r\nhello"),
        ("fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("version-twice", "GET / HTTP/2.0 HTTP/1.2\r\nHost: h\r\n\r\n"),
        ("bad-host", "GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n"),
        ("te-te", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: cow\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"),
        ("blank-lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: [2001:2::11]:80\r\n\r\n"),
    ]
}

// ---- checkpoint slots -------------------------------------------------

fn slots() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let seg = baton_fuzz::record::scratch_segment(
        "seeds",
        Layout {
            regions: 2,
            slots_per_region: 1,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    );
    let region = seg.region(baton_fuzz::record::REGION)?;
    let local = Endpoint::from(SocketAddr::new(IpAddr::V4(SERVICE), 80));
    let remote = |port| Endpoint::from(SocketAddr::new(IpAddr::V4(CLIENT), port));
    let tcpb = TcpBlock {
        iss: 1000,
        irs: 5000,
        snd_una: 90_000,
        snd_nxt: 91_000,
        rcv_nxt: 5100,
        snd_wnd: 65_535,
        rcv_wnd: 65_535,
        mss: 1460,
        snd_wscale: 7,
        rcv_wscale: 7,
        sack_permitted: true,
        timestamps: true,
        ts_recent: 3,
        ts_last_sent: 4,
        tcp_state: 4,
        acks_covered: true,
    };
    let app200 = AppBlock {
        object_start_seq: 89_000,
        version: 1,
        method: 1,
        status: 200,
        body_len: Some(100_000),
        name: "/videos/a.mp4?sig=0123456789abcdef",
        etag: Some("\"5f3a-1c\""),
        last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
        range_start: None,
        range_end: None,
        persistent: true,
        bytes_sent: 1000,
        request_count: 2,
        upload: None,
    };
    let app206 = AppBlock {
        status: 206,
        body_len: Some(9900),
        range_start: Some(100),
        range_end: Some(9999),
        ..app200
    };
    let upload = AppBlock {
        etag: None,
        last_modified: None,
        method: 3,
        status: 0,
        body_len: None,
        upload: Some(UploadBlock {
            body_start_seq: 5200,
            content_length: 100_000,
            received: 4000,
            forwarded: false,
            content_type: Some("application/octet-stream"),
        }),
        ..app200
    };
    let rec = |port, app: Option<AppBlock<'static>>| ConnRecord {
        owner: baton_fuzz::record::REGION,
        worker: 0,
        epoch: 3,
        checkpoint_ms: 1_700_000_000_000,
        local,
        remote: remote(port),
        transport: Transport::Tcp,
        app_protocol: APP_PROTOCOL_HTTP,
        tcp: Some(tcpb),
        app,
        app_lost: false,
        tls: None,
        app_state: None,
    };
    let udp = ConnRecord {
        transport: Transport::Udp,
        tcp: None,
        app: None,
        ..rec(1, None)
    };
    let bundles: Vec<(&'static str, Vec<ConnRecord<'static>>)> = vec![
        ("tcp-only", vec![rec(40_001, None)]),
        ("response-200", vec![rec(40_002, Some(app200))]),
        ("response-206", vec![rec(40_003, Some(app206))]),
        ("upload", vec![rec(40_004, Some(upload))]),
        ("udp", vec![udp]),
        (
            "bundle-4",
            vec![
                rec(40_005, Some(app200)),
                rec(40_006, None),
                rec(40_007, None),
                udp,
            ],
        ),
    ];
    let mut out = vec![];
    let mut w = region.writer();
    for (name, b) in bundles {
        w.write(SlotId(0), &b)?;
        let v = region.read(SlotId(0))?.ok_or("slot empty after a write")?;
        out.push((name, v.bytes().to_vec()));
    }
    Ok(out)
}

// ---- replication datagrams ---------------------------------------------

/// Datagrams sent, with their destination.
type Sent = Vec<(SocketAddr, Vec<u8>)>;

/// Records every datagram sent, for the seeds.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Sent>>);

impl DatagramSocket for Capture {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.push((to, buf.to_vec()));
        }
        Ok(buf.len())
    }
    fn recv_from(&self, _: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn set_read_timeout(&self, _: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
}

fn datagrams() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let layout = Layout {
        regions: 3,
        slots_per_region: 4,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    let a0: SocketAddr = SocketAddr::from(([192, 0, 2, 0], 7700));
    let a1: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 7700));
    let a2: SocketAddr = SocketAddr::from(([192, 0, 2, 2], 7700));
    // Box 1 (the target's peer) with records in its region, and box 0 (the
    // target itself), whose requests make box 1 send snapshot chunks.
    let seg1 = baton_fuzz::record::scratch_segment("seeds1", layout);
    let seg0 = baton_fuzz::record::scratch_segment("seeds0", layout);
    let own = seg1.region(1)?;
    own.begin_epoch();
    own.heartbeat(1_700_000_000_000);
    let (c1, c0) = (Capture::default(), Capture::default());
    let cfg = |me, peers| ReplicationConfig {
        me,
        key: replication::KEY.to_vec(),
        peers,
    };
    let mut r1 = Replicator::new(&seg1, cfg(1, vec![(0, a0), (2, a2)]), c1.clone())?;
    let mut r0 = Replicator::new(&seg0, cfg(0, vec![(1, a1), (2, a2)]), c0.clone())?;
    let tcpb = TcpBlock {
        iss: 1,
        irs: 2,
        snd_una: 3,
        snd_nxt: 4,
        rcv_nxt: 5,
        snd_wnd: 6,
        rcv_wnd: 7,
        mss: 1460,
        snd_wscale: 0,
        rcv_wscale: 0,
        sack_permitted: false,
        timestamps: false,
        ts_recent: 0,
        ts_last_sent: 0,
        tcp_state: 4,
        acks_covered: false,
    };
    let rec = ConnRecord {
        owner: 1,
        worker: 0,
        epoch: 1,
        checkpoint_ms: 1,
        local: Endpoint::from(SocketAddr::new(IpAddr::V4(SERVICE), 80)),
        remote: Endpoint::from(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)),
            4000,
        )),
        transport: Transport::Tcp,
        app_protocol: APP_PROTOCOL_HTTP,
        tcp: Some(tcpb),
        app: None,
        app_lost: false,
        tls: None,
        app_state: None,
    };
    let mut slots = seg1.region(1)?.worker_slots(0, 1)?;
    let mut w = slots.writer();
    for _ in 0..2 {
        let s = slots.alloc().ok_or("region full")?;
        w.write(s, &[rec])?;
    }
    // Updates and a heartbeat from box 1; box 0 hears only the heartbeat
    // (the updates "lost"), asks for a snapshot, box 1 answers it.
    r1.tick(1_700_000_000_000)?;
    let first: Vec<Vec<u8>> = take_to(&c1, a0);
    for d in first.iter().filter(|d| d[5] != 1) {
        r0.handle(d, a1, 1_700_000_000_010)?;
    }
    r0.tick(1_700_000_000_020)?;
    for d in take_to(&c0, a1) {
        r1.handle(&d, a0, 1_700_000_000_030)?;
    }
    let chunks = take_to(&c1, a0);
    let mut out = vec![];
    let as_input = |ds: &[Vec<u8>], strip: bool| -> Vec<u8> {
        let items: Vec<(u8, &[u8])> = ds
            .iter()
            .map(|d| {
                if strip {
                    (1u8, &d[..d.len() - 32])
                } else {
                    (0u8, &d[..])
                }
            })
            .collect();
        join_records(&items)
    };
    out.push(("updates", as_input(&first, false)));
    out.push(("updates-unsealed", as_input(&first, true)));
    out.push((
        "snapshot",
        as_input(&[first.clone(), chunks.clone()].concat(), false),
    ));
    out.push((
        "snapshot-unsealed",
        as_input(&[first, chunks].concat(), true),
    ));
    Ok(out)
}

fn take_to(c: &Capture, to: SocketAddr) -> Vec<Vec<u8>> {
    let Ok(mut v) = c.0.lock() else { return vec![] };
    v.drain(..)
        .filter(|(a, _)| *a == to)
        .map(|(_, d)| d)
        .collect()
}

// ---- Raft messages: the codec tests' samples -------------------------

#[path = "../../raft/tests/samples/mod.rs"]
mod raft_samples;
use raft_samples::messages;

/// A whole session as ffmpeg drives one (UDP and interleaved), and bad
/// input the server must refuse.
fn rtsp_requests() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ffmpeg-udp", "OPTIONS rtsp://198.18.0.11:554/clip.ts RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf60.16.100\r\n\r\nDESCRIBE rtsp://198.18.0.11:554/clip.ts RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n\r\nSETUP rtsp://198.18.0.11:554/clip.ts/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=5000-5001\r\nCSeq: 3\r\n\r\nPLAY rtsp://198.18.0.11:554/clip.ts/ RTSP/1.0\r\nRange: npt=0.000-\r\nCSeq: 4\r\nSession: 00000000CAFEF00D\r\n\r\nGET_PARAMETER rtsp://198.18.0.11:554/clip.ts/ RTSP/1.0\r\nCSeq: 5\r\nSession: 00000000CAFEF00D\r\n\r\nPAUSE rtsp://198.18.0.11:554/clip.ts/ RTSP/1.0\r\nCSeq: 6\r\nSession: 00000000CAFEF00D\r\n\r\nTEARDOWN rtsp://198.18.0.11:554/clip.ts/ RTSP/1.0\r\nCSeq: 7\r\nSession: 00000000CAFEF00D\r\n\r\n"),
        ("ffmpeg-tcp", "SETUP rtsp://198.18.0.11/clip.ts/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n\r\nPLAY rtsp://198.18.0.11/clip.ts/ RTSP/1.0\r\nRange: npt=10-\r\nCSeq: 4\r\nSession: 00000000CAFEF00D\r\n\r\n"),
        ("third-party", "SETUP rtsp://198.18.0.11/clip.ts/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP;unicast;destination=192.0.2.9;client_port=5000-5001\r\nCSeq: 3\r\n\r\n"),
        ("unknown-session", "PLAY rtsp://198.18.0.11/clip.ts RTSP/1.0\r\nCSeq: 4\r\nSession: DEADBEEF\r\n\r\n"),
        ("bad-version", "OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n"),
        ("body", "GET_PARAMETER rtsp://198.18.0.11/clip.ts RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 9\r\n\r\nposition\n"),
    ]
}
