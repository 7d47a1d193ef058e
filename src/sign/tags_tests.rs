use super::*;
use crate::sign::PrivateKey;

const SIGNED: &str = "sha256:6af89d0e08e1027f1effb6eb2d800f461312e06c1b415922b43a41d764aaf6f2";

/// A file of what cosign pushed (tests/signing/cosign-tags).
fn cosign(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/signing/cosign-tags")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn key() -> PrivateKey {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signing/plain-pkcs8.key");
    PrivateKey::from_pem(&std::fs::read_to_string(p).unwrap(), &mut || unreachable!()).unwrap()
}

#[test]
fn tags_are_cosign_s() {
    let hex = SIGNED.strip_prefix("sha256:").unwrap();
    assert_eq!(
        tag_for(SIGNED, TagKind::Signatures),
        format!("sha256-{hex}.sig")
    );
    assert_eq!(
        tag_for(SIGNED, TagKind::Attestations),
        format!("sha256-{hex}.att")
    );
}

#[test]
fn the_payload_is_the_one_cosign_signed() {
    assert_eq!(
        simple_signing_payload("127.0.0.1:5101/old-sign", SIGNED),
        cosign("sig-payload.json")
    );
}

#[test]
fn a_sig_tag_of_cosign_s_layer_is_cosign_s_manifest_and_config() {
    let layers = layers_of(&cosign("sig-manifest.json")).unwrap();
    assert_eq!(layers.len(), 1);
    let t = tag_manifest(&layers);
    assert_eq!(
        String::from_utf8(t.manifest).unwrap(),
        String::from_utf8(cosign("sig-manifest.json")).unwrap()
    );
    assert_eq!(t.config.1, cosign("sig-config.json"));
    assert_eq!(
        t.config.0.digest,
        crate::oci::digest_of(&cosign("sig-config.json"))
    );
}

#[test]
fn an_att_tag_of_cosign_s_layers_is_cosign_s_manifest_and_config() {
    let layers = layers_of(&cosign("att-manifest.json")).unwrap();
    assert_eq!(layers.len(), 2);
    let t = tag_manifest(&layers);
    assert_eq!(
        String::from_utf8(t.manifest).unwrap(),
        String::from_utf8(cosign("att-manifest.json")).unwrap()
    );
    assert_eq!(t.config.1, cosign("att-config.json"));
}

#[test]
fn an_att_layer_is_the_envelope_as_cosign_writes_it() {
    let expected = layers_of(&cosign("att-manifest.json")).unwrap();
    for (file, want) in [
        ("att-slsa.json", &expected[0]),
        ("att-spdx.json", &expected[1]),
    ] {
        let bytes = cosign(file);
        let envelope: Envelope = serde_json::from_slice(&bytes).unwrap();
        let predicate_type = &want.annotations[ANN_PREDICATE_TYPE];
        let (d, out) = attestation_layer(&envelope, predicate_type);
        assert_eq!(out, bytes, "{file}");
        assert_eq!(&d, want, "{file}");
    }
}

#[test]
fn a_signature_layer_verifies_over_its_payload() {
    let k = key();
    let payload = simple_signing_payload("registry.example/app", SIGNED);
    let (d, bytes) = signature_layer(&k, &payload).unwrap();
    assert_eq!(bytes, payload);
    assert_eq!(d.media_type, MT_SIMPLE_SIGNING);
    assert_eq!(d.digest, crate::oci::digest_of(&payload));
    let sig = STANDARD.decode(&d.annotations[ANN_SIGNATURE]).unwrap();
    assert!(k.public_key().verify(&payload, &sig));
    assert!(!k.public_key().verify(b"another payload", &sig));
}

#[test]
fn merging_keeps_what_the_tag_lists_and_adds_what_it_lacks() {
    let k = key();
    let payload = simple_signing_payload("registry.example/app", SIGNED);
    let (ours, _) = signature_layer(&k, &payload).unwrap();
    // Nothing there yet: ours alone.
    assert_eq!(
        merged_layers(None, std::slice::from_ref(&ours)).unwrap(),
        Some(vec![ours.clone()])
    );
    // Listed already: nothing to write.
    let mine = tag_manifest(std::slice::from_ref(&ours)).manifest;
    assert_eq!(
        merged_layers(Some(&mine), std::slice::from_ref(&ours)).unwrap(),
        None
    );
    assert!(lists_all(&mine, std::slice::from_ref(&ours)).unwrap());
    // The same payload signed again (another signature): both kept, theirs first.
    let (again, _) = signature_layer(&k, &payload).unwrap();
    assert_eq!(again.digest, ours.digest);
    let merged = merged_layers(Some(&mine), std::slice::from_ref(&again))
        .unwrap()
        .unwrap();
    assert_eq!(merged, vec![ours.clone(), again]);
    // cosign's tag of another image: its layer stays.
    let theirs = cosign("sig-manifest.json");
    let merged = merged_layers(Some(&theirs), std::slice::from_ref(&ours))
        .unwrap()
        .unwrap();
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0], layers_of(&theirs).unwrap()[0]);
    assert!(merged_layers(Some(b"not json"), &[ours]).is_err());
}

#[test]
fn only_cosign_tag_names_give_a_subject() {
    let hex = "a".repeat(64);
    let digest = format!("sha256:{hex}");
    for kind in [TagKind::Signatures, TagKind::Attestations] {
        assert_eq!(
            tag_subject(&tag_for(&digest, kind)),
            Some((digest.clone(), kind))
        );
    }
    for name in [
        format!("sha256-{hex}"),
        format!("sha256-{hex}.sbom"),
        format!("sha256-{}.sig", "a".repeat(63)),
        format!("sha256-{}.sig", "A".repeat(64)),
        format!("sha512-{hex}.sig"),
        "latest".to_string(),
    ] {
        assert_eq!(tag_subject(&name), None, "{name}");
    }
}
