use super::*;

fn file(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/signing")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn no_password() -> KeyResult<Vec<u8>> {
    panic!("a plain key asks for no password")
}

#[test]
fn a_cosign_encrypted_key_opens_with_its_password_and_matches_its_public_key() {
    let pw = file("cosign.password");
    let key =
        PrivateKey::from_pem(&file("cosign.key"), &mut || Ok(pw.as_bytes().to_vec())).unwrap();
    // cosign's own public key file, compared as the key it holds.
    let public = PublicKey::from_pem(&file("cosign.pub")).unwrap();
    assert_eq!(key.public_key(), public);
    assert_eq!(public.to_pem(), file("cosign.pub"));
    let sig = key.sign(b"message").unwrap();
    assert!(public.verify(b"message", &sig));
    assert!(!public.verify(b"other message", &sig));
    assert_eq!(sig[0], 0x30, "ASN.1 DER");
}

#[test]
fn a_wrong_password_is_named_as_such() {
    let err = PrivateKey::from_pem(&file("cosign.key"), &mut || Ok(b"wrong".to_vec()))
        .err()
        .unwrap();
    assert!(err.contains("the password does not open this key"), "{err}");
}

#[test]
fn a_plain_pkcs8_key_needs_no_password() {
    let key = PrivateKey::from_pem(&file("plain-pkcs8.key"), &mut no_password).unwrap();
    let public = PublicKey::from_pem(&file("plain-pkcs8.pub")).unwrap();
    assert_eq!(key.public_key(), public);
    let other = PublicKey::from_pem(&file("cosign.pub")).unwrap();
    let sig = key.sign(b"m").unwrap();
    assert!(public.verify(b"m", &sig));
    assert!(!other.verify(b"m", &sig), "another key does not verify it");
}

#[test]
fn sec1_and_other_pem_blocks_are_refused_with_what_to_do() {
    let err = PrivateKey::from_pem(&file("plain-sec1.key"), &mut no_password)
        .err()
        .unwrap();
    assert!(err.contains("openssl pkcs8 -topk8 -nocrypt"), "{err}");
    let err = PrivateKey::from_pem(&file("cosign.pub"), &mut no_password)
        .err()
        .unwrap();
    assert!(err.contains("\"PUBLIC KEY\" is not a private key"), "{err}");
    let err = PrivateKey::from_pem("nothing here", &mut no_password)
        .err()
        .unwrap();
    assert!(err.contains("no PEM block"), "{err}");
}

#[test]
fn the_hint_is_the_digest_of_the_public_key_der() {
    // The hint cosign put in a bundle it made with this key pair.
    let public = PublicKey::from_pem(&file("cosign.pub")).unwrap();
    assert_eq!(public.hint(), HINT_OF_COSIGN_PUB);
}

/// From the `verificationMaterial.publicKey.hint` of a bundle that cosign
/// v3.1.3 wrote when signing with `cosign.key`.
const HINT_OF_COSIGN_PUB: &str = "UMLFPCRAZghayuC5oa0nOuZ40e6fpEshSqYsUyx/X/0=";
