use super::*;
use crate::sign::bundle::IN_TOTO_PAYLOAD_TYPE;
use crate::sign::PrivateKey;

fn key() -> PrivateKey {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signing/plain-pkcs8.key");
    PrivateKey::from_pem(&std::fs::read_to_string(p).unwrap(), &mut || unreachable!()).unwrap()
}

const SIGNED: &str = "sha256:6af89d0e08e1027f1effb6eb2d800f461312e06c1b415922b43a41d764aaf6f2";

#[test]
fn the_image_statement_is_the_one_cosign_signs() {
    // The statement of cosign v3.1.3's bundle for SIGNED, without its
    // empty subject annotations (cosign verifies both forms).
    assert_eq!(
        String::from_utf8(image_statement(SIGNED)).unwrap(),
        r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"6af89d0e08e1027f1effb6eb2d800f461312e06c1b415922b43a41d764aaf6f2"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}"#
    );
}

#[test]
fn a_referrer_has_cosign_s_shape_and_a_verifiable_bundle() {
    let subject = Descriptor::new(MT_OCI_MANIFEST, SIGNED.into(), 401);
    let k = key();
    let statement = image_statement(SIGNED);
    let a = bundle_referrer(
        &k,
        &statement,
        SIGN_PREDICATE_TYPE,
        &subject,
        Some("2026-11-29T21:21:52Z"),
    )
    .unwrap();
    let m: Value = serde_json::from_slice(&a.manifest).unwrap();
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "schemaVersion",
            "mediaType",
            "config",
            "layers",
            "annotations",
            "subject",
            "artifactType"
        ]
    );
    assert_eq!(m["artifactType"], BUNDLE_MEDIA_TYPE);
    assert_eq!(
        m["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(m["subject"]["digest"], SIGNED);
    assert_eq!(m["subject"]["size"], 401);
    assert_eq!(m["annotations"][ANN_PREDICATE_TYPE], SIGN_PREDICATE_TYPE);
    assert_eq!(m["annotations"][ANN_CREATED], "2026-11-29T21:21:52Z");
    assert_eq!(a.descriptor.digest, crate::oci::digest_of(&a.manifest));
    assert_eq!(a.descriptor.artifact_type, BUNDLE_MEDIA_TYPE);
    assert_eq!(a.subject, SIGNED);
    let (layer, bundle) = &a.blobs[1];
    assert_eq!(m["layers"][0]["digest"], layer.digest.as_str());
    let b = Bundle::from_json(bundle).unwrap();
    assert_eq!(b.dsse_envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(b.dsse_envelope.verify(&k.public_key()).unwrap(), statement);
}
