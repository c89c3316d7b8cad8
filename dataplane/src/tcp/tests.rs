//! Segment-by-segment tests of the TCP state machine.
