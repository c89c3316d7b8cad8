//! `baton`: one Baton appliance box — the control core, the HTTP cache over
//! the userspace TCP stack, the admin API — as a library; `main.rs` is the
//! command line over it.
//!
//! What it owns: wiring a box from its configuration ([`run`]); the control
//! core that judges peers, fences this box and takes connections over or
//! moves them on purpose (`control`); the HTTP/1.1 sessions, sans-IO
//! ([`http`]), over the object cache and its origin fetchers ([`cache`]); the glue between the dataplane's
//! workers and the HTTP sessions, which writes each connection's checkpoint
//! (`serve`); the one conversion between checkpoint records and what the
//! dataplane and HTTP restore (`record`); the orphan table of connections
//! inherited from other boxes ([`orphans`]); the upload spool (`spool`); the
//! admin API ([`admin`]) and what a box answers through it (`boxadmin`);
//! the box table as an operator reads it ([`status`]); stopping the whole
//! box at once when a part of it fails (`fatal`); the box's epoch, kept
//! growing across reboots ([`incarnation`]); what systemd learns of the
//! box: ready, status, watchdog pings, stopping ([`notify`]).
//!
//! What it must not know: how frames reach a port (the dataplane's ports
//! hide AF_PACKET and DPDK), how the segment lays out its bytes (baton-shmem),
//! or HTTP's range and conditional rules (baton-http). Time for the failure
//! detector comes in as an argument; the wall clock lives in [`clock`], the
//! operating system's scheduling calls in `sys`.
//!
//! Start reading at [`run::run`], which builds a box: the segment, the
//! dataplane with one `serve::CacheApp` per worker, then `control`'s
//! watcher. The takeover itself is `control::takeover::plan`.
#![deny(missing_docs)]

pub mod admin;
pub(crate) mod boxadmin;
pub mod clock;
pub(crate) mod control;
pub(crate) mod fatal;
pub mod incarnation;
pub mod logging;
pub mod notify;
pub mod orphans;
pub(crate) mod record;
pub mod run;
pub(crate) mod serve;
pub mod spool;
pub mod status;
pub(crate) mod strays;
pub(crate) mod sys;
pub mod tls_files;

pub mod cache;
pub mod http;

pub(crate) mod port_config;
