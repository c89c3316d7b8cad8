//! `[failure]`: heartbeat-based failure detection.

use crate::convert::*;
use crate::model::*;
use crate::schema::*;

table! {
    /// `[failure]`: heartbeat-based failure detection.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FailureConfig: Default {
        /// Heartbeat period, milliseconds (> 0).
        heartbeat_interval_ms: u64 = or(DEFAULT_HEARTBEAT_INTERVAL_MS, positive),
        /// Heartbeats missed in a row before a peer is declared dead (>= 1).
        missed: u32 = or(DEFAULT_MISSED, positive),
    }
}

impl FailureConfig {
    /// How long a silent peer lives before it is declared dead.
    pub fn detection_ms(&self) -> u64 {
        self.heartbeat_interval_ms
            .saturating_mul(u64::from(self.missed))
    }
}
