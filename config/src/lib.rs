//! The configuration file of a Baton box.
