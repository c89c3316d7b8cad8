//! The origin server of Baton's labs and tests: plain HTTP/1.1 over kernel
//! sockets, one thread per connection. The lab runs it as a process of its
//! own (`baton lab serve-origin`, [`serve`]) over the files of one folder
//! ([`Dir`]); a test runs it in process with [`Origin::start`] over any
//! [`Store`] — usually [`Memory`], objects it changes as it goes — and
//! steers it: per-path [`Fault`]s (a status, a hang, a close, a truncated,
//! held, chunked or close-delimited body), [`Origin::release`] for held
//! answers, and the request heads and uploads received.
//!
//! It does what a cache needs from an origin to resume an object on another
//! box (ARCHITECTURE.md, Takeover step 6), per RFC 9110:
//! - validators: a strong `ETag` ("mtime-size" in hex, as nginx makes them)
//!   and `Last-Modified` (§8.8);
//! - `If-None-Match` / `If-Modified-Since` answered with 304 (§13.1.2,
//!   §13.1.3, evaluated in the order of §13.2.2);
//! - a single byte `Range` answered with 206 and `Content-Range`, an
//!   unsatisfiable one with 416 and `Content-Range: bytes */LEN` (§14.2,
//!   §15.5.17); several ranges are ignored and the whole object sent, which
//!   §14.2 allows;
//! - `If-Range` with an entity tag or a date: a mismatch sends the whole
//!   object with 200 (§13.1.5).
//!
//! Files are streamed from disk (the kernel's sendfile through `io::copy`),
//! never loaded whole. [`Memory`] objects carry `ETag` [`DEFAULT_ETAG`]
//! (until changed) and `Last-Modified` [`LAST_MODIFIED`].
//!
//! Uploads (POST and PUT, with `Content-Length`) to any path are read
//! whole and answered `201 Created` with `sha256=HEX bytes=N copies=K`: the
//! body's digest and length, and how many uploads of that path this origin
//! has received so far, so a test sees both the bytes and whether an
//! upload reached the origin twice ([`upload_answer`]). The lab's process
//! stores no bodies; an in-process origin keeps them for
//! [`Origin::uploads`].
//!
//! `plan` decides each answer without I/O, `store` says what an object is,
//! `state` holds what connections share, and `conn` moves the bytes.
//! It must not know the appliance: it is the other side of the wire.
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::{debug, info, warn};

mod conn;
mod plan;
mod state;
mod store;
#[cfg(test)]
mod tests;

use conn::Conn;
use state::Shared;

pub use conn::{upload_answer, FAULT_BODY};
pub use plan::NOT_FOUND_BODY;
pub use state::Fault;
pub use store::{Body, Dir, Entry, Memory, Store, DEFAULT_ETAG, LAST_MODIFIED};

/// Arguments of the hidden `baton lab serve-origin`.
#[derive(clap::Args, Debug)]
pub struct OriginArgs {
    /// Folder whose files are served.
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "198.19.0.2:80")]
    pub listen: SocketAddr,
    /// File created once the server listens.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// Why the origin could not start.
#[derive(Debug, Error)]
pub enum OriginError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why bind failed.
        source: std::io::Error,
    },
    /// The listener's own address could not be read.
    #[error("listener has no address: {0}")]
    LocalAddr(std::io::Error),
    /// The ready file could not be written.
    #[error("cannot write {path}: {source}")]
    ReadyFile {
        /// The file.
        path: PathBuf,
        /// Why the write failed.
        source: std::io::Error,
    },
}

/// Runs the origin until killed.
pub fn serve(args: OriginArgs) -> Result<(), OriginError> {
    let listener = TcpListener::bind(args.listen).map_err(|source| OriginError::Listen {
        addr: args.listen,
        source,
    })?;
    info!("origin serves {} on {}", args.root.display(), args.listen);
    if let Some(ready) = &args.ready_file {
        std::fs::write(ready, b"listening\n").map_err(|source| OriginError::ReadyFile {
            path: ready.clone(),
            source,
        })?;
    }
    serve_on(listener, args.root);
    Ok(())
}

/// Serves the files under `root` on `listener`, one thread per connection,
/// until the process ends. Nothing is logged or kept: this is the lab's
/// long-running origin.
pub fn serve_on(listener: TcpListener, root: PathBuf) {
    accept(listener, &Arc::new(Shared::new(Box::new(Dir(root)), false)));
}

/// Accepts connections until the origin stops.
fn accept(listener: TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopped() {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            if let Err(e) = Conn::new(stream).serve(&shared) {
                debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// An origin running in this process, for tests; it stops when dropped
/// (held and hung answers end, the listener closes).
pub struct Origin {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Origin {
    /// Serves `store` on `listener` (a test binds 127.0.0.1:0) from a
    /// thread of its own, keeping every request head and upload.
    pub fn start(listener: TcpListener, store: impl Store) -> Result<Origin, OriginError> {
        let addr = listener.local_addr().map_err(OriginError::LocalAddr)?;
        let shared = Arc::new(Shared::new(Box::new(store), true));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || accept(listener, &s));
        Ok(Origin { addr, shared })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes requests for `target` misbehave as `fault` says.
    pub fn set_fault(&self, target: &str, fault: Fault) {
        self.shared.set_fault(target, Some(fault));
    }

    /// Answers requests for `target` properly again.
    pub fn clear_fault(&self, target: &str) {
        self.shared.set_fault(target, None);
    }

    /// Lets every held answer ([`Fault::Hold`], [`Fault::Chunked`]) go
    /// on, now and from now on.
    pub fn release(&self) {
        self.shared.release();
    }

    /// Every request head received so far, raw, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.with_log(|l| l.requests.clone())
    }

    /// How many GETs of `target` were received.
    pub fn requests_for(&self, target: &str) -> usize {
        let line = format!("GET {target} ");
        self.shared
            .with_log(|l| l.requests.iter().filter(|r| r.starts_with(&line)).count())
    }

    /// Every upload received: "METHOD target" and its body.
    pub fn uploads(&self) -> Vec<(String, Vec<u8>)> {
        self.shared.with_log(|l| l.uploads.clone())
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop();
        // Wakes the accept loop so it sees the stop and closes the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}
