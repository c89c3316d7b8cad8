//! `[tls]`: HTTPS on the service IPs (issue 14, docs/TLS.md): the port,
//! the default certificate chain and key, per-SNI certificates
//! (`[[tls.sni]]`, in `tls_sni`), the protocol versions and AEAD suites.
//!
//! This module judges the keys as written: paths are absolute, a version
//! or suite is one baton-tls implements, every enabled version keeps a
//! suite. It must not open the files: whether they exist, parse as PEM and
//! whether key and certificate match is `baton check-config`'s job
//! (`baton_tls::pem`), since this crate does no I/O beyond the config file.
//! The rule with other tables (the port is free) is the root's, in `super`.

use std::path::PathBuf;

use toml_edit::{Array, Item, Value};

use super::tls_sni::{SniCert, SniList};
use crate::convert::*;
use crate::read::{first_duplicate, Checker, Tbl};
use crate::schema::*;

/// Default `tls.port`: HTTPS.
pub const DEFAULT_TLS_PORT: u16 = 443;

/// A TLS protocol version `tls.versions` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246), AEAD suites only.
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl TlsVersion {
    /// Every version, in the default order.
    pub const ALL: [TlsVersion; 2] = [TlsVersion::Tls12, TlsVersion::Tls13];

    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

/// An AEAD cipher suite baton-tls implements (rustls' ring provider),
/// named as rustls names it (`CipherSuite::as_str`: the IANA name, TLS
/// 1.3's with a `TLS13_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsSuite {
    /// TLS_AES_128_GCM_SHA256 (0x1301).
    Tls13Aes128GcmSha256,
    /// TLS_AES_256_GCM_SHA384 (0x1302).
    Tls13Aes256GcmSha384,
    /// TLS_CHACHA20_POLY1305_SHA256 (0x1303).
    Tls13Chacha20Poly1305Sha256,
    /// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (0xc02b).
    Tls12EcdheEcdsaAes128GcmSha256,
    /// TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 (0xc02c).
    Tls12EcdheEcdsaAes256GcmSha384,
    /// TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 (0xcca9).
    Tls12EcdheEcdsaChacha20Poly1305Sha256,
    /// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (0xc02f).
    Tls12EcdheRsaAes128GcmSha256,
    /// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (0xc030).
    Tls12EcdheRsaAes256GcmSha384,
    /// TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 (0xcca8).
    Tls12EcdheRsaChacha20Poly1305Sha256,
}

impl TlsSuite {
    /// Every suite, TLS 1.3's first: the default of `tls.suites`.
    pub const ALL: [TlsSuite; 9] = [
        TlsSuite::Tls13Aes128GcmSha256,
        TlsSuite::Tls13Aes256GcmSha384,
        TlsSuite::Tls13Chacha20Poly1305Sha256,
        TlsSuite::Tls12EcdheEcdsaAes128GcmSha256,
        TlsSuite::Tls12EcdheEcdsaAes256GcmSha384,
        TlsSuite::Tls12EcdheEcdsaChacha20Poly1305Sha256,
        TlsSuite::Tls12EcdheRsaAes128GcmSha256,
        TlsSuite::Tls12EcdheRsaAes256GcmSha384,
        TlsSuite::Tls12EcdheRsaChacha20Poly1305Sha256,
    ];

    /// The spelling used in the file (rustls' name of the suite).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsSuite::Tls13Aes128GcmSha256 => "TLS13_AES_128_GCM_SHA256",
            TlsSuite::Tls13Aes256GcmSha384 => "TLS13_AES_256_GCM_SHA384",
            TlsSuite::Tls13Chacha20Poly1305Sha256 => "TLS13_CHACHA20_POLY1305_SHA256",
            TlsSuite::Tls12EcdheEcdsaAes128GcmSha256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            TlsSuite::Tls12EcdheEcdsaAes256GcmSha384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            TlsSuite::Tls12EcdheEcdsaChacha20Poly1305Sha256 => {
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            }
            TlsSuite::Tls12EcdheRsaAes128GcmSha256 => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            TlsSuite::Tls12EcdheRsaAes256GcmSha384 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            TlsSuite::Tls12EcdheRsaChacha20Poly1305Sha256 => {
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            }
        }
    }

    /// The suite's IANA id, as `baton_tls::TlsConfig::with` takes it.
    pub fn iana_id(self) -> u16 {
        match self {
            TlsSuite::Tls13Aes128GcmSha256 => 0x1301,
            TlsSuite::Tls13Aes256GcmSha384 => 0x1302,
            TlsSuite::Tls13Chacha20Poly1305Sha256 => 0x1303,
            TlsSuite::Tls12EcdheEcdsaAes128GcmSha256 => 0xc02b,
            TlsSuite::Tls12EcdheEcdsaAes256GcmSha384 => 0xc02c,
            TlsSuite::Tls12EcdheEcdsaChacha20Poly1305Sha256 => 0xcca9,
            TlsSuite::Tls12EcdheRsaAes128GcmSha256 => 0xc02f,
            TlsSuite::Tls12EcdheRsaAes256GcmSha384 => 0xc030,
            TlsSuite::Tls12EcdheRsaChacha20Poly1305Sha256 => 0xcca8,
        }
    }

    /// The protocol version the suite belongs to.
    pub fn version(self) -> TlsVersion {
        if self.as_str().starts_with("TLS13_") {
            TlsVersion::Tls13
        } else {
            TlsVersion::Tls12
        }
    }
}

impl ToToml for TlsVersion {
    fn to_toml(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl ToToml for TlsSuite {
    fn to_toml(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl Spelled for TlsVersion {
    fn spelling(self) -> &'static str {
        self.as_str()
    }
}

impl Spelled for TlsSuite {
    fn spelling(self) -> &'static str {
        self.as_str()
    }
}

table! {
    /// `[tls]`: HTTPS on the service IPs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TlsConfig: Default {
        /// Serve HTTPS at all (issue 14; the dataplane does not serve it yet).
        enabled: bool = or(false, boolean),
        /// TCP port of HTTPS on every service IP (not service.port, nor an admin or back-LAN port).
        port: u16 = or(DEFAULT_TLS_PORT, int_in(1, 65535)),
        /// Absolute path of the default certificate chain, PEM, leaf first (required when enabled).
        certificate: Option<PathBuf> = opt(absolute_path),
        /// Absolute path of its private key, PEM (PKCS#8, PKCS#1 or SEC1; required when enabled).
        key: Option<PathBuf> = opt(absolute_path),
        /// Certificates picked by the client's SNI name, `[[tls.sni]]`.
        sni: Vec<SniCert> = SniList,
        /// Protocol versions offered: "1.2", "1.3" (non-empty, each once).
        versions: Vec<TlsVersion> = ListOr(TlsVersion::ALL.to_vec(), choice(&TlsVersion::ALL)),
        /// AEAD suites offered, by rustls' name (non-empty, each once, one per enabled version).
        suites: Vec<TlsSuite> = ListOr(TlsSuite::ALL.to_vec(), choice(&TlsSuite::ALL)),
        /// Session tickets sealed under a key from cluster.key, so a client resumes on any box.
        tickets: bool = or(true, boolean),
        /// Seconds each ticket key is used (a ticket opens for up to twice this); 60..=86400.
        ticket_key_lifetime_s: u32 = or(7_200, int_in(60, 86_400)),
    }
    check = tls_rules;
}

impl TlsConfig {
    /// Every (certificate, key) pair the box loads: the default one
    /// first, then each `[[tls.sni]]`'s, with the dotted key naming it.
    pub fn key_pairs(&self) -> Vec<(String, &PathBuf, &PathBuf)> {
        let mut out = Vec::new();
        if let (Some(c), Some(k)) = (&self.certificate, &self.key) {
            out.push(("tls".to_string(), c, k));
        }
        for (i, s) in self.sni.iter().enumerate() {
            out.push((format!("tls.sni[{i}]"), &s.certificate, &s.key));
        }
        out
    }

    /// The IANA ids of `suites`, for `baton_tls::TlsConfig::with`.
    pub fn suite_ids(&self) -> Vec<u16> {
        self.suites.iter().map(|s| s.iana_id()).collect()
    }
}

/// An array with a non-empty default; `elem` judges each element.
pub(crate) struct ListOr<T, C>(Vec<T>, C);

impl<T: ToToml + Clone, C: Fn(&Value) -> Result<T, String>> Field<Vec<T>> for ListOr<T, C> {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Vec<T>> {
        c.list(t, key, Some(self.0.clone()), &self.1)
    }
    fn write(&self, v: &Vec<T>) -> Option<Item> {
        let mut a = Array::new();
        for x in v {
            a.push(x.to_toml());
        }
        Some(Item::Value(Value::Array(a)))
    }
}

impl<T: Clone, C> Defaulted<Vec<T>> for ListOr<T, C> {
    fn default_value(&self) -> Vec<T> {
        self.0.clone()
    }
}

/// Certificate and key given when enabled, and given together; versions
/// and suites non-empty, each once, and every version keeps a suite of
/// its own (a TLS 1.3 client offered only TLS 1.2 suites would fail every
/// handshake).
fn tls_rules(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let mut ok = true;
    let enabled = p.enabled == Some(true);
    let cert = p.certificate.as_ref().map(Option::is_some);
    let key = p.key.as_ref().map(Option::is_some);
    for (name, given, other, other_given) in [
        ("certificate", cert, "key", key),
        ("key", key, "certificate", cert),
    ] {
        if given == Some(false) && (enabled || other_given == Some(true)) {
            ok = false;
            let why = if enabled {
                "missing key (required when tls.enabled = true)".to_string()
            } else {
                format!("missing key (tls.{other} is given: give both or neither)")
            };
            c.problem(t.line, t.key_path(name), why);
        }
    }
    let versions_ok = p
        .versions
        .as_ref()
        .is_some_and(|v| non_empty_once(c, t, "versions", v, |v| v.as_str()));
    let suites_ok = p
        .suites
        .as_ref()
        .is_some_and(|s| non_empty_once(c, t, "suites", s, |s| s.as_str()));
    ok &= versions_ok || p.versions.is_none();
    ok &= suites_ok || p.suites.is_none();
    // Which version lacks a suite is only worth saying of lists that are
    // otherwise right.
    if let (Some(versions), Some(suites), true) = (&p.versions, &p.suites, versions_ok && suites_ok)
    {
        for v in versions {
            if !suites.iter().any(|s| s.version() == *v) {
                ok = false;
                let line = c.key_line(t, "suites");
                c.problem(
                    line,
                    t.key_path("suites"),
                    format!(
                        "no suite for TLS {} (listed in tls.versions): add one of its suites ({}…) or remove the version",
                        v.as_str(),
                        match v {
                            TlsVersion::Tls12 => "TLS_ECDHE_",
                            TlsVersion::Tls13 => "TLS13_",
                        }
                    ),
                );
            }
        }
    }
    ok
}

/// A list key given with at least one element and none twice.
fn non_empty_once<T: PartialEq + Copy>(
    c: &mut Checker<'_>,
    t: &Tbl<'_>,
    key: &str,
    items: &[T],
    name: impl Fn(T) -> &'static str,
) -> bool {
    let line = c.key_line(t, key);
    if items.is_empty() {
        c.problem(line, t.key_path(key), "expected at least one");
        return false;
    }
    if let Some(dup) = first_duplicate(items) {
        c.problem(
            line,
            t.key_path(key),
            format!("{:?} is listed twice", name(dup)),
        );
        return false;
    }
    true
}
