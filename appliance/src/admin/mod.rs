//! The admin API of a box: a small HTTP/1.1 server on kernel sockets, bound
//! on the back LAN (`[admin] listen`, 198.19.0.(10+N):9090 in the lab), that
//! lets an operator or a scraper see and steer the box.
//!
//! It owns the HTTP side only: authentication (a bearer token, [`auth`]),
//! the endpoint table ([`route`], documented in `docs/ADMIN.md`), the
//! Prometheus text format ([`prometheus`]), protection of the box against
//! its clients ([`server`]: head size, read timeout, connection cap), and the
//! client the CLI uses ([`client`]). What the answers say comes from the box
//! through the [`AdminSource`] trait ([`source`]); this module knows nothing
//! of the segment, the cache or the workers, so it is tested over 127.0.0.1
//! with a fake source (`appliance/tests/admin_*.rs`).
//!
//! Start reading at [`spawn`], then [`route::route`].

pub mod auth;
pub mod client;
pub mod json;
pub mod prometheus;
pub mod route;
pub mod server;
pub mod source;

pub use client::request;
pub use server::{spawn, spawn_with, AdminServer, AdminStats, Limits};
pub use source::{
    AdminSource, BalanceMoveRow, BalanceReport, CacheStatus, LoadStatus, Metric, MetricKind,
    PeerStatus, RaftReport, StatusReport, ViewReport, WorkerStatus,
};

/// What can go wrong when calling the admin API with [`request`].
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The box did not accept the connection.
    #[error("cannot reach the admin API at {addr}: {source}")]
    Connect {
        /// Where we tried.
        addr: std::net::SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The connection failed or timed out mid-request.
    #[error("admin API connection: {0}")]
    Io(#[from] std::io::Error),
    /// The method or path cannot be sent (spaces, line breaks, no leading /).
    #[error("cannot send this request: {0}")]
    BadRequest(String),
    /// The answer is not HTTP.
    #[error("the admin API's answer is not HTTP: {0}")]
    BadResponse(String),
    /// The connection closed before the whole answer arrived.
    #[error("the admin API's answer was cut short")]
    Truncated,
    /// The answer is larger than the client accepts.
    #[error("the admin API's answer is too large")]
    TooLarge,
}
