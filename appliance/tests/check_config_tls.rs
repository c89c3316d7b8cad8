//! `baton check-config` on a `[tls]` table with real PEM files (rcgen, in
//! a temporary directory): a matching pair passes; a missing file, a file
//! that is not PEM, a key where the certificate should be and a key of
//! another certificate each give one line naming the key, the file and
//! the fault, and exit 1.
use std::path::{Path, PathBuf};
use std::process::Command;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

/// A temporary directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("baton-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `name` and its key, PEM.
fn pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The documented example, secrets changed, with `[tls]` replaced by `tls`.
fn config(tls: &str) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/baton.example.toml"),
    )
    .unwrap()
    .replace(baton_config::EXAMPLE_KEY, &"5a".repeat(32))
    .replace(baton_config::EXAMPLE_TOKEN, "a-secret-token");
    let at = example.find("\n[tls]\n").expect("the example has [tls]");
    format!("{}\n[tls]\n{tls}\n", &example[..at])
}

/// `check-config` on `text` written as box1.toml in `dir`: exit code,
/// stdout, stderr.
fn check(dir: &Dir, text: &str) -> (Option<i32>, String, String) {
    let file = dir.write("box1.toml", text);
    let out = baton().arg("check-config").arg(&file).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn enabled(cert: &Path, key: &Path) -> String {
    format!(
        "enabled = true\ncertificate = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

#[test]
fn a_matching_pair_and_sni_certificates_pass() {
    let dir = Dir::new("ok");
    let (c, k) = pair("lab.baton.test");
    let (sc, sk) = pair("www.example.com");
    let cert = dir.write("cert.pem", &c);
    let key = dir.write("key.pem", &k);
    let scert = dir.write("www.pem", &sc);
    let skey = dir.write("www-key.pem", &sk);
    let text = config(&format!(
        "{}\n[[tls.sni]]\nname = \"www.example.com\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        enabled(&cert, &key),
        scert.display(),
        skey.display()
    ));
    let (code, out, err) = check(&dir, &text);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn each_bad_file_is_named_with_its_fault_and_exit_is_1() {
    let dir = Dir::new("bad");
    let (c, k) = pair("lab.baton.test");
    let (_, other_k) = pair("other.test");
    let cert = dir.write("cert.pem", &c);
    let key = dir.write("key.pem", &k);
    let other = dir.write("other-key.pem", &other_k);
    let garbage = dir.write("garbage.pem", "this is not a certificate\n");
    let missing = dir.0.join("missing.pem");
    let file = dir.0.join("box1.toml");
    let f = file.display();
    let cases = [
        (
            enabled(&cert, &other),
            format!(
                "{f}: tls.key: {}: the private key does not match the certificate's public key (tls.certificate {})",
                other.display(),
                cert.display()
            ),
        ),
        (
            enabled(&missing, &key),
            format!(
                "{f}: tls.certificate: {}: cannot read: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            enabled(&garbage, &key),
            format!(
                "{f}: tls.certificate: {}: no PEM \"CERTIFICATE\" block (expected a certificate chain, leaf first)",
                garbage.display()
            ),
        ),
        (
            enabled(&key, &key),
            format!(
                "{f}: tls.certificate: {}: no PEM \"CERTIFICATE\" block (expected a certificate chain, leaf first)",
                key.display()
            ),
        ),
        (
            enabled(&cert, &garbage),
            format!(
                "{f}: tls.key: {}: no PEM private key block (expected \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")",
                garbage.display()
            ),
        ),
    ];
    for (tls, want) in cases {
        let (code, out, err) = check(&dir, &config(&tls));
        assert_eq!(code, Some(1), "{tls}\nstdout: {out}\nstderr: {err}");
        assert_eq!(err.trim_end(), want, "{tls}");
        assert!(out.is_empty(), "{out}");
    }
}

#[test]
fn a_bad_sni_file_is_named_by_its_index_and_both_missing_files_are_listed() {
    let dir = Dir::new("sni");
    let (c, k) = pair("lab.baton.test");
    let cert = dir.write("cert.pem", &c);
    let key = dir.write("key.pem", &k);
    let m1 = dir.0.join("m1.pem");
    let m2 = dir.0.join("m2.pem");
    let text = config(&format!(
        "{}\n[[tls.sni]]\nname = \"www.example.com\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        enabled(&cert, &key),
        m1.display(),
        m2.display()
    ));
    let (code, _, err) = check(&dir, &text);
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains(&format!(
            "tls.sni[0].certificate: {}: cannot read",
            m1.display()
        )),
        "{err}"
    );
    assert!(
        lines[1].contains(&format!("tls.sni[0].key: {}: cannot read", m2.display())),
        "{err}"
    );
}

#[test]
fn disabled_tls_does_not_open_its_files() {
    let dir = Dir::new("off");
    let text = config(
        "enabled = false\ncertificate = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
    );
    let (code, out, err) = check(&dir, &text);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "OK");
}
