//! A worker on one end of an in-memory link and a test client on the
//! other, on a simulated clock: no root, no sockets. The client is a
//! [`Tcb`] of the dataplane's own stack, stepped one millisecond at a time.

use super::wire::{
    arp_reply, arp_request_for, client_tcp, tcp_of, BOX_MAC, CLIENT, CLIENT_MAC, SERVICE,
};
use baton_dataplane::app::App;
use baton_dataplane::port::memory::MemoryPort;
use baton_dataplane::responder::Responder;
use baton_dataplane::tcp::{Flags, SeqNum, Tcb};
use baton_dataplane::wire::ethernet;
use baton_dataplane::worker::{Worker, WorkerConfig};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP segment the box sent, as the client saw it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Its control bits.
    pub flags: Flags,
    /// Its acknowledgment number.
    pub ack: SeqNum,
}

/// The worker config of these tests: the box owns [`SERVICE`].
pub fn test_config() -> WorkerConfig {
    WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)])
}

/// A worker running `app` and the client's end of its link.
pub struct MemNet<A: App> {
    /// The box's worker, on [`BOX_MAC`].
    pub worker: Worker<MemoryPort, A>,
    /// The client's end of the link, on [`CLIENT_MAC`].
    pub wire: MemoryPort,
    /// The simulated clock.
    pub now: Instant,
}

impl<A: App> MemNet<A> {
    /// A worker for `app` started at `now`.
    pub fn new(app: A, cfg: WorkerConfig, now: Instant) -> MemNet<A> {
        let (wire, port) = MemoryPort::pair(CLIENT_MAC, BOX_MAC);
        MemNet {
            worker: Worker::new(port, app, cfg, now),
            wire,
            now,
        }
    }

    /// Sends what `client` has to send, runs the worker once, answers the
    /// box's ARP requests for [`CLIENT`] (a survivor must learn the
    /// client's MAC, seed Fig. 6), hands the box's TCP segments to
    /// `client` and returns them.
    pub fn step(&mut self, client: &mut Tcb) -> Vec<Sent> {
        while let Some(seg) = client.poll_transmit(self.now) {
            self.wire
                .send(client_tcp(&seg))
                .expect("the in-memory wire takes every frame");
        }
        self.worker.poll(self.now).expect("memory port never fails");
        let mut sent = Vec::new();
        for f in self.wire.drain() {
            if let Some(a) = arp_request_for(&f, CLIENT) {
                self.wire
                    .send(arp_reply(CLIENT_MAC, CLIENT, a.sender_mac, a.sender_ip))
                    .expect("the in-memory wire takes every frame");
                continue;
            }
            if ethernet::parse(&f).is_ok_and(|(eh, _)| eh.ethertype == ethernet::ETHERTYPE_ARP) {
                continue;
            }
            let (_, s) = tcp_of(&f).expect("box frames are ARP or valid TCP");
            sent.push(Sent {
                flags: s.flags,
                ack: s.ack,
            });
            client.on_segment(self.now, &s);
        }
        sent
    }

    /// Advances time by 1 ms, firing the client's timers.
    pub fn tick(&mut self, client: &mut Tcb) {
        self.now += Duration::from_millis(1);
        if client.poll_timeout().is_some_and(|t| t <= self.now) {
            client.on_timeout(self.now);
        }
    }

    /// Runs client and worker for `ms` simulated milliseconds; returns the
    /// bytes the client received.
    pub fn run(&mut self, client: &mut Tcb, ms: u64) -> Vec<u8> {
        let mut got = Vec::new();
        for _ in 0..ms {
            self.step(client);
            while client.poll_event().is_some() {}
            recv_into(client, &mut got);
            self.tick(client);
        }
        got
    }
}

/// A worker whose [`Responder`] serves `body` at `/NAME`; `cfg` adjusts the
/// worker config first.
pub fn responder_net(
    name: &str,
    body: Bytes,
    cfg: impl FnOnce(&mut WorkerConfig),
) -> MemNet<Responder> {
    let mut objs = HashMap::new();
    objs.insert(name.to_string(), body);
    let mut c = test_config();
    cfg(&mut c);
    MemNet::new(Responder::new(Arc::new(objs)), c, Instant::now())
}

/// Appends everything `client` has received in order to `got`.
pub fn recv_into(client: &mut Tcb, got: &mut Vec<u8>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = client.recv(&mut buf);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Where the body starts in an HTTP response (after the head's blank
/// line, RFC 9112 §2.1), once the head is complete.
pub fn body_start(response: &[u8]) -> Option<usize> {
    response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}
