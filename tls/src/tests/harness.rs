//! A rustls client and a Baton server joined by memory: the client's
//! bytes go to the server, the server's output goes to the client, and the
//! harness counts the stream bytes delivered to the client so a takeover
//! can say how much the client "acknowledged".

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};

use crate::config::{CertifiedKeys, TlsConfig};
use crate::handshake::{Handshake, Progress};
use crate::session::{Event, Session};

pub const NAME: &str = "lab.baton.test";

/// Every (version, suite) Baton serves.
pub const SUITES: [(&SupportedProtocolVersion, u16); 6] = [
    (&rustls::version::TLS13, 0x1301),
    (&rustls::version::TLS13, 0x1302),
    (&rustls::version::TLS13, 0x1303),
    (&rustls::version::TLS12, 0xc02b),
    (&rustls::version::TLS12, 0xc02c),
    (&rustls::version::TLS12, 0xcca9),
];

pub struct Cert {
    pub der: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

/// A self-signed ECDSA P-256 certificate for `names`.
pub fn cert(names: &[&str]) -> Cert {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    Cert {
        der: c.cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(c.key_pair.serialize_der().into()),
    }
}

pub fn server_config(c: &Cert) -> TlsConfig {
    let mut keys = CertifiedKeys::new();
    let k = CertifiedKeys::load(vec![c.der.clone()], c.key.clone_key()).unwrap();
    keys.add(NAME, k.clone());
    keys.set_default(k);
    TlsConfig::new(keys).unwrap()
}

pub fn client(
    c: &Cert,
    version: &'static SupportedProtocolVersion,
    suite: u16,
    extract: bool,
) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    roots.add(c.der.clone()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| u16::from(s.suite()) == suite);
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.enable_secret_extraction = extract;
    ClientConnection::new(Arc::new(cfg), ServerName::try_from(NAME).unwrap()).unwrap()
}

/// The client's pending bytes.
pub fn client_output(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).unwrap();
    }
    out
}

/// Feeds server bytes to the client; returns the plaintext it can read
/// and whether it saw close_notify. Panics on any TLS error (an alert).
pub fn client_input(client: &mut ClientConnection, mut bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut plain = Vec::new();
    let mut eof = false;
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).unwrap();
        client
            .process_new_packets()
            .expect("client accepts the server's records");
        drain(client, &mut plain, &mut eof);
    }
    (plain, eof)
}

fn drain(client: &mut ClientConnection, plain: &mut Vec<u8>, eof: &mut bool) {
    let mut buf = [0u8; 65536];
    loop {
        match client.reader().read(&mut buf) {
            Ok(0) => {
                *eof = true;
                return;
            }
            Ok(n) => plain.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("client read: {e}"),
        }
    }
}

/// A connection after its handshake.
pub struct Pair {
    pub client: ClientConnection,
    pub server: Session,
    /// Stream bytes delivered to the client (what it acknowledged).
    pub delivered: u64,
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
}

/// Runs the handshake to completion.
pub fn connect(mut client: ClientConnection, config: &TlsConfig) -> Pair {
    let mut hs = Handshake::new(config).unwrap();
    let mut delivered = 0u64;
    for _ in 0..10 {
        let from_client = client_output(&mut client);
        let mut out = Vec::new();
        let p = hs.handle_input(&from_client, &mut out).unwrap();
        delivered += out.len() as u64;
        client_input(&mut client, &out);
        if let Progress::Established(e) = p {
            assert!(!client.is_handshaking(), "server done before the client");
            return Pair {
                client,
                server: e.session,
                delivered,
                sni: e.sni,
                alpn: e.alpn,
            };
        }
    }
    panic!("handshake did not finish");
}

impl Pair {
    /// Client → server; returns the application bytes the server got.
    pub fn client_sends(&mut self, data: &[u8]) -> Vec<u8> {
        self.client.writer().write_all(data).unwrap();
        let bytes = client_output(&mut self.client);
        self.server.handle_input(&bytes).unwrap();
        self.server_data()
    }

    pub fn server_data(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(ev) = self.server.poll_event() {
            if let Event::Data(d) = ev {
                got.extend_from_slice(&d);
            }
        }
        got
    }

    /// Server output → client, all of it.
    pub fn deliver(&mut self) -> (Vec<u8>, bool) {
        let out = self.server.take_output();
        self.deliver_bytes(&out)
    }

    pub fn deliver_bytes(&mut self, bytes: &[u8]) -> (Vec<u8>, bool) {
        self.delivered += bytes.len() as u64;
        client_input(&mut self.client, bytes)
    }
}

/// A body whose bytes depend on their offset (1-4 MB in the real-peer
/// test, smaller here).
pub fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}
