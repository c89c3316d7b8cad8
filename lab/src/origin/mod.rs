//! The lab's built-in origin server (`baton lab serve-origin`, or in a
//! process of one's own with [`serve_on`]): plain
//! HTTP/1.1 over kernel sockets, one thread per connection, serving the
//! files of one folder.
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
//! never loaded whole.
//!
//! Uploads (POST and PUT, with `Content-Length`) to any path are read
//! whole and answered `201 Created` with `sha256=HEX bytes=N copies=K`: the
//! body's digest and length, and how many uploads of that path this origin
//! has received so far, so a test sees both the bytes and whether an
//! upload reached the origin twice. Bodies are not stored.
//!
//! `plan` decides each answer without I/O; `conn` moves the bytes.
//! It must not know the appliance: it is the other side of the wire.
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::{debug, info, warn};

mod conn;
mod plan;

use conn::{Conn, Uploads};

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
/// until the process ends: the in-process entry point (a test binds
/// 127.0.0.1:0 and runs this on a thread of its own).
pub fn serve_on(listener: TcpListener, root: PathBuf) {
    let root = Arc::new(root);
    let uploads = Uploads::default();
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let root = Arc::clone(&root);
        let uploads = uploads.clone();
        std::thread::spawn(move || {
            if let Err(e) = Conn::new(stream).serve(&root, &uploads) {
                debug!("connection from {peer}: {e}");
            }
        });
    }
}
