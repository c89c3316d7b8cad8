//! Baton's benchmarks: criterion micro-benchmarks of the dataplane and the
//! checkpoint segment (`benches/`), and later the load and failover harness
//! that drives the lab. Nothing here is part of the appliance.
