//! Certificates for the TLS tests, made in the test with the `openssl` command (P-256
//! keys, valid for two days): CAs, and certificates they sign with the extensions a test
//! asks for. Callers check for `openssl` first with `support::require_tool`.

use std::path::Path;

/// Runs `openssl` in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A self-signed CA in `dir`: `name`.pem and `name`.key.
pub fn make_ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509"];
    args.extend(KEY);
    args.extend(["-nodes", "-keyout", &key, "-out", &pem, "-days", "2"]);
    args.extend(["-subj", subject]);
    args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &args);
}

/// `name`.pem and `name`.key in `dir`, signed by the CA `ca` (made by [`make_ca`]), with
/// the extensions `ext` (lines of an openssl extension file).
pub fn issue(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) {
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extfile), ext).unwrap();
    let mut args = vec!["req", "-new"];
    args.extend(KEY);
    args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", subject]);
    openssl(dir, &args);
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ],
    );
}
