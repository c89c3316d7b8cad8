//! Replication of a region to peers that share no mapping (to come).
