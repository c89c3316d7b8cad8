//! HTTP/1.1 sessions (in progress).
