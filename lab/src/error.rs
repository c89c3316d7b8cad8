//! The lab's error type: what went wrong, with the context a user needs to
//! act on it ("box2 exited before it was ready; the tail of its log
//! says …"). Every command fails with one [`Error`]; its `Display` is the
//! whole chain, outermost context first, as the CLI prints it.
//!
//! The [`Context`] trait and [`bail!`](crate::bail) keep call sites as short
//! as they were: `.with_context(|| format!("cannot open {}", p.display()))?`.
//! This module must not know any lab command.
use std::fmt::Display;

use thiserror::Error;

use crate::names::NameError;
use crate::origin::OriginError;

/// Why a lab command failed.
#[derive(Debug, Error)]
pub enum Error {
    /// A refusal or a state the user must fix, said in words.
    #[error("{0}")]
    Msg(String),
    /// A failure, and what the lab was doing when it happened.
    #[error("{what}: {source}")]
    Context {
        /// What the lab was doing.
        what: String,
        /// What failed.
        source: Box<Error>,
    },
    /// A system call or file operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A device name held a NUL byte.
    #[error(transparent)]
    Nul(#[from] std::ffi::NulError),
    /// A lab prefix or node name was not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The origin server could not start.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// A `baton lab` command run through the driver failed.
    #[error(transparent)]
    Driver(#[from] crate::driver::LabError),
}

/// The lab's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what the lab was doing to a failure (or to a missing value).
pub trait Context<T> {
    /// Wraps the failure in `what`.
    fn context<C: Display>(self, what: C) -> Result<T>;
    /// Wraps the failure in what `f` says, computed only on failure.
    fn with_context<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context<C: Display>(self, what: C) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what.to_string(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: f().to_string(),
            source: Box::new(e.into()),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context<C: Display>(self, what: C) -> Result<T> {
        self.ok_or_else(|| Error::Msg(what.to_string()))
    }

    fn with_context<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.ok_or_else(|| Error::Msg(f().to_string()))
    }
}

/// Returns early with an [`Error::Msg`] formatted like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Msg(format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_outermost_first_like_the_cli_prints_it() {
        let io: std::result::Result<(), std::io::Error> = Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ));
        let err = io.context("cannot open box1.toml").unwrap_err();
        assert_eq!(err.to_string(), "cannot open box1.toml: no such file");
        let none: Option<u32> = None;
        assert_eq!(
            none.with_context(|| "box2 is not running")
                .unwrap_err()
                .to_string(),
            "box2 is not running"
        );
    }
}
