//! Server TLS configuration: certificates by SNI name with a default,
//! protocol versions and suites, and the per-connection rustls config that
//! captures the secrets Baton's record layer needs.
//!
//! rustls hands out key and IV (`dangerous_into_kernel_connection`) but not
//! the TLS 1.3 traffic secret that KeyUpdate derives from; its key-log hook
//! does, so each connection gets a config whose key log is its own
//! [`Capture`]. This module knows nothing of records or sessions.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{KeyLog, ServerConfig, SupportedProtocolVersion};

use crate::error::TlsError;
use crate::keys::Secret;

/// Certificates by server name, with a default for unknown or absent SNI.
#[derive(Debug, Default)]
pub struct CertifiedKeys {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertifiedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A certified key from a DER chain and private key (checks they match).
    pub fn load(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        CertifiedKey::from_der(chain, key, &provider)
            .map(Arc::new)
            .map_err(|e| TlsError::Handshake(format!("certificate: {e}")))
    }

    /// Serves `key` to clients asking for `name` (case-insensitive).
    pub fn add(&mut self, name: &str, key: Arc<CertifiedKey>) {
        self.by_name.insert(name.to_ascii_lowercase(), key);
    }

    /// Serves `key` when no name matches.
    pub fn set_default(&mut self, key: Arc<CertifiedKey>) {
        self.default = Some(key);
    }

    /// The key for `sni`.
    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        sni.and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// What one connection's handshake revealed to Baton.
#[derive(Default)]
pub(crate) struct Capture {
    pub(crate) client_secret: Mutex<Option<Secret>>,
    pub(crate) server_secret: Mutex<Option<Secret>>,
    pub(crate) sni: Mutex<Option<String>>,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Capture([redacted])")
    }
}

impl KeyLog for Capture {
    fn will_log(&self, label: &str) -> bool {
        matches!(label, "CLIENT_TRAFFIC_SECRET_0" | "SERVER_TRAFFIC_SECRET_0")
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        let slot = match label {
            "CLIENT_TRAFFIC_SECRET_0" => &self.client_secret,
            "SERVER_TRAFFIC_SECRET_0" => &self.server_secret,
            _ => return,
        };
        if let Ok(mut s) = slot.lock() {
            *s = Some(Secret::new(secret.to_vec()));
        }
    }
}

/// Picks the certificate by SNI and notes the name for the connection.
#[derive(Debug)]
struct Resolver {
    keys: Arc<CertifiedKeys>,
    capture: Arc<Capture>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        if let Ok(mut s) = self.capture.sni.lock() {
            *s = sni.map(str::to_owned);
        }
        self.keys.pick(sni)
    }
}

/// The server side's TLS settings, shared by all connections.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    keys: Arc<CertifiedKeys>,
    base: Arc<ServerConfig>,
}

/// How many TLS 1.3 tickets a full or resumed handshake sends when
/// tickets are on: one per expected reuse is enough for a browser's
/// connection pool to resume once each.
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 2;

impl TlsConfig {
    /// TLS 1.3 and 1.2 with every suite of the ring provider
    /// (AES-128/256-GCM, ChaCha20-Poly1305), ALPN `http/1.1`.
    pub fn new(keys: CertifiedKeys) -> Result<Self, TlsError> {
        Self::with(
            keys,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &[],
        )
    }

    /// Only the given versions, and only the given suites (IANA ids; empty:
    /// all).
    pub fn with(
        keys: CertifiedKeys,
        versions: &[&'static SupportedProtocolVersion],
        suites: &[u16],
    ) -> Result<Self, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !suites.is_empty() {
            provider
                .cipher_suites
                .retain(|s| suites.contains(&u16::from(s.suite())));
        }
        let keys = Arc::new(keys);
        let resolver = Arc::new(Resolver {
            keys: keys.clone(),
            capture: Arc::default(),
        });
        let mut base =
            ServerConfig::builder_with_provider(Arc::new(provider) as Arc<CryptoProvider>)
                .with_protocol_versions(versions)
                .map_err(|e| TlsError::Handshake(format!("config: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(resolver);
        base.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Our record layer takes over after the handshake.
        base.enable_secret_extraction = true;
        // No tickets unless `with_tickets` gives a key every box has: a
        // per-box key would resume only on the box that sealed it.
        base.send_tls13_tickets = 0;
        base.max_tls13_tickets = 0;
        Ok(TlsConfig {
            keys,
            base: Arc::new(base),
        })
    }

    /// Sends and accepts session tickets sealed by `ticketer` (TLS 1.3
    /// NewSessionTicket after the handshake, TLS 1.2 RFC 5077 tickets).
    /// Resumption by session ID stays per box and is not offered.
    pub fn with_tickets(mut self, ticketer: Arc<dyn ProducesTickets>) -> Self {
        let base = Arc::make_mut(&mut self.base);
        base.ticketer = ticketer;
        base.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
        base.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        self
    }

    /// The config of one connection, capturing into `capture`.
    pub(crate) fn for_connection(&self, capture: Arc<Capture>) -> Arc<ServerConfig> {
        let mut c = (*self.base).clone();
        c.key_log = capture.clone();
        c.cert_resolver = Arc::new(Resolver {
            keys: self.keys.clone(),
            capture,
        });
        Arc::new(c)
    }
}
