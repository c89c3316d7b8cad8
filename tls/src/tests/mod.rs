//! In-memory tests against a real peer: a rustls client talking to
//! Baton's handshake and record layer, with takeovers in the middle.

mod harness;
mod session;
mod takeover;
