//! The running dataplane as the control core sees it ([`DataplaneHandle`]):
//! one control channel and waker per worker, and the requests the control
//! core makes of them (stats, service addresses, drain, freeze, handoff,
//! restore). Knows the workers' [`Command`]s, not their ports.

use super::options::DataplaneError;
use crate::port::{worker_for_steered, PortSteer};
use crate::tcp::{FourTuple, TcbExport};
use crate::wire::ethernet::MacAddr;
use crate::worker::{Command, Waker, WorkerStats};
use crossbeam_channel::Sender;
use std::any::Any;
use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::Duration;

pub(super) struct WorkerHandle {
    pub(super) ctl: Sender<Command>,
    pub(super) waker: Waker,
    pub(super) thread: Option<JoinHandle<Result<(), DataplaneError>>>,
}

/// The running dataplane: its workers and their control channels.
pub struct DataplaneHandle {
    pub(super) workers: Vec<WorkerHandle>,
    pub(super) mac: MacAddr,
    /// The port steering the fanout applies (restores and handoffs find a
    /// connection's worker by the same rule).
    pub(super) steer: Option<PortSteer>,
}

impl DataplaneHandle {
    /// Number of workers.
    pub fn n_workers(&self) -> usize {
        self.workers.len()
    }

    /// The MAC address the dataplane sends from.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Asks every worker to stop (connections are dropped silently, as in a
    /// crash: survivors or clients deal with them).
    pub fn shutdown(&self) {
        for w in &self.workers {
            let _ = w.ctl.send(Command::Shutdown);
            w.waker.wake();
        }
    }

    /// Waits for every worker to stop; the first error wins.
    pub fn join(mut self) -> Result<(), DataplaneError> {
        let mut result = Ok(());
        for (i, w) in self.workers.iter_mut().enumerate() {
            if let Some(t) = w.thread.take() {
                let r = t.join().unwrap_or(Err(DataplaneError::WorkerPanicked(i)));
                if result.is_ok() {
                    result = r;
                }
            }
        }
        result
    }

    /// A snapshot of every worker's counters (workers that do not answer
    /// within a second are left out).
    pub fn stats(&self) -> Vec<WorkerStats> {
        let mut rxs = Vec::new();
        for w in &self.workers {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if w.ctl.send(Command::Stats(tx)).is_ok() {
                w.waker.wake();
                rxs.push(rx);
            }
        }
        rxs.into_iter()
            .filter_map(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .collect()
    }

    /// Sends a gratuitous ARP for `ip` (from worker 0, which owns ARP).
    pub fn announce(&self, ip: IpAddr) -> Result<(), DataplaneError> {
        self.send(0, Command::Announce(ip))
    }

    /// Starts answering for `ip` on every worker (IP takeover), then
    /// announces it.
    pub fn add_service_ip(&self, ip: IpAddr) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::AddServiceIp(ip))?;
        }
        self.announce(ip)
    }

    /// Tells every worker that frames from `macs` are other boxes
    /// forwarding clients' frames (takeover, migrate), not clients.
    pub fn add_forwarders(&self, macs: Vec<MacAddr>) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::AddForwarders(macs.clone()))?;
        }
        Ok(())
    }

    /// Tells every worker that new connections from `client` to `local` on
    /// `ports` go to the box whose MAC is `to`, for `ttl`
    /// ([`Command::RouteClient`]).
    pub fn route_client(
        &self,
        local: IpAddr,
        client: IpAddr,
        ports: std::ops::RangeInclusive<u16>,
        to: MacAddr,
        ttl: std::time::Duration,
    ) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(
                i,
                Command::RouteClient {
                    local,
                    client,
                    ports: ports.clone(),
                    to,
                    ttl,
                },
            )?;
        }
        Ok(())
    }

    /// Stops answering for `ip` on every worker.
    pub fn remove_service_ip(&self, ip: IpAddr) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::RemoveServiceIp(ip))?;
        }
        Ok(())
    }

    /// Stops (`true`) or resumes (`false`) accepting new connections on
    /// every worker, for a planned move of a box's connections.
    pub fn drain(&self, on: bool) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::Drain(on))?;
        }
        Ok(())
    }

    /// True once every worker thread has ended (after `freeze` or
    /// `shutdown`).
    pub fn stopped(&self) -> bool {
        self.workers
            .iter()
            .all(|w| w.thread.as_ref().is_none_or(|t| t.is_finished()))
    }

    /// Hands `tuples` over to the box whose MAC is `to` ([`Command::Handoff`]
    /// on the worker of each); returns those handed off (a connection that
    /// ended meanwhile is not).
    pub fn handoff(
        &self,
        tuples: Vec<FourTuple>,
        to: MacAddr,
    ) -> Result<Vec<FourTuple>, DataplaneError> {
        let n = self.workers.len();
        let mut per_worker: Vec<Vec<FourTuple>> = vec![Vec::new(); n];
        for t in tuples {
            per_worker[worker_for_steered(&t, n, self.steer)].push(t);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut asked = 0;
        for (i, tuples) in per_worker.into_iter().enumerate() {
            if !tuples.is_empty() {
                self.send(
                    i,
                    Command::Handoff {
                        tuples,
                        to,
                        done: tx.clone(),
                    },
                )?;
                asked += 1;
            }
        }
        let mut moved = Vec::new();
        for _ in 0..asked {
            moved.extend(rx.recv_timeout(Duration::from_secs(5)).map_err(|_| {
                DataplaneError::Options("a worker did not answer the handoff".into())
            })?);
        }
        Ok(moved)
    }

    /// Lets every connection the workers still hold go ([`Command::Release`]):
    /// final checkpoints written, TCBs dropped silently, the workers still
    /// running (they forward what was handed off). Returns how many.
    pub fn release(&self) -> Result<usize, DataplaneError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..self.workers.len() {
            self.send(i, Command::Release(tx.clone()))?;
        }
        let mut released = 0;
        for _ in 0..self.workers.len() {
            released += rx.recv_timeout(Duration::from_secs(5)).map_err(|_| {
                DataplaneError::Options("a worker did not answer the release".into())
            })?;
        }
        Ok(released)
    }

    /// Freezes every worker for a planned move: each connection's final
    /// checkpoint is written ([`App::on_freeze`](crate::app::App::on_freeze)), then the workers stop
    /// without sending anything more. Their threads end; `join` reaps them.
    pub fn freeze(&self) -> Result<(), DataplaneError> {
        for i in 0..self.workers.len() {
            self.send(i, Command::Freeze)?;
        }
        Ok(())
    }

    /// Hands a connection restored from a checkpoint to the worker that
    /// receives its packets ([`worker_for_steered`]); the app there gets
    /// [`App::on_restored`](crate::app::App::on_restored) with `app_data`.
    pub fn restore(
        &self,
        export: TcbExport,
        app_data: Box<dyn Any + Send>,
    ) -> Result<(), DataplaneError> {
        let w = worker_for_steered(&export.tuple, self.workers.len(), self.steer);
        self.send(w, Command::Restore { export, app_data })
    }

    /// [`Self::restore`] for a connection whose box had sent it everything:
    /// restored when the client speaks, or after `after` (see
    /// [`Command::RestoreLater`]).
    pub fn restore_later(
        &self,
        export: TcbExport,
        app_data: Box<dyn Any + Send>,
        after: std::time::Duration,
    ) -> Result<(), DataplaneError> {
        let w = worker_for_steered(&export.tuple, self.workers.len(), self.steer);
        self.send(
            w,
            Command::RestoreLater {
                export,
                app_data,
                after,
            },
        )
    }

    /// Sends a raw command to worker `i`.
    pub fn send(&self, i: usize, cmd: Command) -> Result<(), DataplaneError> {
        let w = self.workers.get(i).ok_or(DataplaneError::WorkerGone(i))?;
        w.ctl.send(cmd).map_err(|_| DataplaneError::WorkerGone(i))?;
        w.waker.wake();
        Ok(())
    }

    /// A waker for worker `i` (see [`Ctx::waker`](crate::app::Ctx::waker)).
    pub fn waker(&self, i: usize) -> Option<Waker> {
        self.workers.get(i).map(|w| w.waker.clone())
    }
}

impl Drop for DataplaneHandle {
    fn drop(&mut self) {
        if self.workers.iter().any(|w| w.thread.is_some()) {
            self.shutdown();
            for w in &mut self.workers {
                if let Some(t) = w.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}
