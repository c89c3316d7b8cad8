//! The XDP program that steers an interface's frames into our AF_XDP
//! sockets: an XSKMAP, five BPF instructions assembled here and loaded
//! with bpf(2) (no compiler, no libbpf), attached through a BPF link.
//!
//! The program is `return bpf_redirect_map(&xsks, ctx->rx_queue_index,
//! XDP_PASS);`: a frame goes to the socket registered for its RX queue,
//! or on to the kernel's stack when there is none (the lower bits of the
//! helper's flags are its return value on a miss).
//!
//! Why a link and not netlink (`ip link set xdp`): a netlink-attached
//! program stays on the interface after its process dies, and a stale
//! program on a lab veth would swallow the next run's frames into a map
//! nobody reads. A link is a file descriptor: when the process exits or
//! is killed, the kernel closes it and detaches the program. An XDP
//! program attached by other means (another tool, netlink) makes the link
//! fail with `EBUSY`: we report it ([`AfXdpError::XdpBusy`]) rather than
//! replace what we did not attach.
//!
//! This module knows nothing of sockets or rings beyond the descriptor it
//! puts in the map.

use super::abi::{
    bpf, bpf_fd, BpfAttr, BPF_FUNC_REDIRECT_MAP, BPF_LINK_CREATE, BPF_MAP_CREATE,
    BPF_MAP_TYPE_XSKMAP, BPF_MAP_UPDATE_ELEM, BPF_PROG_LOAD, BPF_PROG_TYPE_XDP, BPF_PSEUDO_MAP_FD,
    BPF_XDP, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_MD_RX_QUEUE_INDEX, XDP_PASS,
};
use super::config::{AfXdpError, XdpAttach};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Where the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before an skb exists (veth has such a hook).
    Driver,
    /// Generic XDP, after the skb is built: any interface.
    Generic,
}

/// One BPF instruction (`struct bpf_insn`): opcode, registers (dst in the
/// low nibble), offset, immediate.
pub(super) fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (dst & 0x0f) | (src << 4);
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    b
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_DW | BPF_IMM
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The program's instructions for the map `map_fd`.
pub(super) fn redirect_program(map_fd: RawFd) -> Vec<[u8; 8]> {
    vec![
        // r2 = ctx->rx_queue_index
        insn(LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = &xsks (a 16-byte instruction: the map fd, then zero)
        insn(LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS (what to return when the queue has no socket)
        insn(ALU64_MOV_K, 3, 0, 0, XDP_PASS),
        // r0 = bpf_redirect_map(r1, r2, r3)
        insn(JMP_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// The map, the program and the link holding it on the interface; the
/// program leaves the interface when this is dropped (or the process
/// dies).
#[derive(Debug)]
pub struct XdpProgram {
    // The link first: it is closed first, detaching the program before
    // the program and map descriptors go.
    _link: OwnedFd,
    _prog: OwnedFd,
    map: OwnedFd,
    mode: AttachMode,
}

impl XdpProgram {
    /// Creates the map (`queues` entries), loads the program and attaches
    /// it to `ifindex` (`interface` names it in errors).
    pub fn attach(
        interface: &str,
        ifindex: u32,
        queues: u32,
        attach: XdpAttach,
    ) -> Result<XdpProgram, AfXdpError> {
        let mut attr = BpfAttr::new()
            .u32_at(0, BPF_MAP_TYPE_XSKMAP)
            .u32_at(4, 4)
            .u32_at(8, 4)
            .u32_at(12, queues.max(1))
            .bytes_at(28, b"baton_xsks");
        let map = bpf_fd(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| AfXdpError::os("bpf(BPF_MAP_CREATE xskmap)", e))?;
        let prog = load(map.as_raw_fd())?;
        let tries: &[(AttachMode, u32)] = match attach {
            XdpAttach::Auto => &[
                (AttachMode::Driver, XDP_FLAGS_DRV_MODE),
                (AttachMode::Generic, XDP_FLAGS_SKB_MODE),
            ],
            XdpAttach::Driver => &[(AttachMode::Driver, XDP_FLAGS_DRV_MODE)],
            XdpAttach::Generic => &[(AttachMode::Generic, XDP_FLAGS_SKB_MODE)],
        };
        let mut last = None;
        for &(mode, flags) in tries {
            let mut attr = BpfAttr::new()
                .u32_at(0, prog.as_raw_fd() as u32)
                .u32_at(4, ifindex)
                .u32_at(8, BPF_XDP)
                .u32_at(12, flags);
            match bpf_fd(BPF_LINK_CREATE, &mut attr) {
                Ok(link) => {
                    return Ok(XdpProgram {
                        _link: link,
                        _prog: prog,
                        map,
                        mode,
                    })
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EBUSY) | Some(libc::EEXIST) => {
                        return Err(AfXdpError::XdpBusy {
                            interface: interface.to_string(),
                        })
                    }
                    Some(libc::EPERM) => {
                        return Err(AfXdpError::NoPermission {
                            call: "bpf(BPF_LINK_CREATE xdp)",
                        })
                    }
                    // EOPNOTSUPP/EINVAL: the driver has no hook; try the next mode.
                    _ => {
                        tracing::debug!(interface, ?mode, "XDP attach refused: {e}");
                        last = Some(e);
                    }
                },
            }
        }
        match (attach, last) {
            (XdpAttach::Driver, _) => Err(AfXdpError::NoDriverXdp {
                interface: interface.to_string(),
            }),
            (_, Some(e)) => Err(AfXdpError::os("bpf(BPF_LINK_CREATE xdp)", e)),
            (_, None) => Err(AfXdpError::Os {
                call: "bpf(BPF_LINK_CREATE xdp)",
                source: std::io::Error::other("no attach mode to try"),
            }),
        }
    }

    /// Where the program runs.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Makes `queue`'s frames go to the AF_XDP socket `xsk`.
    pub fn register(&self, queue: u32, xsk: RawFd) -> Result<(), AfXdpError> {
        let key = queue;
        let value = xsk as u32;
        let mut attr = BpfAttr::new()
            .u32_at(0, self.map.as_raw_fd() as u32)
            .u64_at(8, &key as *const u32 as u64)
            .u64_at(16, &value as *const u32 as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(|e| AfXdpError::os("bpf(BPF_MAP_UPDATE_ELEM xskmap)", e))
    }
}

/// Loads the program; when the verifier refuses it, loads it again with
/// the verifier's log and puts the log in the error.
fn load(map_fd: RawFd) -> Result<OwnedFd, AfXdpError> {
    let insns = redirect_program(map_fd);
    let license = b"Dual MIT/GPL\0";
    let attr = |log: Option<&mut Vec<u8>>| {
        let mut a = BpfAttr::new()
            .u32_at(0, BPF_PROG_TYPE_XDP)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64)
            .bytes_at(48, b"baton_xsk")
            .u32_at(68, BPF_XDP);
        if let Some(buf) = log {
            a = a
                .u32_at(24, 1)
                .u32_at(28, buf.len() as u32)
                .u64_at(32, buf.as_mut_ptr() as u64);
        }
        a
    };
    match bpf_fd(BPF_PROG_LOAD, &mut attr(None)) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(AfXdpError::NoPermission {
            call: "bpf(BPF_PROG_LOAD xdp)",
        }),
        Err(first) => {
            let mut log = vec![0u8; 16 * 1024];
            let _ = bpf_fd(BPF_PROG_LOAD, &mut attr(Some(&mut log)));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(AfXdpError::Os {
                call: "bpf(BPF_PROG_LOAD xdp)",
                source: std::io::Error::new(first.kind(), format!("{first}; verifier log: {text}")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_registers_in_the_right_nibbles() {
        // r2 = *(u32 *)(r1 + 16)
        assert_eq!(
            insn(LDX_MEM_W, 2, 1, 16, 0),
            [0x61, 0x12, 16, 0, 0, 0, 0, 0]
        );
        let p = redirect_program(7);
        assert_eq!(p.len(), 6, "ld_imm64 takes two slots");
        assert_eq!(p[1][0], LD_IMM64);
        assert_eq!(p[1][1], 0x11, "dst r1, src BPF_PSEUDO_MAP_FD");
        assert_eq!(i32::from_ne_bytes([p[1][4], p[1][5], p[1][6], p[1][7]]), 7);
        assert_eq!(p[2], [0; 8]);
        assert_eq!(p[3], [0xb7, 0x03, 0, 0, 2, 0, 0, 0], "r3 = XDP_PASS");
        assert_eq!(p[4][0], JMP_CALL);
        assert_eq!(i32::from_ne_bytes([p[4][4], p[4][5], p[4][6], p[4][7]]), 51);
        assert_eq!(p[5][0], JMP_EXIT);
    }
}
