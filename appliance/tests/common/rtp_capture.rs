//! The RTP capture of the RTSP lab tests (lab_rtsp, lab_rtsp_takeover):
//! a tcpdump of UDP in the client namespace and the datagrams of its pcap
//! file. Knows pcap and UDP, not RTP's rules (the tests check those).
#![allow(dead_code)]

use std::fs;

use super::common::LabGuard;

/// One UDP datagram of a capture: source port and payload.
pub struct Datagram {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
    /// When the capture saw it (µs since the epoch).
    pub at_us: u64,
}

/// The IPv4 UDP datagrams of a classic pcap file (Ethernet link type, as
/// tcpdump -w writes it).
pub fn udp_datagrams(path: &std::path::Path) -> Vec<Datagram> {
    let file = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(file.len() >= 24, "no pcap header in {}", path.display());
    let le = match &file[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        m => panic!("not a pcap file: magic {m:02x?}"),
    };
    let u32_at = |b: &[u8], i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    assert_eq!(u32_at(&file, 20), 1, "link type is not Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let incl = u32_at(&file, at + 8) as usize;
        let at_us = u64::from(u32_at(&file, at)) * 1_000_000 + u64::from(u32_at(&file, at + 4));
        let frame = &file[at + 16..(at + 16 + incl).min(file.len())];
        at += 16 + incl;
        // IPv4 (header length from IHL) or IPv6 (a fixed 40-byte header,
        // UDP right behind it: the box sends no extension headers).
        let udp_range = match frame.get(12..14) {
            Some([0x08, 0x00]) if frame.len() >= 14 + 20 => {
                let ip = &frame[14..];
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                (ip[9] == 17 && ip.len() >= total && total >= ihl + 8)
                    .then(|| (14 + ihl, 14 + total))
            }
            Some([0x86, 0xdd]) if frame.len() >= 14 + 40 + 8 => {
                let ip = &frame[14..];
                let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                (ip[6] == 17 && ip.len() >= 40 + payload && payload >= 8)
                    .then(|| (14 + 40, 14 + 40 + payload))
            }
            _ => None,
        };
        let Some((from, to)) = udp_range else {
            continue;
        };
        let udp = &frame[from..to];
        out.push(Datagram {
            src_port: u16::from_be_bytes([udp[0], udp[1]]),
            dst_port: u16::from_be_bytes([udp[2], udp[3]]),
            payload: udp[8..].to_vec(),
            at_us,
        });
    }
    out
}

/// A tcpdump of the RTP in the client namespace with a 32 MiB buffer: the
/// shared `Capture`'s default one lost packets to a loaded machine (the
/// kernel's "packets dropped" count), which read as sequence gaps. A
/// capture that still drops fails the test as such.
pub struct RtpCapture {
    child: std::process::Child,
    file: std::path::PathBuf,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl RtpCapture {
    pub fn start(g: &LabGuard, name: &str, filter: &str) -> RtpCapture {
        use std::io::BufRead;
        let file = g.file(name);
        let _ = fs::remove_file(&file);
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &format!("{}-client", g.prefix)])
            .args([
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-U",
                "--immediate-mode",
                "-B",
                "32768",
                "-w",
            ])
            .arg(&file)
            .arg(filter)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tcpdump is not installed (scripts/test installs it)");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("tcpdump did not start listening within 10 s");
            if line.contains("listening on") {
                break;
            }
        }
        RtpCapture {
            child,
            file,
            stderr: rx,
        }
    }

    /// Stops the capture and returns its UDP datagrams; fails when tcpdump
    /// says the kernel dropped any.
    pub fn finish(mut self) -> Vec<Datagram> {
        std::thread::sleep(std::time::Duration::from_millis(500));
        // SAFETY: SIGINT to our own child, so tcpdump flushes its file.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        // Until EOF: tcpdump prints its counts as it exits.
        let said: Vec<String> = self.stderr.iter().collect();
        let dropped = said
            .iter()
            .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("tcpdump did not report its drops: {said:?}"));
        assert_eq!(
            dropped, 0,
            "the capture lost packets (not the box): {said:?}"
        );
        udp_datagrams(&self.file)
    }
}
