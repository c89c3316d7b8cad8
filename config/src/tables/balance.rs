//! `[balance]`: rebalancing connections between live boxes (issue 20).
//! Only the keys and their rules: the decision lives in
//! `baton_membership::balance`, the carrying out on the control core.

use crate::convert::*;
use crate::model::*;
use crate::schema::*;

table! {
    /// `[balance]`: moving connections from a loaded box to less loaded ones.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BalanceConfig: Default {
        /// Whether this box sends connections to less loaded boxes.
        enabled: bool = or(false, boolean),
        /// Act only when the most and least loaded boxes are more than this
        /// many connections apart (>= 1), so a level cluster stays put.
        threshold: u64 = or(DEFAULT_BALANCE_THRESHOLD, positive),
        /// Most connections this box moves per second (1..=100000).
        rate: u64 = or(DEFAULT_BALANCE_RATE, int_in(1, 100_000)),
        /// How often the loads are looked at, milliseconds (10..=600000).
        interval_ms: u64 = or(DEFAULT_BALANCE_INTERVAL_MS, int_in(10, 600_000)),
    }
}
