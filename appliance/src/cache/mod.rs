//! The object cache of the appliance: objects keyed by URL in memory under a
//! byte budget with LRU eviction, optional spill to a disk directory,
//! validators and freshness per object (RFC 9111), and the origin fetcher
//! pool that fills objects on a miss.
//!
//! Start reading at [`store::Cache`]: `lookup` finds or starts filling an
//! object; [`object::Object`] is the shared, chunked body that sessions
//! read while a [`fetch`] thread fills it ([`error`] says why a fill
//! failed); [`freshness`] decides how long an
//! object may be served; [`lru`] is the eviction order.
//!
//! Choices, in one place:
//! - only complete `200` answers that RFC 9111 §3 lets a shared cache keep
//!   are stored; `404` and other non-5xx statuses are passed through to the
//!   clients that asked (coalesced ones included) and forgotten;
//! - origin `5xx`, refused connections and malformed answers are `502`,
//!   timeouts `504`; a failed fill is dropped from the index at once, so
//!   the next request tries again (no poisoning);
//! - a stale object is revalidated with a conditional GET; when the origin
//!   cannot be reached, the stale copy is served for a few seconds more
//!   (RFC 9111 §4.2.4);
//! - evicted objects go to the disk directory when one is configured, and
//!   come back through a fetcher thread (no disk I/O on a worker).
//!
//! This module knows nothing of client connections: the HTTP sessions in
//! `crate::http` decide what to send. It takes `now: Instant` as an argument
//! wherever freshness is judged, so it is tested without waiting.

pub mod budget;
pub mod error;
pub mod fetch;
pub mod freshness;
pub mod lru;
pub mod object;
pub mod store;

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
pub(crate) mod tests;

pub use fetch::{Origin, UploadMethod, UploadRequest};
pub use object::{FetchProgress, Notifier, Object, ObjectId, ObjectMeta, Read, Waker};
pub use store::{Cache, CacheSettings};
