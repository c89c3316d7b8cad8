//! Opening a port: the kernel check, the socket, UMEM registration, the
//! four rings and their mappings, the XDP program, the bind (zero-copy if
//! the driver has it, else copy) and the socket's place in the XSKMAP.

use super::abi::{
    getsockopt, hw_addr, setsockopt, MmapOffsets, SockaddrXdp, UmemReg, XdpDesc, AF_XDP,
    XDP_MMAP_OFFSETS, XDP_OPTIONS, XDP_OPTIONS_ZEROCOPY, XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING,
    XDP_RX_RING, XDP_TX_RING, XDP_UMEM_COMPLETION_RING, XDP_UMEM_FILL_RING,
    XDP_UMEM_PGOFF_COMPLETION_RING, XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_REG, XDP_USE_NEED_WAKEUP,
};
use super::config::{check_kernel, kernel_release, ring_size, AfXdpConfig, AfXdpError};
use super::port::AfXdpPort;
use super::program::{AttachMode, XdpProgram};
use super::ring::Ring;
use super::umem::{Umem, FRAME_SIZE};
use crate::port::PortError;
use crate::wire::ethernet::MacAddr;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The queue the port binds to: the one queue of a veth, and the one a
/// single worker reads on a NIC (see the module doc).
const QUEUE: u32 = 0;

impl AfXdpPort {
    /// Opens `workers` ports on `cfg.interface`; one today
    /// ([`AfXdpError::OneWorker`] otherwise).
    pub fn open_group(cfg: &AfXdpConfig, workers: usize) -> Result<Vec<AfXdpPort>, PortError> {
        if workers != 1 {
            return Err(AfXdpError::OneWorker(workers).into());
        }
        Ok(vec![Self::open(cfg)?])
    }

    /// Opens one port on queue 0 of `cfg.interface`.
    pub fn open(cfg: &AfXdpConfig) -> Result<AfXdpPort, PortError> {
        check_kernel(&kernel_release())?;
        let rx_frames = ring_size("rx_frames", cfg.rx_frames)?;
        let tx_frames = ring_size("tx_frames", cfg.tx_frames)?;
        let name = CString::new(cfg.interface.as_str())
            .map_err(|_| PortError::NoInterface(cfg.interface.clone()))?;
        // SAFETY: `name` is a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(PortError::NoInterface(cfg.interface.clone()));
        }

        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT) => AfXdpError::NoXdpSockets,
                _ => AfXdpError::os("socket(AF_XDP)", e),
            }
            .into());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let mac = match cfg.mac_override {
            Some(m) => m,
            None => MacAddr(
                hw_addr(&cfg.interface).map_err(|e| AfXdpError::os("ioctl(SIOCGIFHWADDR)", e))?,
            ),
        };

        let umem = Umem::new(rx_frames + tx_frames).map_err(|e| AfXdpError::os("mmap(umem)", e))?;
        let reg = UmemReg {
            addr: umem.addr(),
            len: umem.len() as u64,
            chunk_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        let opt = |name, v: &u32, call| setsockopt(s, name, v).map_err(|e| AfXdpError::os(call, e));
        setsockopt(s, XDP_UMEM_REG, &reg)
            .map_err(|e| AfXdpError::os("setsockopt(XDP_UMEM_REG)", e))?;
        opt(
            XDP_UMEM_FILL_RING,
            &rx_frames,
            "setsockopt(XDP_UMEM_FILL_RING)",
        )?;
        opt(
            XDP_UMEM_COMPLETION_RING,
            &tx_frames,
            "setsockopt(XDP_UMEM_COMPLETION_RING)",
        )?;
        opt(XDP_RX_RING, &rx_frames, "setsockopt(XDP_RX_RING)")?;
        opt(XDP_TX_RING, &tx_frames, "setsockopt(XDP_TX_RING)")?;
        let mut off = MmapOffsets::default();
        getsockopt(s, XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| AfXdpError::os("getsockopt(XDP_MMAP_OFFSETS)", e))?;
        let map_err = |call| move |e| AfXdpError::os(call, e);
        let rx = Ring::<XdpDesc>::map(s, XDP_PGOFF_RX_RING, &off.rx, rx_frames, false)
            .map_err(map_err("mmap(rx ring)"))?;
        let tx = Ring::<XdpDesc>::map(s, XDP_PGOFF_TX_RING, &off.tx, tx_frames, true)
            .map_err(map_err("mmap(tx ring)"))?;
        let mut fill = Ring::<u64>::map(s, XDP_UMEM_PGOFF_FILL_RING, &off.fr, rx_frames, true)
            .map_err(map_err("mmap(fill ring)"))?;
        let comp = Ring::<u64>::map(s, XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, tx_frames, false)
            .map_err(map_err("mmap(completion ring)"))?;

        // The first `rx_frames` chunks are the kernel's to receive into;
        // the rest are ours to send from.
        for i in 0..rx_frames {
            fill.push(u64::from(i) * u64::from(FRAME_SIZE));
        }
        fill.submit();
        let tx_free = (rx_frames..rx_frames + tx_frames)
            .map(|i| u64::from(i) * u64::from(FRAME_SIZE))
            .collect();

        let program = XdpProgram::attach(&cfg.interface, ifindex, 64, cfg.attach)?;

        // No XDP_COPY / XDP_ZEROCOPY: the kernel tries zero-copy and falls
        // back to copy where the driver has no AF_XDP support (veth).
        let sxdp = SockaddrXdp {
            family: AF_XDP as u16,
            flags: XDP_USE_NEED_WAKEUP,
            ifindex,
            queue_id: QUEUE,
            shared_umem_fd: 0,
        };
        // SAFETY: `sxdp` is a valid sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(
                s,
                (&sxdp as *const SockaddrXdp).cast(),
                std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(AfXdpError::os("bind(AF_XDP)", std::io::Error::last_os_error()).into());
        }
        let mut opts = 0u32;
        let zero_copy =
            getsockopt(s, XDP_OPTIONS, &mut opts).is_ok() && opts & XDP_OPTIONS_ZEROCOPY != 0;
        program.register(QUEUE, s)?;
        tracing::info!(
            interface = %cfg.interface,
            queue = QUEUE,
            xdp = match program.mode() {
                AttachMode::Driver => "driver",
                AttachMode::Generic => "generic",
            },
            mode = if zero_copy { "zero-copy" } else { "copy" },
            rx_frames,
            tx_frames,
            "AF_XDP port open"
        );
        Ok(AfXdpPort {
            rx,
            tx,
            fill,
            comp,
            fd,
            umem,
            program,
            tx_free,
            rx_spare: Vec::new(),
            mac,
            ifindex,
            zero_copy,
            rx_invalid: 0,
        })
    }
}
