//! Fencing: a box its peers have taken over must stop serving at once, as
//! a crash would have, or its clients meet two senders and its
//! retransmissions end in resets.
//!
//! The signs are elsewhere: a committed view without this incarnation
//! (`baton_membership::Fence`, acted on in `super::agreed`), and in
//! replicated mode the loss of the Raft's quorum lease (`super::quorum`).
//! [`stop_serving`] carries a fence out, the same way for both.
use std::thread;
use std::time::Duration;

use baton_dataplane::DataplaneHandle;

/// Stops serving at once: the survivors serve our connections now. The
/// dataplane stops and the process exits with status 3, as a crash
/// would have (a supervisor restarts it as a new incarnation).
pub(crate) fn stop_serving(why: &str, dataplane: &DataplaneHandle) -> ! {
    tracing::error!(
        "{why}: its survivors serve our connections now; fencing this box (the dataplane stops, the process exits with status 3)"
    );
    dataplane.shutdown();
    thread::sleep(Duration::from_millis(20));
    std::process::exit(3);
}
