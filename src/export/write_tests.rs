use std::collections::BTreeMap;

use super::*;
use crate::export::fixtures::{request, MemBlobs, SINGLE};
use crate::export::plan::plan;
use crate::export::resolve::resolve;
use crate::limits::Limits;
use crate::oci::MT_OCI_MANIFEST;

fn graph() -> Graph {
    Graph {
        blobs: BTreeMap::new(),
        root: Descriptor::new(MT_OCI_MANIFEST, "sha256:root".into(), 10),
        config_digest: None,
        image_manifests: Vec::new(),
        attestation_manifests: Vec::new(),
        subjects: BTreeMap::new(),
        single: None,
        signatures: Vec::new(),
        signature_tags: Vec::new(),
    }
}

fn write(req: &ExportRequest) -> (Descriptor, Vec<u8>) {
    let scratch = tempfile::tempdir().unwrap();
    let env = ExportEnv {
        blobs: &MemBlobs::default(),
        scratch: scratch.path(),
        limits: Limits::default(),
        registry: Default::default(),
        keyring: &crate::sign::keyring::NONE,
    };
    let plan = plan(req, resolve(req, &env.limits).unwrap()).unwrap();
    let mut out = Vec::new();
    let root = write_to_sink(req, &plan, &graph(), &env, &mut out, &mut |_| {}).unwrap();
    (root, out)
}

#[test]
fn an_archive_exporter_writes_a_layout_tar() {
    let (root, out) = write(&request("oci", &[("source-date-epoch", "0")], SINGLE));
    assert_eq!(
        root.annotations["org.opencontainers.image.created"],
        "1970-01-01T00:00:00Z"
    );
    assert!(!out.is_empty() && out.len() % 512 == 0);
    let tar = String::from_utf8_lossy(&out);
    assert!(tar.contains("index.json") && tar.contains("oci-layout"));
}

#[test]
fn the_image_exporter_writes_nothing_without_push() {
    let (root, out) = write(&request("image", &[], SINGLE));
    assert_eq!(root.digest, "sha256:root");
    assert!(out.is_empty());
}

#[test]
fn created_is_the_epoch_else_now() {
    assert_eq!(
        created(Some(Time::from_unix(86400))),
        "1970-01-02T00:00:00Z"
    );
    assert!(created(None).as_str() > "2020");
}
