//! What the box asks of the operating system for its own threads: a CPU to
//! sit on, a real-time scheduling class, and the stop signals taken
//! synchronously. Best effort where the box can run without it.
//!
//! It knows nothing of the cluster: callers say which thread and why.
use tracing::warn;

/// Pins the calling thread to the `nth` CPU this process may use (modulo
/// their number), so the box's two beating threads sit on different CPUs.
/// Best effort: with fewer than two CPUs, or on failure, the thread stays
/// where the scheduler puts it.
pub(crate) fn pin_to_cpu(what: &str, nth: usize) {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        return;
    }
    if let Err(err) = baton_dataplane::runtime::pin_current_thread(cpus[nth % cpus.len()]) {
        warn!(thread = what, %err, "cannot pin to a CPU");
    }
}

/// The CPUs the calling thread may run on (empty if the kernel will not say).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // with pid 0 reads the calling thread's mask into it, with its true size.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .collect()
    }
}

/// Gives the calling thread a real-time scheduling class (SCHED_FIFO,
/// priority 10) where allowed: heartbeats and their watcher sleep almost
/// all the time but must wake on time even when poll-mode workers, a load
/// client and builds share two cores; a late heartbeat reads as a dead box.
/// Without the privilege (CAP_SYS_NICE) the box runs on, with a warning.
pub(crate) fn realtime_priority(what: &str) {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler with pid 0 changes only the calling
    // thread's policy; `param` is a valid, initialized struct.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        warn!(
            thread = what,
            err = %std::io::Error::last_os_error(),
            "no real-time priority: under CPU contention heartbeats may be late and a live box declared dead"
        );
    }
}

/// Runs `f` on the calling thread as an ordinary one (SCHED_OTHER, free to
/// run on every CPU of the process's cpuset), then gives the thread back its scheduling
/// class and CPUs. For long work on a real-time pinned thread (the
/// watcher's takeover of a dead box: about a second at 300,000
/// connections): pinned at SCHED_FIFO it holds its CPU against everything
/// of lower or equal priority there (a FIFO thread is never preempted by
/// its equals) and can do nothing while that one CPU is taken (measured:
/// a 1.05 s wait at a takeover's start, BENCHMARKS.md, session 20).
/// Threads spawned meanwhile inherit the ordinary class.
pub(crate) fn as_ordinary_thread<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain libc calls on the calling thread (pid 0) with valid,
    // initialized structs; a failure leaves the thread as it was.
    let saved = unsafe {
        let policy = libc::sched_getscheduler(0);
        let mut param: libc::sched_param = std::mem::zeroed();
        let mut cpus: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if policy < 0
            || libc::sched_getparam(0, &mut param) != 0
            || libc::sched_getaffinity(0, size, &mut cpus) != 0
        {
            None
        } else {
            // Every CPU the set can name: the kernel keeps those of the
            // process's cpuset (and online), so a box confined to some
            // CPUs stays there.
            let mut all: libc::cpu_set_t = std::mem::zeroed();
            for c in 0..libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut all);
            }
            let ordinary = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, libc::SCHED_OTHER, &ordinary) != 0
                || libc::sched_setaffinity(0, size, &all) != 0
            {
                warn!(
                    err = %std::io::Error::last_os_error(),
                    "cannot run this work as an ordinary thread: it keeps the thread's priority and CPU"
                );
            }
            Some((policy, param, cpus))
        }
    };
    let out = f();
    if let Some((policy, param, cpus)) = saved {
        // SAFETY: as above; the values were read from this thread.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cpus);
            libc::sched_setscheduler(0, policy, &param);
        }
    }
    out
}

/// SIGTERM, SIGINT (stop) and SIGUSR1 (drain), blocked so that `wait` can
/// take them synchronously.
pub(crate) struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks the signals in the calling thread; threads started after
    /// this inherit the mask, so only [`Self::wait`] takes them.
    pub(crate) fn block() -> std::io::Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset; the
        // calls only touch that set and this thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            // SIGUSR1: drain (a planned move of every connection).
            libc::sigaddset(&mut set, libc::SIGUSR1);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(Self { set })
        }
    }

    /// Waits for one of the signals; returns its number.
    pub(crate) fn wait(&self) -> i32 {
        let mut sig = 0;
        // SAFETY: the set was initialised in `block`; sig is a valid out pointer.
        unsafe { libc::sigwait(&self.set, &mut sig) };
        sig
    }
}

/// Gives the heap's wholly free pages back to the kernel (glibc's
/// `malloc_trim`): after a burst of connections was parked, the memory their
/// TCBs and sessions held is free but still counted in the box's RSS, and
/// freed chunks amid live ones are never returned otherwise. Returns whether
/// any memory was released; a no-op elsewhere than glibc.
pub(crate) fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> i32 {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn long_work_runs_as_an_ordinary_thread_on_every_cpu_then_the_thread_is_real_time_and_pinned_again(
    ) {
        std::thread::spawn(|| {
            realtime_priority("test");
            assert_eq!(
                policy(),
                libc::SCHED_FIFO,
                "the test needs CAP_SYS_NICE (run it as root)"
            );
            pin_to_cpu("test", 0);
            let pinned = allowed_cpus();
            let during = as_ordinary_thread(|| (policy(), allowed_cpus()));
            assert_eq!(during.0, libc::SCHED_OTHER);
            // SAFETY: sysconf has no preconditions.
            let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as usize;
            assert_eq!(during.1.len(), online, "every online CPU: {:?}", during.1);
            assert_eq!(policy(), libc::SCHED_FIFO);
            assert_eq!(allowed_cpus(), pinned);
        })
        .join()
        .expect("the test thread");
    }
}
