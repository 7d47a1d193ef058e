use std::collections::BTreeMap;

use super::*;
use crate::export::fixtures::{request, MemBlobs, PLATFORM_MAP, SINGLE};
use crate::export::{layers, plan, resolve, ExportEnv};
use crate::limits::Limits;
use crate::model::{Attestation, AttestationContent, AttestationKind, ExportRequest};
use crate::sign::bundle::Bundle;
use crate::sign::PrivateKey;

/// Bundles only, the root alone of the image's manifests, as an export
/// signs unless `oxport.sign-format` or `oxport.sign-recursive` say.
fn bundles<'a>(k: &'a PrivateKey, created: Option<&'a str>) -> Signing<'a> {
    Signing {
        signer: k,
        created,
        format: SignFormat::Bundle,
        recursive: false,
        repository: "r.example/app".into(),
    }
}

/// [`bundles`] with each platform manifest signed too.
fn recursive<'a>(k: &'a PrivateKey, created: Option<&'a str>) -> Signing<'a> {
    Signing {
        recursive: true,
        ..bundles(k, created)
    }
}

fn key() -> PrivateKey {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signing/plain-pkcs8.key");
    PrivateKey::from_pem(&std::fs::read_to_string(p).unwrap(), &mut || unreachable!()).unwrap()
}

fn provenance() -> Attestation {
    Attestation {
        kind: AttestationKind::InToto,
        path: String::new(),
        content: AttestationContent::InToto(br#"{"builder":{"id":"b"}}"#.to_vec()),
        predicate_type: "https://slsa.dev/provenance/v0.2".into(),
        subjects: Vec::new(),
        metadata: BTreeMap::new(),
        origin: crate::model::Origin::Daemon,
    }
}

/// Two platforms named `r.example/app:1`, each with a provenance statement.
fn two_platforms_with_provenance() -> ExportRequest {
    let mut req = request(
        "oci",
        &[("oci-artifact", "true"), ("name", "r.example/app:1")],
        PLATFORM_MAP,
    );
    for id in ["linux/amd64", "linux/arm64"] {
        req.result
            .attestations
            .insert(id.into(), vec![provenance()]);
    }
    req
}

fn graph_of(req: &ExportRequest) -> Graph {
    let scratch = tempfile::tempdir().unwrap();
    let blobs = MemBlobs::layers(1);
    let env = ExportEnv {
        blobs: &blobs,
        scratch: scratch.path(),
        limits: Limits::default(),
        registry: Default::default(),
        keyring: &crate::sign::keyring::NONE,
    };
    let plan = plan::plan(req, resolve::resolve(req, &env.limits).unwrap()).unwrap();
    let inputs = layers::export_layers(req, &plan, &env).unwrap();
    super::super::assemble_graph(&plan, &inputs, req, &env.limits).unwrap()
}

/// The signed statement of each signature manifest, by subject digest.
fn signed(graph: &Graph, key: &PrivateKey) -> Vec<(String, String)> {
    graph
        .signatures
        .iter()
        .map(|d| {
            let Blob::Bytes(m) = &graph.blobs[&d.digest].1 else {
                panic!()
            };
            let m: serde_json::Value = serde_json::from_slice(m).unwrap();
            let layer = m["layers"][0]["digest"].as_str().unwrap();
            let Blob::Bytes(b) = &graph.blobs[layer].1 else {
                panic!()
            };
            let statement = Bundle::from_json(b)
                .unwrap()
                .dsse_envelope
                .verify(&key.public_key())
                .unwrap();
            assert_eq!(
                graph.subjects[&d.digest],
                m["subject"]["digest"].as_str().unwrap()
            );
            (
                graph.subjects[&d.digest].clone(),
                String::from_utf8(statement).unwrap(),
            )
        })
        .collect()
}

#[test]
fn by_default_the_index_and_each_statement_are_signed_not_the_platforms() {
    let req = two_platforms_with_provenance();
    let mut graph = graph_of(&req);
    let unsigned = graph.blobs.len();
    let k = key();
    sign_graph(&mut graph, &bundles(&k, None)).unwrap();
    let got = signed(&graph, &k);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, graph.root.digest);
    assert!(got[0].1.contains(&graph.root.digest[7..]));
    assert!(got[0].1.contains(artifacts::SIGN_PREDICATE_TYPE));
    for (i, m) in graph.image_manifests.iter().enumerate() {
        assert_eq!(got[1 + i].0, m.digest);
        assert!(got[1 + i].1.contains("https://slsa.dev/provenance/v0.2"));
        assert!(!got[1 + i].1.contains(artifacts::SIGN_PREDICATE_TYPE));
    }
    assert_eq!(graph.blobs.len(), unsigned + 6);
}

#[test]
fn recursively_an_index_its_platforms_and_each_statement_are_signed() {
    let req = two_platforms_with_provenance();
    let mut graph = graph_of(&req);
    let unsigned = graph.blobs.len();
    let k = key();
    sign_graph(&mut graph, &recursive(&k, Some("2024-01-02T03:04:05Z"))).unwrap();
    let got = signed(&graph, &k);
    // The index, two platform manifests, two provenance statements.
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0].0, graph.root.digest);
    for (i, m) in graph.image_manifests.iter().enumerate() {
        assert_eq!(got[1 + i].0, m.digest);
        assert!(got[1 + i].1.contains(&m.digest[7..]));
        assert!(got[1 + i].1.contains(artifacts::SIGN_PREDICATE_TYPE));
        // The provenance of that platform, signed as assembled.
        assert_eq!(got[3 + i].0, m.digest);
        assert!(
            got[3 + i].1.contains("https://slsa.dev/provenance/v0.2"),
            "{}",
            got[3 + i].1
        );
        assert!(
            got[3 + i].1.contains(&m.digest[7..]),
            "the statement names the platform manifest: {} {}",
            m.digest,
            got[3 + i].1
        );
    }
    // Five manifests and five bundles; the empty config is the one the
    // artifact-form attestation manifests already name.
    assert!(graph
        .blobs
        .contains_key(&crate::oci::digest_of(artifacts::EMPTY_CONFIG)));
    assert_eq!(graph.blobs.len(), unsigned + 10);
}

#[test]
fn legacy_attestation_manifests_are_signed_for_their_image_too() {
    let mut req = request("oci", &[("oci-artifact", "false")], PLATFORM_MAP);
    req.result
        .attestations
        .insert("linux/amd64".into(), vec![provenance()]);
    let mut graph = graph_of(&req);
    let k = key();
    sign_graph(&mut graph, &bundles(&k, None)).unwrap();
    let got = signed(&graph, &k);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].0, graph.image_manifests[0].digest);
    assert!(got[1].1.contains("https://slsa.dev/provenance/v0.2"));
}

#[test]
fn a_single_manifest_root_is_signed_once() {
    let req = request("oci", &[], SINGLE);
    let mut graph = graph_of(&req);
    let k = key();
    sign_graph(&mut graph, &recursive(&k, None)).unwrap();
    let got = signed(&graph, &k);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, graph.root.digest);
}

/// The layers of a tag the graph holds, with the blob of each.
fn tag_layers(graph: &Graph, tag: &str) -> Vec<(Descriptor, Vec<u8>)> {
    let (_, d) = graph
        .signature_tags
        .iter()
        .find(|(t, _)| t == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {:?}", graph.signature_tags));
    let Blob::Bytes(m) = &graph.blobs[&d.digest].1 else {
        panic!()
    };
    assert_eq!(d.digest, crate::oci::digest_of(m));
    tags::layers_of(m)
        .unwrap()
        .into_iter()
        .map(|l| {
            let Blob::Bytes(b) = &graph.blobs[&l.digest].1 else {
                panic!()
            };
            (l, b.clone())
        })
        .collect()
}

#[test]
fn the_tag_scheme_holds_a_sig_per_signed_manifest_and_an_att_per_platform() {
    use base64::Engine as _;
    let req = two_platforms_with_provenance();
    let k = key();
    for (format, bundles) in [(SignFormat::Legacy, 0), (SignFormat::Both, 5)] {
        let mut graph = graph_of(&req);
        let how = Signing {
            format,
            ..self::recursive(&k, None)
        };
        sign_graph(&mut graph, &how).unwrap();
        assert_eq!(graph.signatures.len(), bundles, "{format:?}");
        // Three .sig tags (index, two platforms), two .att tags.
        assert_eq!(graph.signature_tags.len(), 5, "{format:?}");
        let mut signed = vec![graph.root.clone()];
        signed.extend(graph.image_manifests.iter().cloned());
        for d in &signed {
            let layers = tag_layers(&graph, &tags::tag_for(&d.digest, TagKind::Signatures));
            assert_eq!(layers.len(), 1);
            let (l, payload) = &layers[0];
            let p: serde_json::Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(
                p["critical"]["image"]["docker-manifest-digest"],
                d.digest.as_str()
            );
            assert_eq!(
                p["critical"]["identity"]["docker-reference"],
                "r.example/app"
            );
            let sig = base64::engine::general_purpose::STANDARD
                .decode(&l.annotations[tags::ANN_SIGNATURE])
                .unwrap();
            assert!(k.public_key().verify(payload, &sig));
        }
        for m in &graph.image_manifests {
            let layers = tag_layers(&graph, &tags::tag_for(&m.digest, TagKind::Attestations));
            assert_eq!(layers.len(), 1);
            let (l, envelope) = &layers[0];
            assert_eq!(
                l.annotations[tags::ANN_PREDICATE_TYPE],
                "https://slsa.dev/provenance/v0.2"
            );
            let e: Envelope = serde_json::from_slice(envelope).unwrap();
            let statement = String::from_utf8(e.verify(&k.public_key()).unwrap()).unwrap();
            assert!(statement.contains(&m.digest[7..]), "{statement}");
        }
    }
}

#[test]
fn by_default_the_tag_scheme_has_one_sig_for_the_index() {
    let req = two_platforms_with_provenance();
    let k = key();
    let mut graph = graph_of(&req);
    let how = Signing {
        format: SignFormat::Legacy,
        ..bundles(&k, None)
    };
    sign_graph(&mut graph, &how).unwrap();
    let mut names: Vec<String> = graph
        .signature_tags
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    names.sort();
    let mut want = vec![tags::tag_for(&graph.root.digest, TagKind::Signatures)];
    for m in &graph.image_manifests {
        want.push(tags::tag_for(&m.digest, TagKind::Attestations));
    }
    want.sort();
    assert_eq!(names, want);
}
