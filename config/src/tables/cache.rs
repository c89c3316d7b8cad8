//! `[cache]`: the HTTP cache and its origin.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::convert::*;
use crate::model::*;
use crate::schema::*;

table! {
    /// `[cache]`: the HTTP cache.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CacheConfig {
        /// Origin URL, `http://host[:port][/path]`.
        origin: String = req(origin_url),
        /// Memory budget of the cache, bytes.
        memory_bytes: u64 = req(byte_size),
        /// Optional on-disk cache directory.
        disk_dir: Option<PathBuf> = opt(|v| non_empty(v).map(PathBuf::from)),
        /// Concurrent origin fetchers.
        fetchers: usize = or(DEFAULT_FETCHERS, positive),
        /// Origin fetches queued or running at once; a miss beyond it is
        /// answered 503 with Retry-After.
        max_fetches: usize = or(DEFAULT_MAX_FETCHES, positive),
        /// Origin connect/response timeout, milliseconds.
        origin_timeout_ms: u64 = or(DEFAULT_ORIGIN_TIMEOUT_MS, positive),
    }
}

impl CacheConfig {
    /// The origin split into host, port and path; `None` when `origin` is
    /// not a valid `http://` URL (never after [`crate::parse`]).
    pub fn origin_url(&self) -> Option<OriginUrl<'_>> {
        OriginUrl::parse(&self.origin).ok()
    }

    /// Origin host (IPv6 without brackets); empty if `origin` is invalid.
    pub fn origin_host(&self) -> &str {
        self.origin_url().map_or("", |u| u.host)
    }

    /// Origin TCP port (80 when the URL names none).
    pub fn origin_port(&self) -> u16 {
        self.origin_url().map_or(80, |u| u.port)
    }

    /// Path prefix of the origin (`/` when the URL names none).
    pub fn origin_path(&self) -> &str {
        self.origin_url().map_or("/", |u| u.path)
    }

    /// The origin as a socket address when its host is an IP literal.
    pub fn origin_socket_addr(&self) -> Option<SocketAddr> {
        let url = self.origin_url()?;
        let ip: IpAddr = url.host.parse().ok()?;
        Some(SocketAddr::new(ip, url.port))
    }
}
