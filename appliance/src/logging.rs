//! Logging set-up: `RUST_LOG` wins, then the config's `box.log_level`, then `info`.
//! Called once by the binary's edge; the library itself only emits events.
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber (stderr, with timestamps).
pub fn init(config_level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(config_level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests, demo calling lab) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
