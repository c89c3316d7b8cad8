//! The Raft's transport: UDP datagrams on the back LAN, one message each,
//! authenticated under the cluster key.
//!
//! Why UDP (as for slot replication, `baton_shmem::replication`): a
//! membership message must never wait behind another's retransmission,
//! and Raft already retries on its own timers, so a lost datagram costs
//! one retry. Every message fits one datagram (entries and snapshots are
//! tiny); a larger one is refused at the sender.
//!
//! Rooms: `frame` (header, HMAC tag, replay window), `message` (what a
//! datagram says), `endpoint` (the socket, answers to callers, requests to
//! the server, the fault hook), `network` (openraft's `RaftNetwork` over
//! the endpoint). This module only re-exports them; it knows nothing of
//! storage or of the view.

pub mod endpoint;
pub mod frame;
pub mod message;
pub mod network;

pub use endpoint::{CallError, Endpoint, Faults, Incoming, TransportStats};
pub use message::{ClientRequest, ClientResponse, Message};
pub use network::Network;
