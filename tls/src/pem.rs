//! A certificate chain and private key from their PEM text, checked to
//! belong together: what `baton check-config` and a starting box judge a
//! `[tls]` table's files by, before any client connects.
//!
//! Bytes in, a rustls `CertifiedKey` or the reason out: this module reads
//! no file (the caller does, and names the file in its message), and knows
//! nothing of the config format or of connections.

use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys};

/// Why a certificate chain and key cannot be served; the variant says
/// which of the two files is at fault ([`PemError::in_certificate`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    /// The certificate file is not well-formed PEM.
    #[error("not a PEM certificate chain: {0}")]
    CertificatePem(String),
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no PEM \"CERTIFICATE\" block (expected a certificate chain, leaf first)")]
    NoCertificate,
    /// The leaf certificate is not a certificate rustls can read.
    #[error("the leaf certificate does not parse: {0}")]
    BadCertificate(String),
    /// The key file is not well-formed PEM.
    #[error("not a PEM private key: {0}")]
    KeyPem(String),
    /// The key file holds no private key block.
    #[error("no PEM private key block (expected \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")")]
    NoKey,
    /// The key is of a kind or shape the ring provider cannot sign with.
    #[error("the private key is not usable: {0}")]
    BadKey(String),
    /// The key is not the one whose public half the leaf certificate holds.
    #[error("the private key does not match the certificate's public key")]
    Mismatch,
}

impl PemError {
    /// Whether the certificate file is at fault (else the key file, or,
    /// for [`PemError::Mismatch`], the pair).
    pub fn in_certificate(&self) -> bool {
        matches!(
            self,
            PemError::CertificatePem(_) | PemError::NoCertificate | PemError::BadCertificate(_)
        )
    }
}

/// The certificate chain of `cert_pem` (leaf first) with the private key
/// of `key_pem`, checked to match with the ring provider that serves it.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, PemError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::CertificatePem(e.to_string()))?;
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => PemError::NoKey,
        e => PemError::KeyPem(e.to_string()),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half; rustls' own
        // `CertifiedKey::from_der` accepts it so, and so do we.
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(PemError::Mismatch)
        }
        Err(e) => Err(PemError::BadCertificate(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, PEM.
    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads_and_serves_through_a_tls_config() {
        let (cert, key) = pair("lab.baton.test");
        let ck = certified_key_from_pem(cert.as_bytes(), key.as_bytes()).expect("matching pair");
        assert_eq!(ck.cert.len(), 1);
        let mut keys = crate::CertifiedKeys::new();
        keys.set_default(ck);
        crate::TlsConfig::new(keys).expect("a server config");
    }

    #[test]
    fn each_fault_names_its_file() {
        let (cert, key) = pair("a.test");
        let (_, other_key) = pair("b.test");
        let cases: [(&[u8], &[u8], PemError); 5] = [
            (cert.as_bytes(), other_key.as_bytes(), PemError::Mismatch),
            (b"hello, not PEM\n", key.as_bytes(), PemError::NoCertificate),
            // A key where the certificate should be: no CERTIFICATE block.
            (key.as_bytes(), key.as_bytes(), PemError::NoCertificate),
            (cert.as_bytes(), cert.as_bytes(), PemError::NoKey),
            (cert.as_bytes(), b"", PemError::NoKey),
        ];
        for (c, k, want) in cases {
            let got = certified_key_from_pem(c, k).expect_err("a fault");
            assert_eq!(got, want);
        }
        assert!(PemError::NoCertificate.in_certificate());
        assert!(!PemError::NoKey.in_certificate());
        assert!(!PemError::Mismatch.in_certificate());
    }

    #[test]
    fn broken_pem_and_undecodable_der_are_told_apart() {
        let (cert, key) = pair("a.test");
        let truncated = &cert[..cert.len() / 2];
        let got = certified_key_from_pem(truncated.as_bytes(), key.as_bytes()).expect_err("cut");
        assert!(matches!(got, PemError::CertificatePem(_)), "{got:?}");
        let junk_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let got = certified_key_from_pem(junk_der.as_bytes(), key.as_bytes()).expect_err("junk");
        assert!(matches!(got, PemError::BadCertificate(_)), "{got:?}");
        let junk_key = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
        let got = certified_key_from_pem(cert.as_bytes(), junk_key.as_bytes()).expect_err("junk");
        assert!(matches!(got, PemError::BadKey(_)), "{got:?}");
    }
}
