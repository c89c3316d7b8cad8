//! Keeps the FTP catalog (issue 17) in step with the origin's index: a
//! thread asks the origin for `/.ftp-index` (lines `name size mtime`, see
//! [`super::ftp_hub::parse_index`]) at start and then every
//! [`REFRESH`], and puts what it read in the hub. It runs beside the
//! fetchers, never on a worker; a failed read keeps the last catalog.
//!
//! It must not know FTP sessions or workers: it only fills the catalog.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use baton_dataplane::flow::ConnId;
use tracing::{info, warn};

use super::ftp_hub::{parse_index, FtpHub};
use crate::cache::Origin;

/// How often the index is read again.
pub const REFRESH: Duration = Duration::from_secs(10);
/// The index's path on the origin (under its prefix).
pub const INDEX_PATH: &str = "/.ftp-index";
/// Largest index read (a line is ~40 bytes: some 100,000 objects).
const MAX_INDEX: u64 = 4 << 20;

/// Starts the thread; it ends with the process.
pub fn spawn(origin: Origin, hub: Arc<FtpHub<ConnId>>) {
    let spawned = std::thread::Builder::new()
        .name("ftp-index".into())
        .spawn(move || {
            let mut last = None;
            loop {
                match fetch(&origin) {
                    Ok(text) => {
                        let entries = parse_index(&text);
                        if last != Some(entries.len()) {
                            info!(
                                objects = entries.len(),
                                "FTP catalog read from the origin's index"
                            );
                        }
                        last = Some(entries.len());
                        hub.set_catalog(entries);
                    }
                    Err(e) => warn!(%e, "FTP catalog: the origin's index could not be read"),
                }
                std::thread::sleep(REFRESH);
            }
        });
    if let Err(e) = spawned {
        warn!(%e, "FTP catalog thread not started: listings stay empty");
    }
}

fn fetch(origin: &Origin) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&origin.addr, origin.timeout)?;
    s.set_read_timeout(Some(origin.timeout))?;
    write!(
        s,
        "GET {}{INDEX_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        origin.prefix, origin.host
    )?;
    let mut raw = Vec::new();
    s.take(MAX_INDEX).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of the response head"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(std::io::Error::other(format!("origin answered {status}")));
    }
    Ok(body.to_string())
}
