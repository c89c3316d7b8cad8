//! The runtime: starts the workers on their threads over the port a
//! [`PortConfig`](crate::port::PortConfig) names ([`start`]), and gives the
//! control core its [`DataplaneHandle`] on them.
//!
//! - `options.rs`: [`DataplaneOptions`] (what every worker needs, whatever
//!   the port) and [`DataplaneError`].
//! - `start.rs`: [`start`] (open the backend, then the workers) and
//!   [`start_with_ports`] (workers on ports the caller opened).
//! - `handle.rs`: [`DataplaneHandle`], the control core's side of the
//!   workers' command channels.
//!
//! The runtime knows the worker and the app interface; it does not know
//! which backend the ports come from.

mod handle;
mod options;
mod start;

pub use handle::DataplaneHandle;
pub use options::{DataplaneError, DataplaneOptions};
pub use start::{pin_current_thread, start, start_with_ports};
