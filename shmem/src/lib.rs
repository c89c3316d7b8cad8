//! The checkpoint segment.
