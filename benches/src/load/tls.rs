//! HTTPS for `baton-load`: the client settings (the lab CA as the only
//! root, the versions asked for) and a non-blocking rustls connection
//! over one mio socket, read and written as plaintext. It must not know
//! HTTP: [`super::conn`] drives the requests over it as over plain TCP.
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::load::net::recv_stamped;

/// Client settings that trust only the CA in `cacert` (PEM) and offer
/// `version` ("1.2" or "1.3"), or both when `None`.
pub fn client_config(cacert: &Path, version: Option<&str>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cacert)
        .with_context(|| format!("{}: cannot read", cacert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate", cacert.display()))?;
    if certs.is_empty() {
        bail!("{}: holds no certificate", cacert.display());
    }
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("{}: not a CA certificate", cacert.display()))?;
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = match version {
        None => rustls::ALL_VERSIONS,
        Some("1.2") => &[&rustls::version::TLS12],
        Some("1.3") => &[&rustls::version::TLS13],
        Some(other) => bail!("--tls-version {other}: expected 1.2 or 1.3"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection a full handshake: the handshake rate measures that,
    // and a takeover test must not lean on a resumed session.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The server name to ask for and check: `name` (a DNS name or an
/// address), else the address connected to (the lab's certificates name
/// every service address).
pub fn server_name(name: Option<&str>, ip: IpAddr) -> Result<ServerName<'static>> {
    match name {
        Some(n) => ServerName::try_from(n.to_string())
            .with_context(|| format!("--server-name {n}: not a DNS name or an address")),
        None => Ok(ServerName::IpAddress(ip.into())),
    }
}

/// One TLS client connection asking for `name`.
pub(crate) fn connect(
    config: &Arc<ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<ClientConnection> {
    ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)
}

/// Sends what rustls has queued (handshake messages, records) until it has
/// nothing left or the socket would block.
fn flush(tls: &mut ClientConnection, stream: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Queues `data` as plaintext (sent once the handshake is done) and sends
/// what it can: all of `data` is taken.
pub(crate) fn write(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    data: &[u8],
) -> io::Result<usize> {
    tls.writer().write_all(data)?;
    flush(tls, stream)?;
    Ok(data.len())
}

/// Reads plaintext into `buf`: what rustls holds already, else records from
/// the socket (with the kernel's receive stamp of the last of them). `Ok(0)`
/// is the server's close; `WouldBlock` when the socket has nothing more.
pub(crate) fn read(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<(usize, Option<u64>)> {
    let mut stamped = Stamped {
        stream,
        stamp: None,
    };
    loop {
        flush(tls, stamped.stream)?;
        match tls.reader().read(buf) {
            Ok(n) => return Ok((n, stamped.stamp)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The server closed without close_notify: as a TCP close.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((0, stamped.stamp)),
            Err(e) => return Err(e),
        }
        // Only when no plaintext is left: rustls takes at most a record's
        // worth, so its plaintext buffer never overflows.
        if tls.read_tls(&mut stamped)? == 0 {
            return Ok((0, stamped.stamp));
        }
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
}

/// The socket as a reader that keeps the kernel's receive stamp of what it
/// read last (the failover suite's resume time).
struct Stamped<'a> {
    stream: &'a mut TcpStream,
    stamp: Option<u64>,
}

impl Read for Stamped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, stamp) = recv_stamped(self.stream, buf)?;
        self.stamp = stamp.or(self.stamp);
        Ok(n)
    }
}
