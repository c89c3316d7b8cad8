//! Starting the dataplane: the port is opened by its backend
//! ([`crate::port::PortConfig`]), then one thread per worker is spawned,
//! pinned if asked, and given its port and its app. Returns once every
//! worker runs.

use super::handle::{DataplaneHandle, WorkerHandle};
use super::options::{check_options, DataplaneError, DataplaneOptions};
use crate::app::App;
use crate::port::{OpenedPorts, Port, PortConfig};
use crate::worker::{Siblings, Waker, Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Instant;

fn random_secret() -> [u8; 16] {
    let mut s = [0u8; 16];
    // SAFETY: getrandom writes at most `s.len()` bytes into `s`.
    let n = unsafe { libc::getrandom(s.as_mut_ptr().cast(), s.len(), 0) };
    if n != s.len() as isize {
        // Not expected on Linux ≥ 3.17; fall back to time-derived bits,
        // which still differ between boxes and boots.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        s = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    s
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks against its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if core >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Opens `port` (any backend: AF_PACKET, DPDK, memory) with one port per
/// worker and starts `opts.workers` workers, each with the app
/// `app_factory(worker_index)` built on its own thread (see
/// [`start_with_ports`]). Returns once every worker is running (or the
/// first one failed to start).
///
/// Threads inherit the caller's network namespace, so a caller that entered
/// a namespace (`setns`) runs the dataplane there.
pub fn start<A, F>(
    port: PortConfig,
    opts: DataplaneOptions,
    app_factory: F,
) -> Result<DataplaneHandle, DataplaneError>
where
    A: App,
    F: Fn(usize) -> A + Send + Sync + 'static,
{
    check_options(&opts)?;
    let workers = opts.workers;
    let port = port.with_steer(opts.steer, workers)?;
    port.open(workers, StartOn { opts, app_factory })?
}

/// Starts the workers on whatever ports the backend opened.
struct StartOn<F> {
    opts: DataplaneOptions,
    app_factory: F,
}

impl<A, F> OpenedPorts for StartOn<F>
where
    A: App,
    F: Fn(usize) -> A + Send + Sync + 'static,
{
    type Output = Result<DataplaneHandle, DataplaneError>;

    fn run<P: Port + 'static>(self, ports: Vec<P>) -> Self::Output {
        start_with_ports(self.opts, ports, self.app_factory)
    }
}

/// Starts one worker per port of `ports` (already opened by any backend:
/// AF_PACKET, DPDK, memory), worker `i` on `ports[i]` with the app
/// `app_factory(i)` built on its own thread. `ports.len()` must equal
/// `opts.workers`: the flow-to-worker rule ([`crate::port::worker_for`]) assumes the
/// ports deliver each flow to the worker of that index. The dataplane's
/// MAC is the first port's.
/// Returns once every worker is running (or the first one failed to start).
pub fn start_with_ports<P, A, F>(
    opts: DataplaneOptions,
    ports: Vec<P>,
    app_factory: F,
) -> Result<DataplaneHandle, DataplaneError>
where
    P: Port + 'static,
    A: App,
    F: Fn(usize) -> A + Send + Sync + 'static,
{
    check_options(&opts)?;
    if ports.len() != opts.workers {
        return Err(DataplaneError::Options(format!(
            "{} workers but {} ports: one port per worker",
            opts.workers,
            ports.len()
        )));
    }
    let Some(first) = ports.first() else {
        return Err(DataplaneError::Options("no ports".into()));
    };
    let mac = first.mac();
    let secret = opts.cookie_secret.unwrap_or_else(random_secret);
    let factory = Arc::new(app_factory);
    let (ready_tx, ready_rx) =
        crossbeam_channel::unbounded::<(usize, Result<Waker, DataplaneError>)>();
    let mut workers = Vec::new();
    let wakers: Vec<Waker> = ports.iter().map(|_| Waker::new()).collect();
    let siblings = Siblings::link(&wakers);
    for ((i, port), (waker, siblings)) in ports
        .into_iter()
        .enumerate()
        .zip(wakers.into_iter().zip(siblings))
    {
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let cfg = WorkerConfig {
            id: i,
            n_workers: opts.workers,
            service_ips: opts.service_ips.clone(),
            listen_ports: opts.listen_ports.clone(),
            mtu: opts.mtu,
            max_connections: opts.max_connections,
            max_connections_per_client: opts.max_connections_per_client,
            syn_backlog: opts.syn_backlog,
            tcp: opts.tcp.clone(),
            cookie_secret: secret,
            poll_mode: opts.poll_mode,
            rx_burst: opts.rx_burst.max(1),
            udp_ports: opts.udp_ports.clone(),
            max_udp_flows: opts.max_connections,
            udp_idle_timeout: std::time::Duration::from_secs(60),
            restore_window: crate::worker::DEFAULT_RESTORE_WINDOW,
        };
        let core = opts.cores.get(i).copied();
        let factory = Arc::clone(&factory);
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("baton-w{i}"))
            .spawn(move || {
                if let Some(core) = core {
                    if let Err(source) = pin_current_thread(core) {
                        let _ = ready.send((
                            i,
                            Err(DataplaneError::Pin {
                                worker: i,
                                core,
                                source,
                            }),
                        ));
                        return Ok(());
                    }
                }
                let app = factory(i);
                let mut worker = Worker::new(port, app, cfg, Instant::now());
                worker.join_siblings(waker, siblings);
                let _ = ready.send((i, Ok(worker.waker())));
                drop(ready);
                worker.run(ctl_rx).map_err(DataplaneError::from)
            })
            .map_err(|e| DataplaneError::Options(format!("spawn worker: {e}")))?;
        workers.push(WorkerHandle {
            ctl: ctl_tx,
            waker: Waker::new(),
            thread: Some(thread),
        });
    }
    drop(ready_tx);
    let mut handle = DataplaneHandle {
        workers,
        mac,
        steer: opts.steer,
    };
    for _ in 0..handle.workers.len() {
        match ready_rx.recv() {
            Ok((i, Ok(waker))) => {
                if let Some(w) = handle.workers.get_mut(i) {
                    w.waker = waker;
                }
            }
            Ok((_, Err(e))) => return Err(e), // dropping the handle stops the others
            Err(_) => return Err(DataplaneError::WorkerPanicked(0)),
        }
    }
    for ip in &opts.service_ips {
        handle.announce(*ip)?;
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::afpacket::AfPacketConfig;
    use crate::port::PortError;
    use crate::wire::ethernet::MacAddr;
    use std::net::IpAddr;
    use std::time::Duration;

    fn af_packet(interface: &str) -> PortConfig {
        PortConfig::AfPacket(AfPacketConfig::new(interface))
    }

    #[test]
    fn pinned_thread_runs_only_on_its_core() {
        let cpus = std::thread::spawn(|| {
            pin_current_thread(0).unwrap();
            // SAFETY: reading our own affinity mask into a zeroed set.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(
                    libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                    0
                );
                (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect::<Vec<_>>()
            }
        })
        .join()
        .unwrap();
        assert_eq!(cpus, vec![0]);
        assert!(
            pin_current_thread(1 << 20).is_err(),
            "a core beyond CPU_SETSIZE is refused"
        );
    }

    #[test]
    fn options_with_too_few_cores_are_refused_before_opening_anything() {
        let mut o = DataplaneOptions::new(vec![]);
        o.workers = 2;
        o.cores = vec![0];
        assert!(matches!(
            start(af_packet("bt-no-such-if"), o, |_| {
                crate::responder::Responder::new(Default::default())
            }),
            Err(DataplaneError::Options(_))
        ));
        let mut o = DataplaneOptions::new(vec![]);
        o.workers = 0;
        assert!(matches!(
            start(af_packet("bt-no-such-if"), o, |_| {
                crate::responder::Responder::new(Default::default())
            }),
            Err(DataplaneError::Options(_))
        ));
        let o = DataplaneOptions::new(vec![]);
        assert!(matches!(
            start(af_packet("bt-no-such-if"), o, |_| {
                crate::responder::Responder::new(Default::default())
            }),
            Err(DataplaneError::Port(PortError::NoInterface(_)))
        ));
    }

    #[test]
    fn ports_given_by_the_caller_carry_the_dataplane() {
        use crate::port::memory::MemoryPort;
        let box_mac = MacAddr([2, 0xba, 0x70, 0, 0, 9]);
        let (mut wire, port) = MemoryPort::pair(MacAddr([2, 0, 0, 0, 0, 1]), box_mac);
        let ip: IpAddr = "198.18.0.11".parse().unwrap();
        let opts = DataplaneOptions::new(vec![ip]);
        let handle = start(PortConfig::Memory(vec![port]), opts, |_| {
            crate::responder::Responder::new(Default::default())
        })
        .expect("a memory port needs no interface");
        assert_eq!(handle.n_workers(), 1);
        assert_eq!(
            handle.mac(),
            box_mac,
            "the dataplane sends from its port's MAC"
        );
        // Starting announces the service address: a gratuitous ARP
        // (EtherType 0x0806) from the box's MAC comes out of the given port.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut frames = Vec::new();
        while frames.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            frames = wire.drain();
        }
        let arp = frames
            .first()
            .expect("the announcement left through the port");
        assert_eq!(&arp[6..12], &box_mac.0);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        handle.shutdown();
        handle.join().expect("workers stop cleanly");
    }

    #[test]
    fn a_port_count_other_than_the_workers_is_refused() {
        use crate::port::memory::MemoryPort;
        let (_wire, port) =
            MemoryPort::pair(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let mut opts = DataplaneOptions::new(vec![]);
        opts.workers = 2;
        let r = start_with_ports(opts, vec![port], |_| {
            crate::responder::Responder::new(Default::default())
        });
        match r {
            Err(DataplaneError::Options(msg)) => {
                assert!(msg.contains("2 workers but 1 ports"), "{msg}")
            }
            Err(e) => panic!("expected an options error, got {e}"),
            Ok(_) => panic!("two workers cannot share one port"),
        }
    }
}
