//! `[limits]`: HTTP and connection limits.

use crate::convert::*;
use crate::model::*;
use crate::schema::*;

table! {
    /// `[limits]`: HTTP and connection limits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LimitsConfig: Default {
        /// Largest request header block, bytes; beyond it the answer is 431.
        max_header_bytes: usize = or(DEFAULT_MAX_HEADER_BYTES, positive),
        /// Longest request line, bytes; beyond it the answer is 414.
        max_request_line: usize = or(DEFAULT_MAX_REQUEST_LINE, positive),
        /// Close a connection idle this long, milliseconds.
        idle_timeout_ms: u64 = or(DEFAULT_IDLE_TIMEOUT_MS, positive),
        /// A request head must be complete this long after its first byte (blank lines
        /// before it included), else 408 and close (slowloris), milliseconds.
        request_timeout_ms: u64 = or(DEFAULT_REQUEST_TIMEOUT_MS, positive),
        /// Most concurrent HTTP connections served.
        max_connections: usize = or(DEFAULT_MAX_CONNECTIONS, positive),
        /// Largest request body (upload) accepted, bytes; beyond it the answer
        /// is 413.
        max_upload_bytes: u64 = or(DEFAULT_MAX_UPLOAD_BYTES, byte_size),
    }
}
