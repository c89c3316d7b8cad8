//! The sans-IO TCP state machine.
pub mod seq;
pub mod segment;
