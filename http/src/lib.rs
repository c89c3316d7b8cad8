//! `baton-http`: the pure HTTP/1.1 rules that every server in the project
//! answers by — byte ranges (RFC 9110 §14), conditional requests (§13), and
//! [`decide`], the one place that combines them in §13.2.2's order.
//!
//! The appliance's HTTP sessions and the lab's origin server both plan
//! their responses with [`decide`], so the origin a test runs against and
//! the cache under test cannot drift apart.
//!
//! This crate owns no socket, reads no clock and knows nothing of caches,
//! TCP or takeover: strings and numbers in, a [`Decision`] out.

#![deny(missing_docs)]

pub mod conditional;
pub mod decision;
pub mod range;

pub use decision::{decide, Decision, Preconditions, Validators};
pub use range::RangeOutcome;
