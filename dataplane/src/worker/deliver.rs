//! Delivery: after the receive burst and the timers, each touched
//! connection's events go to the app (accept, readable, writable, peer
//! closed, ready, closed), what it has to send goes out, and it is re-armed
//! or removed. Restored connections are tallied here as they become ready
//! or fail ([`super::RestoreStats`]).

use super::state::{app_ctx, Core};
use crate::app::{App, CloseReason};
use crate::port::{Port, PortError};
use crate::tcp::{Event, State};
use std::time::Instant;

impl Core {
    /// Every connection touched in this iteration, in turn: its events to
    /// the app, its segments to the egress, then its timer re-armed or the
    /// connection removed.
    pub(super) fn process_touched<P: Port, A: App>(
        &mut self,
        port: &mut P,
        app: &mut A,
        now: Instant,
    ) -> Result<(), PortError> {
        while let Some(id) = self.touched.pop() {
            let Some(c) = self.flows.get_mut(id) else {
                continue;
            };
            c.touched = false;
            self.events.clear();
            while let Some(ev) = c.tcb.poll_event() {
                self.events.push(ev);
            }
            let state = c.tcb.state();
            if c.half_open && state != State::SynReceived {
                c.half_open = false;
                self.half_open = self.half_open.saturating_sub(1);
            }
            let accept = !c.announced
                && !matches!(
                    state,
                    State::SynReceived | State::SynSent | State::Unready | State::Closed
                );
            if accept {
                c.announced = true;
            }
            let announced = c.announced;
            let mut done: Option<CloseReason> = None;
            {
                let mut ctx = app_ctx!(self, now);
                if accept {
                    self.counters.tcp_accepted += 1;
                    app.on_accept(id, &mut ctx);
                }
                for ev in self.events.drain(..) {
                    match ev {
                        Event::Established => {}
                        Event::Readable if announced => app.on_readable(id, &mut ctx),
                        Event::Writable if announced => app.on_writable(id, &mut ctx),
                        Event::PeerClosed if announced => app.on_peer_closed(id, &mut ctx),
                        Event::Ready { snd_una, rcv_nxt } => {
                            if let Some(at) = self.unready.ended(id) {
                                self.restores
                                    .record_ready(now.saturating_duration_since(at));
                            }
                            app.on_ready(id, snd_una, rcv_nxt, &mut ctx)
                        }
                        Event::Readable | Event::Writable | Event::PeerClosed => {}
                        Event::Closed => done = done.or(Some(CloseReason::Normal)),
                        Event::Reset => done = done.or(Some(CloseReason::Reset)),
                        Event::TimedOut => done = done.or(Some(CloseReason::TimedOut)),
                        Event::NotReady => done = done.or(Some(CloseReason::NotReady)),
                    }
                }
            }
            // Transmit what the segment, the timer or the app produced.
            self.transmit(port, id, now)?;
            let Some(c) = self.flows.get_mut(id) else {
                continue;
            };
            if done.is_none() && c.tcb.state() == State::Closed && !c.touched {
                done = Some(CloseReason::Normal);
            }
            match done {
                Some(reason) => {
                    if c.announced || c.opened {
                        let mut ctx = app_ctx!(self, now);
                        app.on_closed(id, reason, &mut ctx);
                    }
                    if let Some(c) = self.flows.remove(id) {
                        if c.half_open {
                            self.half_open = self.half_open.saturating_sub(1);
                        }
                        self.counters.tcp_closed += 1;
                    }
                    if self.unready.ended(id).is_some() {
                        // A normal close before ready: the client had closed
                        // with the dead box after the last checkpoint.
                        if reason == CloseReason::Normal {
                            self.restores.closed += 1;
                        } else {
                            self.restores.not_ready += 1;
                        }
                    }
                    self.timers.cancel(id.index());
                }
                None => match c.tcb.poll_timeout() {
                    Some(t) => self.timers.arm(id.index(), t),
                    None => self.timers.cancel(id.index()),
                },
            }
        }
        Ok(())
    }
}
