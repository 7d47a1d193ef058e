use std::collections::BTreeMap;

use super::*;
use crate::export::fixtures::{request, MemBlobs, PLATFORM_MAP, SINGLE};
use crate::export::{layers, plan, resolve, ExportEnv};
use crate::limits::Limits;
use crate::model::{Attestation, AttestationContent, AttestationKind, ExportRequest};
use crate::sign::bundle::Bundle;
use crate::sign::PrivateKey;

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
fn an_index_its_platforms_and_each_statement_are_signed() {
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
    let mut graph = graph_of(&req);
    let unsigned = graph.blobs.len();
    let k = key();
    sign_graph(&mut graph, &k, Some("2024-01-02T03:04:05Z")).unwrap();
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
    sign_graph(&mut graph, &k, None).unwrap();
    let got = signed(&graph, &k);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[3].0, graph.image_manifests[0].digest);
}

#[test]
fn a_single_manifest_root_is_signed_once() {
    let req = request("oci", &[], SINGLE);
    let mut graph = graph_of(&req);
    let k = key();
    sign_graph(&mut graph, &k, None).unwrap();
    let got = signed(&graph, &k);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, graph.root.digest);
}
