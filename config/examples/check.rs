//! `cargo run -p baton-config --example check FILE...`: validates files the
//! way `baton check-config` does, and with `--emit` prints the normalized
//! TOML (every default written out).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut emit = false;
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        if arg == "--emit" {
            emit = true;
            continue;
        }
        match baton_config::load(Path::new(&arg)) {
            Ok(c) if emit => print!("{}", c.to_toml()),
            Ok(_) => println!("{arg}: OK"),
            Err(e) => {
                println!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
