//! Logging set-up: `RUST_LOG` wins, then the config's `box.log_level`, then `info`.
//! Called once by the binary's edge; the library itself only emits events.
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber (stderr, with timestamps).
pub fn init(config_level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(quiet_raft(config_level.unwrap_or("info"))))
        .unwrap_or_else(|_| EnvFilter::new(quiet_raft("info")));
    // A second init (tests, demo calling lab) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `directive`, with openraft silenced unless it names openraft: openraft
/// logs every timed-out message to a dead peer as an error, at its
/// heartbeat rate; the box logs what its Raft decides (leader, lease,
/// views) itself. `RUST_LOG` is taken as written.
fn quiet_raft(directive: &str) -> String {
    if directive.contains("openraft") {
        directive.to_string()
    } else {
        format!("{directive},openraft=off")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openraft_is_silenced_unless_the_directive_names_it() {
        assert_eq!(quiet_raft("info"), "info,openraft=off");
        assert_eq!(quiet_raft("debug,openraft=info"), "debug,openraft=info");
    }
}
