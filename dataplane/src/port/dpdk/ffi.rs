//! Raw bindings to the system's DPDK: what build.rs generated with bindgen
//! from `dpdk-shim/shim.h`, allowlisted to the calls [`super`] makes (the
//! EAL, ethdev configuration, mempools, vdev hot-plug) plus the shim's
//! `baton_*` wrappers of DPDK's `static inline` fast path.
//!
//! Nothing here is safe to call without reading DPDK's documentation of
//! the function; [`super`] is the only user.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    unnecessary_transmutes
)]

include!(concat!(env!("OUT_DIR"), "/dpdk_bindings.rs"));
