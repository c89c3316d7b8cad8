//! The EAL, started once per process ([`DpdkEal`]), and vdev hot-plug.

use super::error::{strerror, DpdkError};
use super::ffi;
use super::options::{vdev_name, vdevs_in, DpdkOptions};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::sync::{Arc, Mutex, OnceLock};

/// Bytes of the EAL log kept for an init error.
pub(super) const EAL_LOG_TAIL: usize = 4096;

/// The running EAL: its arguments, and the lock that serialises device
/// hot-plug and port start/stop.
#[derive(Debug)]
pub(super) struct EalInner {
    pub(super) args: Vec<String>,
    /// Vdevs the EAL was given, for hot-plugging them again after a device
    /// was closed.
    pub(super) vdevs: Vec<String>,
    /// Vdev names currently probed by us or the EAL; guarded so two opens
    /// of one device do not race.
    pub(super) plug: Mutex<()>,
    /// Tail of what the EAL logged during init (why a vdev failed then).
    pub(super) init_log: String,
}

pub(super) static EAL: OnceLock<Result<Arc<EalInner>, DpdkError>> = OnceLock::new();

/// The process's DPDK Environment Abstraction Layer, initialised once.
///
/// Cheap to clone; never torn down (`rte_eal_cleanup` would forbid a later
/// init in the same process, and DPDK's threads and memory live until
/// exit anyway).
#[derive(Clone, Debug)]
pub struct DpdkEal {
    pub(super) inner: Arc<EalInner>,
}

/// A hint for an EAL init failure, by rte_errno (rte_eal_init's documented
/// errors).
pub(super) fn eal_hint(errno: c_int, args: &[String], log: &str) -> String {
    let huge = !args.iter().any(|a| a == "--no-huge");
    if huge && log.contains("Cannot get hugepage information") {
        // No hugetlbfs mount or no pages of any size reserved: the EAL
        // says EACCES, which would send the operator the wrong way.
        return format!(
            "no hugepages: reserve them (echo N > /proc/sys/vm/nr_hugepages) and mount \
             hugetlbfs, or use --no-huge (hugepages = false) ({})",
            strerror(errno)
        );
    }
    let base = match errno {
        libc::EACCES => "permission denied: the EAL needs root (or the capabilities for hugepages and raw sockets)".to_string(),
        libc::EAGAIN => "a bus or device could not be set up; try again".to_string(),
        libc::EALREADY => "rte_eal_init was already called in this process".to_string(),
        libc::EFAULT => "the tailq configuration is broken (a DPDK library mismatch?)".to_string(),
        libc::ENODEV => "memory setup failed: the EAL found no usable memory".to_string(),
        libc::ENOMEM if huge => "no hugepages: reserve them (echo N > /proc/sys/vm/nr_hugepages), mount hugetlbfs, or use --no-huge (hugepages = false)".to_string(),
        libc::ENOMEM => "not enough memory for the EAL (lower memory_mb?)".to_string(),
        libc::ENOTSUP => "the EAL does not support this configuration (a bus probe or driver failed)".to_string(),
        libc::EPROTO => "the EAL could not be configured (a secondary process without a primary?)".to_string(),
        libc::ENOEXEC => "a driver plugin (-d) could not be loaded".to_string(),
        libc::EINVAL => "invalid EAL arguments".to_string(),
        e => strerror(e),
    };
    let extra = if huge
        && (log.contains("hugepage") || log.contains("huge page"))
        && errno != libc::ENOMEM
    {
        "; hugepages are on: reserve some (echo N > /proc/sys/vm/nr_hugepages) and mount hugetlbfs, or use --no-huge"
    } else {
        ""
    };
    format!("{base}{extra} ({})", strerror(errno))
}

pub(super) fn cstrings(args: &[String]) -> Result<Vec<CString>, DpdkError> {
    args.iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| DpdkError::BadArgument(a.clone())))
        .collect()
}

impl DpdkEal {
    /// Runs `rte_eal_init` with `args` (no program name) unless this process
    /// already did: then returns the running EAL if it was started with
    /// the same arguments, [`DpdkError::EalArgsDiffer`] if not, or the
    /// first init's error again if it failed.
    pub fn init(args: &[String]) -> Result<DpdkEal, DpdkError> {
        let asked = args.to_vec();
        let mut checked_here = false;
        let res = EAL.get_or_init(|| {
            checked_here = true;
            eal_init_once(&asked)
        });
        match res {
            Ok(inner) if checked_here || inner.args == asked => Ok(DpdkEal {
                inner: Arc::clone(inner),
            }),
            Ok(inner) => Err(DpdkError::EalArgsDiffer {
                running: inner.args.clone(),
                asked,
            }),
            Err(e) => Err(e.clone()),
        }
    }

    /// [`DpdkEal::init`] with [`DpdkOptions::eal_args`].
    pub fn from_options(opts: &DpdkOptions) -> Result<DpdkEal, DpdkError> {
        Self::init(&opts.eal_args())
    }

    /// The EAL running in this process, if any.
    pub fn running() -> Option<DpdkEal> {
        match EAL.get() {
            Some(Ok(inner)) => Some(DpdkEal {
                inner: Arc::clone(inner),
            }),
            _ => None,
        }
    }

    /// The arguments the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// Ethdev ports the EAL knows (`rte_eth_dev_count_avail`).
    pub fn ports_available(&self) -> u16 {
        // SAFETY: the EAL is initialised (we hold it).
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// Starts a virtual device after init (`rte_vdev_init`), e.g.
    /// `net_af_packet1,iface=front1`.
    pub fn hotplug_vdev(&self, spec: &str) -> Result<(), DpdkError> {
        let _g = self.inner.plug.lock().unwrap_or_else(|p| p.into_inner());
        hotplug(spec, &self.inner.init_log)
    }

    /// The port id of the ethdev `name`, hot-plugging it from the EAL's
    /// `--vdev` arguments if it is not there (it was closed before).
    pub(super) fn port_of(&self, name: &str) -> Result<u16, DpdkError> {
        let _g = self.inner.plug.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = port_by_name(name)? {
            return Ok(p);
        }
        let spec = self.inner.vdevs.iter().find(|v| vdev_name(v) == name);
        if let Some(spec) = spec {
            // The EAL was given it but it is gone: either its probe failed
            // at init (a bad iface), or a previous device was closed.
            hotplug(spec, &self.inner.init_log)?;
            if let Some(p) = port_by_name(name)? {
                return Ok(p);
            }
        }
        Err(DpdkError::NoDevice {
            name: name.to_string(),
            avail: self.ports_available(),
            hint: match spec {
                Some(s) => format!("vdev {s:?} did not create a port; see the EAL log"),
                None => "no --vdev of that name was given to the EAL".into(),
            },
        })
    }
}

pub(super) fn vdev_init(name: &CString, args: &CString) -> (c_int, String) {
    let mut log = vec![0u8; EAL_LOG_TAIL];
    // SAFETY: two valid C strings and a buffer of the length passed; the
    // EAL is initialised (callers hold it).
    let r = unsafe {
        ffi::baton_vdev_init(
            name.as_ptr(),
            args.as_ptr(),
            log.as_mut_ptr().cast(),
            log.len(),
        )
    };
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    (
        r,
        String::from_utf8_lossy(&log[..end]).trim_end().to_string(),
    )
}

pub(super) fn hotplug(spec: &str, init_log: &str) -> Result<(), DpdkError> {
    let name = vdev_name(spec);
    let args = spec.get(name.len() + 1..).unwrap_or("");
    let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(spec.into()))?;
    let cargs = CString::new(args).map_err(|_| DpdkError::BadArgument(spec.into()))?;
    let (r, log) = vdev_init(&cname, &cargs);
    if r == -libc::EEXIST {
        // On the bus but without a port: its probe failed when the EAL
        // started (the vdev bus cannot take a device whose probe failed
        // off again, so it cannot be retried in this process).
        let log = init_log
            .lines()
            .filter(|l| l.contains(name))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(DpdkError::Vdev {
            spec: spec.to_string(),
            reason: "its driver failed when the EAL started".into(),
            log,
        });
    }
    if r < 0 {
        // Drivers return -1 for "could not create the device" (it is no
        // errno); their log line is the reason.
        let reason = if r == -1 {
            "the driver could not create the device".to_string()
        } else {
            strerror(r)
        };
        return Err(DpdkError::Vdev {
            spec: spec.to_string(),
            reason,
            log,
        });
    }
    Ok(())
}

pub(super) fn port_by_name(name: &str) -> Result<Option<u16>, DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError::BadArgument(name.into()))?;
    let mut port = 0u16;
    // SAFETY: a valid C string and a live out-parameter.
    let r = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
    Ok((r == 0).then_some(port))
}

pub(super) fn eal_init_once(args: &[String]) -> Result<Arc<EalInner>, DpdkError> {
    let mut all = vec!["baton".to_string()];
    all.extend(args.iter().cloned());
    let owned = cstrings(&all)?;
    // rte_eal_init may permute argv (getopt), so it gets its own array of
    // pointers into strings that outlive the call (DPDK keeps none of them
    // after init, but they live for the process anyway: we leak nothing
    // that matters by keeping `owned` until return).
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let mut log = vec![0u8; EAL_LOG_TAIL];
    let mut err: c_int = 0;

    // rte_eal_init pins the calling thread to the main lcore; the caller
    // (the appliance's control thread) and the worker threads it spawns
    // afterwards must keep their own affinity.
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut saved: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is that of `saved`.
    let have_saved =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut saved) }
            == 0;
    // SAFETY: argv is NULL-terminated with argc live C strings; `log` has
    // the length passed; `err` is a live out-parameter.
    let r = unsafe {
        ffi::baton_eal_init(
            (argv.len() - 1) as c_int,
            argv.as_mut_ptr(),
            log.as_mut_ptr().cast(),
            log.len(),
            &mut err,
        )
    };
    if have_saved {
        // SAFETY: restores the mask read above.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &saved) };
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]).trim_end().to_string();
    if r < 0 {
        remove_empty_runtime_dir(args);
        return Err(DpdkError::EalInit {
            reason: eal_hint(err, args, &log),
            errno: err,
            log,
        });
    }
    if args
        .iter()
        .any(|a| a == "--no-shconf" || a == "--in-memory")
    {
        remove_empty_runtime_dir(args);
    }
    Ok(Arc::new(EalInner {
        args: args.to_vec(),
        vdevs: vdevs_in(args),
        plug: Mutex::new(()),
        init_log: log,
    }))
}

/// The EAL creates its runtime directory (`/var/run/dpdk/PREFIX` for
/// root, `$XDG_RUNTIME_DIR/dpdk/PREFIX` otherwise) even with `--no-shconf`,
/// and leaves it empty; remove it so boxes with per-process prefixes leave
/// nothing behind. Only an empty directory is removed.
pub(super) fn remove_empty_runtime_dir(args: &[String]) {
    let prefix = args
        .iter()
        .find_map(|a| a.strip_prefix("--file-prefix="))
        .unwrap_or("rte");
    if prefix.is_empty() || prefix.contains('/') || prefix.contains("..") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let base = if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/run/dpdk")
    } else {
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) => std::path::PathBuf::from(d).join("dpdk"),
            None => std::path::PathBuf::from("/tmp/dpdk"),
        }
    };
    let _ = std::fs::remove_dir(base.join(prefix));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_hugepages_error_says_what_to_do() {
        let args = vec!["-l".to_string(), "0".to_string()];
        let h = eal_hint(libc::ENOMEM, &args, "");
        assert!(h.contains("no hugepages"), "{h}");
        assert!(h.contains("--no-huge"), "{h}");
    }
}
