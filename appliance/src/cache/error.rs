//! Why a fill failed, and what a client is told then. Shared by the
//! objects (which hold a failure) and the fetchers (which cause one); it
//! knows neither.

/// Why a fill failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Connecting or waiting for the origin took longer than the timeout.
    #[error("origin timed out")]
    Timeout,
    /// The origin could not be reached (refused, unreachable).
    #[error("cannot connect to the origin: {0}")]
    Connect(String),
    /// The origin's answer was not valid HTTP/1.1 or was cut short.
    #[error("bad response from the origin: {0}")]
    BadResponse(String),
    /// The origin answered with a server error.
    #[error("origin answered {0}")]
    OriginStatus(u16),
    /// Reading or writing the origin connection (or a disk copy) failed.
    #[error("origin i/o: {0}")]
    Io(String),
}

impl FetchError {
    /// The status a client gets for it: 504 for timeouts, 502 otherwise.
    pub fn client_status(&self) -> u16 {
        match self {
            FetchError::Timeout => 504,
            _ => 502,
        }
    }
}
