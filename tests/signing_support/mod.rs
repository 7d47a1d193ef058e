//! What the signing tests share: keys, registries, pushes and cosign runs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::registry_support::{self, http_request, Registry, Response, ACCEPT};
use crate::support;
use serde_json::Value;

pub const PURPOSE: &str = "verifying oxport's signatures with cosign";

pub fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signing")
}

/// The key arguments of `oxport export` for `kind`: cosign's encrypted key
/// (its password in a file) or a plain PKCS#8 key; and the public key.
pub fn key_args(kind: &str) -> (Vec<String>, PathBuf) {
    let k = keys();
    match kind {
        "cosign" => (
            vec![
                "--signing-key".into(),
                format!("release={}", k.join("cosign.key").display()),
                "--signing-key-password-file".into(),
                format!("release={}", k.join("cosign.password").display()),
            ],
            k.join("cosign.pub"),
        ),
        _ => (
            vec![
                "--signing-key".into(),
                format!("release={}", k.join("plain-pkcs8.key").display()),
            ],
            k.join("plain-pkcs8.pub"),
        ),
    }
}

/// A registry with the referrers API, stopped when dropped.
pub struct ReferrersRegistry {
    child: Child,
    pub port: u16,
}

impl ReferrersRegistry {
    pub fn start() -> Option<ReferrersRegistry> {
        let bin = support::require_pinned_tool("referrers-registry", PURPOSE)?;
        let mut child = Command::new(bin)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start referrers-registry");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        Some(ReferrersRegistry { child, port })
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes the two-platform example to `host/repo:1`, signed with `kind`'s
/// key unless `kind` is empty.
pub fn push(host: &str, repo: &str, kind: &str) {
    push_with(host, repo, kind, "");
}

/// [`push`] with more exporter attributes (`,key=value...`).
pub fn push_with(host: &str, repo: &str, kind: &str, attrs: &str) {
    let mut output =
        format!("type=image,name={host}/{repo}:1,push=true,registry.insecure=true{attrs}");
    let mut extra = Vec::new();
    if !kind.is_empty() {
        output.push_str(",oxport.sign=release");
        extra = key_args(kind).0;
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (o, _) = registry_support::export_example(&output, &extra, &[]);
    assert!(
        o.status.success(),
        "push to {host}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn get(port: u16, path: &str) -> Response {
    let r = http_request(port, "GET", path, &[("Accept", ACCEPT)], None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r
}

/// The digest `repo:1` names.
pub fn root(port: u16, repo: &str) -> String {
    let body = get(port, &format!("/v2/{repo}/manifests/1")).body;
    format!("sha256:{}", sha256_hex(&body))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The platform manifests' digests of `repo:1`.
pub fn platforms(port: u16, repo: &str) -> Vec<String> {
    let index: Value =
        serde_json::from_slice(&get(port, &format!("/v2/{repo}/manifests/1")).body).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["os"] != "unknown")
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

pub fn cosign(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("run cosign")
}

/// `cosign verify` (`what` empty) or `cosign verify-attestation --type what`
/// of `image` with the public key `key`, offline: a key needs no log.
pub fn verify(bin: &Path, key: &Path, what: &str, image: &str) -> Output {
    verify_with(bin, key, what, image, &[])
}

/// [`verify`] with more flags for cosign.
pub fn verify_with(bin: &Path, key: &Path, what: &str, image: &str, flags: &[&str]) -> Output {
    let key = key.to_str().unwrap();
    let mut args = vec![
        "--key",
        key,
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
    ];
    args.extend(flags);
    if what.is_empty() {
        args.insert(0, "verify");
    } else {
        args.splice(0..0, ["verify-attestation", "--type", what]);
    }
    args.push(image);
    cosign(bin, &args)
}

/// The `index.json` of a layout tar.
pub fn tar_index(p: &Path) -> Value {
    let mut a = tar::Archive::new(std::fs::File::open(p).unwrap());
    let mut e = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("index.json"))
        .unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut e, &mut s).unwrap();
    serde_json::from_str(&s).unwrap()
}

pub fn assert_verifies(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "cosign {what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn assert_refused(o: &Output, what: &str, text: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "cosign {what} accepted it");
    assert!(
        err.contains(text),
        "cosign {what}: wanted {text:?} in {err}"
    );
}

/// cosign, a docker-registry (no referrers API) and a registry with it;
/// None (a recorded skip) when one is missing outside CI.
pub fn cosign_and_registries() -> Option<(PathBuf, Registry, ReferrersRegistry)> {
    let bin = support::require_pinned_tool("cosign", PURPOSE)?;
    let plain = Registry::start(false)?;
    Some((bin, plain, ReferrersRegistry::start()?))
}

/// cosign's statement type of an image signature.
pub const SIGN_TYPE: &str = "\"type\":\"https://sigstore.dev/cosign/sign/v1\"";

/// Every check of one signed push: the tag verifies with an image
/// signature, each platform's provenance and SBOM verify as attestations,
/// another key fails. Each platform digest verifies too: with an image
/// signature of its own when `recursive`, else through the attestation
/// bundles alone (cosign v3's `verify` accepts any bundle of the key).
pub fn check_signed(bin: &Path, port: u16, repo: &str, kind: &str, recursive: bool) {
    let host = format!("127.0.0.1:{port}");
    let (_, public) = key_args(kind);
    let (_, other) = key_args(if kind == "cosign" { "plain" } else { "cosign" });
    let tag = format!("{host}/{repo}:1");
    let o = verify(bin, &public, "", &tag);
    assert_verifies(&o, &format!("verify {tag}"));
    assert!(String::from_utf8_lossy(&o.stdout).contains(SIGN_TYPE));
    let digests = platforms(port, repo);
    assert_eq!(digests.len(), 2, "two platforms");
    for d in &digests {
        let image = format!("{host}/{repo}@{d}");
        let o = verify(bin, &public, "", &image);
        assert_verifies(&o, &format!("verify {image}"));
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            out.contains(SIGN_TYPE),
            recursive,
            "an image signature of {image} (recursive: {recursive}): {out}"
        );
        // The example's provenance is SLSA v1, its SBOM SPDX.
        for t in ["slsaprovenance1", "spdxjson"] {
            let o = verify(bin, &public, t, &image);
            assert_verifies(&o, &format!("verify-attestation --type {t} {image}"));
        }
    }
    assert_refused(
        &verify(bin, &other, "", &tag),
        "verify with another key",
        "no matching",
    );
    // oxport's own verifier agrees with cosign on both keys.
    let ox = |key: &Path| {
        registry_support::oxport(
            &[
                "verify",
                "--insecure",
                &format!("docker://{tag}"),
                "--key",
                key.to_str().unwrap(),
            ],
            &[],
        )
    };
    let o = ox(&public);
    assert!(
        o.status.success(),
        "oxport verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ox(&other);
    assert!(!o.status.success(), "oxport verify with another key passed");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no signature verifies with the key"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
