//! `lab up --tls`: a lab certificate authority and one certificate per box
//! (rcgen), for `lab.baton.test` and every service IP of the lab (IP
//! SANs: after a takeover a box answers for its peers' IPs too), so a
//! client that trusts `/run/baton-lab/P/ca.pem` verifies any box.
//!
//! It writes files only: the CA certificate (public, 0644) in the lab's
//! run folder, each box's chain and key (0600) beside its config. The CA's
//! key is never written: a lab's CA signs its boxes once, at `up`. It must
//! not start processes or touch namespaces.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::error::{Context, Result};
use crate::names::{box_service_addr, box_service_addr6, Lab};

/// The DNS name every lab box's certificate carries.
pub const LAB_TLS_NAME: &str = "lab.baton.test";

/// Where one box's certificate chain and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxTlsFiles {
    /// The box's certificate, PEM (leaf only: the CA is the trust anchor).
    pub certificate: PathBuf,
    /// Its private key, PEM (PKCS#8).
    pub key: PathBuf,
}

/// The CA certificate of lab `lab`: what a client passes to
/// `curl --cacert`.
pub fn ca_path(lab: &Lab) -> PathBuf {
    lab.file("ca.pem")
}

/// Box `n`'s certificate and key files, beside its `boxN.toml`.
pub fn box_files(lab: &Lab, n: u8) -> BoxTlsFiles {
    BoxTlsFiles {
        certificate: lab.file(&format!("box{n}-cert.pem")),
        key: lab.file(&format!("box{n}-key.pem")),
    }
}

/// The subject alternative names of every box: the lab's name and the
/// service IPs (IPv4, then IPv6) of each of its `boxes` boxes.
pub fn box_sans(boxes: u8) -> Vec<String> {
    std::iter::once(LAB_TLS_NAME.to_string())
        .chain((1..=boxes).map(|n| box_service_addr(n).to_string()))
        .chain((1..=boxes).map(|n| box_service_addr6(n).to_string()))
        .collect()
}

fn rc<T>(what: &str, r: std::result::Result<T, rcgen::Error>) -> Result<T> {
    r.map_err(|e| crate::error::Error::Msg(format!("{what}: {e}")))
}

/// Makes the lab CA and a certificate per box, and writes them: the CA to
/// [`ca_path`], each box's pair to [`box_files`].
pub fn make(lab: &Lab, boxes: u8) -> Result<Vec<BoxTlsFiles>> {
    let ca_key = rc("CA key", KeyPair::generate())?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Baton lab {} CA", lab.prefix()));
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = rc("CA certificate", ca.self_signed(&ca_key))?;
    write(&ca_path(lab), &ca_cert.pem(), 0o644)?;

    let mut out = Vec::new();
    for n in 1..=boxes {
        let key = rc("box key", KeyPair::generate())?;
        let mut params = rc("box certificate", CertificateParams::new(box_sans(boxes)))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("box{n}.{LAB_TLS_NAME}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = rc("box certificate", params.signed_by(&key, &ca_cert, &ca_key))?;
        let files = box_files(lab, n);
        // Both private to root like the box's config; the certificate is
        // public, but one mode for the pair is one less thing to get wrong.
        write(&files.certificate, &cert.pem(), 0o600)?;
        write(&files.key, &key.serialize_pem(), 0o600)?;
        out.push(files);
    }
    Ok(out)
}

/// Writes `text` to a new file of mode `mode` (set at creation: a key is
/// never readable by others, not even for a moment).
fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_box_names_the_lab_and_every_service_ip() {
        assert_eq!(
            box_sans(3),
            vec![
                "lab.baton.test",
                "198.18.0.11",
                "198.18.0.12",
                "198.18.0.13",
                "2001:2:0:18::11",
                "2001:2:0:18::12",
                "2001:2:0:18::13"
            ]
        );
        let lab = Lab::new("bt").unwrap();
        assert_eq!(ca_path(&lab), PathBuf::from("/run/baton-lab/bt/ca.pem"));
        assert_eq!(
            box_files(&lab, 2),
            BoxTlsFiles {
                certificate: PathBuf::from("/run/baton-lab/bt/box2-cert.pem"),
                key: PathBuf::from("/run/baton-lab/bt/box2-key.pem"),
            }
        );
    }
}
