//! The HTTP/1.1 side of the caching reverse proxy: per-connection sessions,
//! sans-IO, that parse requests under the box's limits, answer GET and HEAD
//! from the cache (ranges, conditionals, keep-alive, pipelining), stream
//! bodies as zero-copy slices of cached objects, and record what a
//! survivor needs to continue a response after a takeover.
//!
//! Start reading at [`session::HttpSession`] (its module doc gives the
//! call order the worker glue follows, and its three machines: answers,
//! uploads, resumes); [`context::WorkerContext`] is what the sessions of
//! one worker share, [`counters`] what they count; [`worker::HttpWorker`]
//! drives them all for one worker over a [`worker::Transport`];
//! [`checkpoint`] is the takeover side.
//! [`request`] and [`response`] are the pure RFC 9110/9112 pieces, each
//! tested on its own; ranges and conditionals are `baton_http`'s, shared
//! with the lab's origin.
//!
//! POST and PUT are uploads: [`upload`] spools their bodies where a
//! survivor can find them — sessions only say what to write, the
//! [`spool_writer`] thread of each worker writes it — and the body goes to
//! the origin once complete; the origin's answer is passed back, never
//! cached. Other methods get 405 with `Allow: GET, HEAD, POST, PUT`.
//!
//! Nothing here knows the dataplane, the segment or the control core:
//! the glue in `crate::serve` implements [`worker::Transport`].

pub mod checkpoint;
pub mod context;
pub mod counters;
pub mod request;
pub mod response;
pub mod session;
pub mod spool_writer;
pub mod upload;
pub mod worker;

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;

pub use checkpoint::ResponseCheckpoint;
pub use context::HttpWorkers;
pub use request::Limits;
