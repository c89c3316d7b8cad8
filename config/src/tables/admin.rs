//! `[admin]`: the admin API.

use std::fmt;
use std::net::SocketAddr;

use crate::convert::*;
use crate::schema::*;

table! {
    /// `[admin]`: the admin API.
    #[derive(Clone, PartialEq, Eq)]
    pub struct AdminConfig {
        /// Where the admin HTTP API listens (kernel stack, back LAN).
        listen: SocketAddr = req(parsed("a socket address like 198.19.0.11:9090")),
        /// Bearer token required on every admin request; non-empty, not the example's.
        token: String = req(admin_token),
    }
}

impl fmt::Debug for AdminConfig {
    // The token is a secret, like the cluster key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .finish()
    }
}
