use super::*;
use crate::sign::key::PrivateKey;

fn file(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/signing")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn cosign_pub() -> PublicKey {
    PublicKey::from_pem(&String::from_utf8(file("cosign.pub")).unwrap()).unwrap()
}

#[test]
fn pae_is_dsse_v1() {
    // DSSE's specification example: type "http://example.com/HelloWorld", body "hello world".
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
}

#[test]
fn a_bundle_cosign_made_verifies_and_round_trips_byte_for_byte() {
    let bytes = file("cosign-sign.bundle.json");
    let bundle = Bundle::from_json(&bytes).unwrap();
    assert_eq!(bundle.to_json(), bytes, "cosign's field order and encoding");
    let statement = bundle.dsse_envelope.verify(&cosign_pub()).unwrap();
    let s = String::from_utf8(statement).unwrap();
    assert!(s.contains("https://sigstore.dev/cosign/sign/v1"), "{s}");
}

#[test]
fn a_tampered_payload_or_another_key_does_not_verify() {
    let bundle = Bundle::from_json(&file("cosign-sign.bundle.json")).unwrap();
    let mut tampered = bundle.dsse_envelope.clone();
    let mut body = STANDARD.decode(&tampered.payload).unwrap();
    body[10] ^= 1;
    tampered.payload = STANDARD.encode(body);
    assert!(tampered.verify(&cosign_pub()).is_err());
    let other = PublicKey::from_pem(&String::from_utf8(file("plain-pkcs8.pub")).unwrap()).unwrap();
    assert!(bundle.dsse_envelope.verify(&other).is_err());
}

#[test]
fn a_bundle_made_here_verifies_under_the_key_and_names_its_hint() {
    let key = PrivateKey::from_pem(
        &String::from_utf8(file("plain-pkcs8.key")).unwrap(),
        &mut || unreachable!(),
    )
    .unwrap();
    let bundle = Bundle::of_statement(&key, b"{\"_type\":\"x\"}").unwrap();
    assert_eq!(bundle.media_type, BUNDLE_MEDIA_TYPE);
    assert_eq!(
        bundle.verification_material.public_key.hint,
        key.public_key().hint()
    );
    let back = Bundle::from_json(&bundle.to_json()).unwrap();
    assert_eq!(
        back.dsse_envelope.verify(&key.public_key()).unwrap(),
        b"{\"_type\":\"x\"}"
    );
}
