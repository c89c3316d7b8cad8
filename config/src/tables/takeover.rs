//! `[takeover]`: how a dead box's connections are split over the
//! survivors (issue 20).

use crate::convert::*;
use crate::model::*;
use crate::schema::*;

table! {
    /// `[takeover]`: how a dead box's connections are split.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct TakeoverConfig: Default {
        /// "round_robin" (slot s to survivor s mod n) or "least_loaded"
        /// (weighted by each survivor's spare capacity).
        assignment: Assignment = or(
            Assignment::RoundRobin,
            choice(&[Assignment::RoundRobin, Assignment::LeastLoaded])
        ),
        /// Connections a box is sized for (> 0): least_loaded's spare
        /// capacity is this minus what a survivor uses.
        capacity: u64 = or(DEFAULT_TAKEOVER_CAPACITY, positive),
        /// Idle connections in this box's share of a takeover above which
        /// they are parked until their clients speak (0: always).
        park_idle_above: u64 = or(DEFAULT_PARK_IDLE_ABOVE, non_negative),
        /// How long a parked connection waits for its client before it is
        /// restored anyway, milliseconds (> 0).
        idle_restore_after_ms: u64 = or(DEFAULT_IDLE_RESTORE_AFTER_MS, positive),
    }
}
