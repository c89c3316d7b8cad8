//! `[box]`: who this box is.

use crate::convert::*;
use crate::model::*;
use crate::read::{Checker, Tbl};
use crate::schema::*;

table! {
    /// `[box]`: identity of this box.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NodeConfig {
        /// Box id, 1..=254; must appear in `cluster.members`.
        id: u16 = req(int_in(1, 254)),
        /// Human name used in logs; defaults to `box{id}`.
        name: String = or(String::new(), non_empty),
        /// A tracing `EnvFilter` directive such as `info` or `info,baton=debug`;
        /// `RUST_LOG` overrides it.
        log_level: String = or(DEFAULT_LOG_LEVEL.to_string(), log_filter),
    }
    check = name_defaults_to_id;
}

/// A name left out is `box{id}`. The empty default stands for "left out":
/// `non_empty` never lets an empty name through.
fn name_defaults_to_id(_: &mut Checker<'_>, _: &Tbl<'_>, p: &mut Parts) -> bool {
    if p.name.as_deref() == Some("") {
        p.name = p.id.map(|id| format!("box{id}"));
    }
    true
}
