//! The files of a box's `[tls]` table: read, parsed and checked to match
//! (`baton_tls::pem`), then built into the server TLS settings
//! (`baton_tls::TlsConfig`) the dataplane will serve HTTPS with (issue 14).
//!
//! `baton check-config` and `baton run` both judge the files here, so a
//! box never starts on files check-config would refuse. The config crate
//! only judges what the file says (it opens no other file); this module is
//! the I/O edge for the certificates. It must not know connections, the
//! dataplane or the segment.

use std::path::Path;

use baton_config::{Config, TlsVersion};
use baton_tls::{certified_key_from_pem, CertifiedKeys, PemError};

/// A starting box with `[tls] enabled = true`: its files are judged as
/// check-config judges them (a bad file stops the box) before anything
/// starts; the workers' settings are built from them again when the
/// dataplane starts.
pub fn at_start(config: &Config) -> anyhow::Result<()> {
    match load(config) {
        Ok(None) => Ok(()),
        Ok(Some(_)) => {
            tracing::info!(
                port = config.tls.port,
                certificates = config.tls.key_pairs().len(),
                "HTTPS on port {}",
                config.tls.port
            );
            Ok(())
        }
        Err(problems) => anyhow::bail!("[tls] files: {}", problems.join("; ")),
    }
}

/// The server TLS settings of `config`'s `[tls]` table, or every problem
/// of its files as `key: path: what` lines. `Ok(None)` when TLS is off
/// (the files are then not judged: a disabled table may name files not
/// yet installed).
pub fn load(config: &Config) -> Result<Option<baton_tls::TlsConfig>, Vec<String>> {
    let tls = &config.tls;
    if !tls.enabled {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut keys = CertifiedKeys::new();
    // The table's rules make certificate and key present when enabled.
    if let (Some(cert), Some(key)) = (&tls.certificate, &tls.key) {
        match load_pair("tls", cert, key) {
            Ok(ck) => keys.set_default(ck),
            Err(mut p) => problems.append(&mut p),
        }
    }
    for (i, sni) in tls.sni.iter().enumerate() {
        match load_pair(&format!("tls.sni[{i}]"), &sni.certificate, &sni.key) {
            Ok(ck) => keys.add(&sni.name, ck),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let versions: Vec<&'static rustls_version::Version> = tls
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls_version::TLS12,
            TlsVersion::Tls13 => &rustls_version::TLS13,
        })
        .collect();
    let served = baton_tls::TlsConfig::with(keys, &versions, &tls.suite_ids())
        .map_err(|e| vec![format!("tls: {e}")])?;
    if !tls.tickets {
        return Ok(Some(served));
    }
    // Every box derives the same ticket keys: a client resumes anywhere.
    let ticketer = baton_tls::ClusterTicketer::new(&config.cluster.key, tls.ticket_key_lifetime_s);
    Ok(Some(served.with_tickets(std::sync::Arc::new(ticketer))))
}

/// The protocol versions as `baton_tls::TlsConfig::with` takes them.
mod rustls_version {
    pub(super) use baton_tls::rustls::version::{TLS12, TLS13};
    pub(super) type Version = baton_tls::rustls::SupportedProtocolVersion;
}

/// One certificate and key: each file read, then the pair judged; the
/// message names the key of the table and the file at fault.
fn load_pair(
    path: &str,
    cert: &Path,
    key: &Path,
) -> Result<std::sync::Arc<baton_tls::rustls::sign::CertifiedKey>, Vec<String>> {
    let read = |which: &str, p: &Path| {
        std::fs::read(p).map_err(|e| format!("{path}.{which}: {}: cannot read: {e}", p.display()))
    };
    let (cert_pem, key_pem) = match (read("certificate", cert), read("key", key)) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => return Err(c.err().into_iter().chain(k.err()).collect()),
    };
    certified_key_from_pem(&cert_pem, &key_pem).map_err(|e| {
        vec![match e {
            PemError::Mismatch => format!(
                "{path}.key: {}: {e} ({path}.certificate {})",
                key.display(),
                cert.display()
            ),
            e if e.in_certificate() => format!("{path}.certificate: {}: {e}", cert.display()),
            e => format!("{path}.key: {}: {e}", key.display()),
        }]
    })
}

#[cfg(test)]
mod tests {
    use baton_config::TlsSuite;

    /// `tls.suites` names exactly the suites baton-tls' provider has: a
    /// name the config accepts is one the handshake can offer.
    #[test]
    fn the_config_suites_are_the_ring_providers() {
        let provider = baton_tls::rustls::crypto::ring::default_provider();
        let mut theirs: Vec<u16> = provider
            .cipher_suites
            .iter()
            .map(|s| u16::from(s.suite()))
            .collect();
        let mut ours: Vec<u16> = TlsSuite::ALL.iter().map(|s| s.iana_id()).collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, theirs);
        for s in TlsSuite::ALL {
            let name = provider
                .cipher_suites
                .iter()
                .find(|p| u16::from(p.suite()) == s.iana_id())
                .and_then(|p| p.suite().as_str());
            assert_eq!(name, Some(s.as_str()), "{s:?}");
        }
    }
}
