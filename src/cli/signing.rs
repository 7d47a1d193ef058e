//! `oxport sign` and `oxport verify`: an existing image signed with a key,
//! and an image's signatures checked with a public key, as `cosign verify
//! --key` checks them; and the `--key` of `oxport inspect`.

use crate::image::remote::RemoteOptions;
use crate::inspect::signatures::Signature;
use crate::sign::artifacts::SIGN_PREDICATE_TYPE;
use crate::sign::PublicKey;

/// Reads a PEM public key file, naming it in errors.
pub fn public_key(path: &std::path::Path) -> Result<PublicKey, String> {
    let pem =
        std::fs::read_to_string(path).map_err(|e| format!("--key {}: {e}", path.display()))?;
    PublicKey::from_pem(&pem).map_err(|e| format!("--key {}: {e}", path.display()))
}

/// `oxport verify`: passes when a signature of the image's root verifies
/// under the key; prints every signature found and how it checked.
pub fn verify(src: &str, key: &std::path::Path, opts: &RemoteOptions) -> Result<(), String> {
    let key = public_key(key)?;
    let report = crate::inspect::run(&src.parse()?, opts, Some(&key)).map_err(|e| e.message)?;
    for s in &report.signatures {
        println!("{}", line(s));
    }
    let roots: Vec<&str> = report
        .roots
        .iter()
        .map(|r| r.descriptor.digest.as_str())
        .collect();
    let signed = |root: &str| {
        report.signatures.iter().any(|s| {
            s.subject == root
                && s.predicate_type == SIGN_PREDICATE_TYPE
                && matches!(s.check, Some(Ok(())))
        })
    };
    let unsigned: Vec<&str> = roots.iter().copied().filter(|r| !signed(r)).collect();
    if roots.is_empty() {
        return Err(format!("{src}: no image to verify"));
    }
    if !unsigned.is_empty() {
        return Err(format!(
            "{src}: no signature verifies with the key for {}",
            unsigned.join(", ")
        ));
    }
    eprintln!("verified {src}: {} signed by the key", roots.join(", "));
    Ok(())
}

fn line(s: &Signature) -> String {
    let state = match &s.check {
        None => "not checked".to_string(),
        Some(Ok(())) => "verified".to_string(),
        Some(Err(e)) => format!("not verified: {e}"),
    };
    format!(
        "{} {} {}: {state}",
        s.subject, s.predicate_type, s.descriptor.digest
    )
}

/// `oxport sign`: the image and its attestations signed with the key at
/// `key`; prints each signature attached.
pub fn sign(
    src: &str,
    key: &std::path::Path,
    password_file: Option<&std::path::Path>,
    recursive: bool,
    opts: &RemoteOptions,
) -> Result<(), String> {
    let signer = crate::sign::keyring::load_key(key, password_file, "--key-password-file FILE")
        .map_err(|e| format!("--key {}: {e}", key.display()))?;
    let attached =
        crate::attach::run(&src.parse()?, &signer, recursive, opts).map_err(|e| e.message)?;
    for (subject, predicate_type, digest) in &attached.signatures {
        println!("{subject} {predicate_type} {digest}");
    }
    eprintln!(
        "signed {src}: {} signature(s) attached{}",
        attached.signatures.len(),
        if attached.fallback_tags.is_empty() {
            String::new()
        } else {
            format!(", fallback tags {}", attached.fallback_tags.join(", "))
        }
    );
    Ok(())
}
