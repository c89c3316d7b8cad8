//! `[[tls.sni]]`: a certificate chain and key served to clients whose
//! SNI names `name`; names unique (case-insensitive, as the resolver
//! compares them). Like `tls`, it judges what is written and opens no
//! file.

use std::collections::HashMap;
use std::path::PathBuf;

use toml_edit::{ArrayOfTables, Item, Value};

use crate::convert::*;
use crate::read::{also_at, describe, quote, Checker, Tbl};
use crate::schema::*;

table! {
    /// One certificate picked by SNI.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SniCert {
        /// The server name (DNS name, no trailing dot, not an IP address).
        name: String = req(sni_name),
        /// Absolute path of its certificate chain, PEM, leaf first.
        certificate: PathBuf = req(absolute_path),
        /// Absolute path of its private key, PEM.
        key: PathBuf = req(absolute_path),
    }
}

/// A name a client may send in SNI (RFC 6066 §3: a DNS host name, no IP
/// literal, no trailing dot), lower-cased.
fn sni_name(v: &Value) -> Result<String, String> {
    let expected = "a DNS name like www.example.com";
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let bad = s.is_empty()
        || s.len() > 253
        || s.parse::<std::net::IpAddr>().is_ok()
        || !s.split('.').all(label_ok);
    if bad {
        return Err(format!("expected {expected}, found string {:?}", quote(s)));
    }
    Ok(s.to_ascii_lowercase())
}

/// `tls.sni`: `[[tls.sni]]` tables (or an inline array of inline tables);
/// none when left out.
pub(crate) struct SniList;

impl Field<Vec<SniCert>> for SniList {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Vec<SniCert>> {
        let Some(item) = t.t.get(key) else {
            return Some(Vec::new());
        };
        let (tables, mut ok) = c.tables(t, key, item, "tls.sni")?;
        let mut out = Vec::new();
        let mut seen: HashMap<String, Option<usize>> = HashMap::new();
        for m in &tables {
            let parts = SniCert::read_parts(c, m);
            if let Some(name) = &parts.name {
                let line = c.key_line(m, "name");
                if let Some(first) = seen.insert(name.clone(), line) {
                    ok = false;
                    c.problem(
                        line,
                        m.key_path("name"),
                        format!("duplicate SNI name {name:?}{}", also_at(first)),
                    );
                }
            }
            match SniCert::build(parts) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn write(&self, v: &Vec<SniCert>) -> Option<Item> {
        if v.is_empty() {
            return None;
        }
        let mut a = ArrayOfTables::new();
        for s in v {
            a.push(s.write());
        }
        Some(Item::ArrayOfTables(a))
    }

    fn nested(&self) -> Option<Vec<KeyDoc>> {
        Some(SniCert::keys())
    }
}

impl Defaulted<Vec<SniCert>> for SniList {
    fn default_value(&self) -> Vec<SniCert> {
        Vec::new()
    }
}
