//! Target `http_request`: the appliance's request-head parser.
//!
//! The parser's source file is compiled into this crate as it is (it
//! depends on nothing of the appliance but `baton_config`'s limits), so
//! the fuzz build does not pay for the whole appliance.

#[allow(dead_code, clippy::all)]
#[path = "../../appliance/src/http/request.rs"]
pub mod request;

use request::{parse, Limits, Parsed};
use std::time::Duration;

/// Parses `data` under the default limits and under small ones (so the
/// 414/431 paths are reached by short inputs), and checks that a complete
/// head parses the same without the bytes after it.
pub fn run(data: &[u8]) {
    let small = Limits {
        max_request_line: 64,
        max_header_bytes: 256,
        idle_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        max_upload_bytes: 1 << 20,
    };
    for limits in [Limits::default(), small] {
        let r = parse(data, &limits);
        if let Ok(Parsed::Complete(req, n)) = &r {
            assert!(*n <= data.len(), "head longer than the input");
            assert_eq!(
                parse(&data[..*n], &limits),
                Ok(Parsed::Complete(req.clone(), *n)),
                "a head parses differently without what follows it"
            );
        }
        if let Err(e) = r {
            assert!(matches!(e.status(), 400 | 414 | 431 | 501 | 505));
        }
    }
}
