//! The settings of an AF_XDP port, its errors, and the kernel version
//! check. It knows no socket or ring.

use crate::wire::ethernet::MacAddr;
use thiserror::Error;

/// Oldest kernel the port runs on: XDP programs attached through a BPF
/// link (`BPF_LINK_CREATE` with `BPF_XDP`, so the program goes away with
/// the process) arrived in 5.9.
pub const MIN_KERNEL: (u32, u32) = (5, 9);

/// How the XDP program is attached to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpAttach {
    /// The driver's own XDP hook (veth has one), else generic XDP.
    #[default]
    Auto,
    /// Generic (SKB) XDP only: any interface, always copy mode.
    Generic,
    /// The driver's hook only: fail if the driver has none.
    Driver,
}

/// Settings of an AF_XDP port.
#[derive(Clone, Debug)]
pub struct AfXdpConfig {
    /// Interface to bind to, e.g. `front0`.
    pub interface: String,
    /// Source MAC to use instead of the interface's.
    pub mac_override: Option<MacAddr>,
    /// Frames the kernel may fill with received frames (the fill and RX
    /// rings' size, a power of two).
    pub rx_frames: u32,
    /// Frames we may have in flight to the device (TX and completion
    /// rings' size, a power of two).
    pub tx_frames: u32,
    /// How the XDP program is attached.
    pub attach: XdpAttach,
}

impl AfXdpConfig {
    /// Defaults for `interface`: 2,048 RX and 1,024 TX frames of 4 KiB
    /// (12 MiB of UMEM), attach mode chosen by the driver.
    pub fn new(interface: &str) -> Self {
        AfXdpConfig {
            interface: interface.to_string(),
            mac_override: None,
            rx_frames: 2048,
            tx_frames: 1024,
            attach: XdpAttach::Auto,
        }
    }
}

/// Why an AF_XDP port could not be opened.
#[derive(Debug, Error)]
pub enum AfXdpError {
    /// The kernel refused for lack of privilege.
    #[error(
        "{call}: permission denied: the AF_XDP port needs CAP_NET_RAW, CAP_NET_ADMIN, \
         CAP_BPF and CAP_IPC_LOCK (or root)"
    )]
    NoPermission {
        /// The call refused.
        call: &'static str,
    },
    /// The running kernel predates what the port needs.
    #[error("kernel {found} is too old for the AF_XDP port: it needs {}.{} or later", MIN_KERNEL.0, MIN_KERNEL.1)]
    KernelTooOld {
        /// `uname -r`.
        found: String,
    },
    /// The kernel was built without AF_XDP sockets.
    #[error("this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS is off)")]
    NoXdpSockets,
    /// Another XDP program is attached to the interface: another live
    /// port, or a program left by another tool (ours never outlive their
    /// process: they are held by a BPF link).
    #[error(
        "{interface} already has an XDP program attached: another port runs on it, or another \
         tool left one (baton's go with their process); if nothing should, remove it with \
         `ip link set dev {interface} xdp off`"
    )]
    XdpBusy {
        /// The interface.
        interface: String,
    },
    /// `dataplane.attach = driver` on an interface whose driver has no
    /// XDP hook.
    #[error("{interface}: the driver has no native XDP hook")]
    NoDriverXdp {
        /// The interface.
        interface: String,
    },
    /// The port serves one worker (queue 0) today.
    #[error("the AF_XDP port serves one worker today, {0} were asked")]
    OneWorker(usize),
    /// A ring size that is not a power of two or out of range.
    #[error("{what} = {value}: must be a power of two between 64 and 32768")]
    RingSize {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: u32,
    },
    /// Any other failed call.
    #[error("{call}: {source}")]
    Os {
        /// The call that failed.
        call: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl AfXdpError {
    /// Sorts an OS error of `call` into the error a user can act on.
    pub(super) fn os(call: &'static str, source: std::io::Error) -> AfXdpError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => AfXdpError::NoPermission { call },
            _ => AfXdpError::Os { call, source },
        }
    }
}

/// `(major, minor)` of a `uname -r` release string such as
/// `6.18.44-fc-v1147`; `None` if it does not start with two numbers.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::from("unknown");
    }
    // SAFETY: uname NUL-terminates the release field.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Fails with [`AfXdpError::KernelTooOld`] below [`MIN_KERNEL`].
pub fn check_kernel(release: &str) -> Result<(), AfXdpError> {
    match kernel_version(release) {
        Some(v) if v >= MIN_KERNEL => Ok(()),
        _ => Err(AfXdpError::KernelTooOld {
            found: release.to_string(),
        }),
    }
}

/// Checks a ring size setting.
pub(super) fn ring_size(what: &'static str, value: u32) -> Result<u32, AfXdpError> {
    if value.is_power_of_two() && (64..=32768).contains(&value) {
        Ok(value)
    } else {
        Err(AfXdpError::RingSize { what, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_are_read_from_release_strings() {
        assert_eq!(kernel_version("6.18.44-fc-v1147"), Some((6, 18)));
        assert_eq!(kernel_version("5.9.0"), Some((5, 9)));
        assert_eq!(kernel_version("4.19-rc1"), Some((4, 19)));
        assert_eq!(kernel_version("garbage"), None);
        assert!(check_kernel("6.18.44-fc-v1147").is_ok());
        assert!(check_kernel("5.9.0").is_ok());
        let e = check_kernel("5.4.0-150-generic").unwrap_err();
        assert!(matches!(e, AfXdpError::KernelTooOld { .. }));
        assert_eq!(
            e.to_string(),
            "kernel 5.4.0-150-generic is too old for the AF_XDP port: it needs 5.9 or later"
        );
        assert!(check_kernel("unknown").is_err());
    }

    #[test]
    fn permission_errors_say_what_is_needed() {
        let e = AfXdpError::os(
            "bpf(BPF_PROG_LOAD)",
            std::io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(matches!(e, AfXdpError::NoPermission { .. }));
        assert!(e.to_string().contains("CAP_BPF"), "{e}");
        let e = AfXdpError::os("mmap", std::io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(matches!(e, AfXdpError::Os { .. }));
    }

    #[test]
    fn ring_sizes_must_be_powers_of_two_in_range() {
        assert_eq!(ring_size("rx_frames", 2048).unwrap(), 2048);
        assert!(ring_size("rx_frames", 1000).is_err());
        assert!(ring_size("rx_frames", 32).is_err());
        assert!(ring_size("rx_frames", 65536).is_err());
    }
}
