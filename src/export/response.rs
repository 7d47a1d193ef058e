//! Step 6 of an export: the exporter response map BuildKit's exporters
//! return (`containerimage.digest`, `containerimage.descriptor`,
//! `image.name`, the frontend's `frontend.*` metadata).

use base64::Engine as _;

use crate::assemble::Graph;
use crate::model::ExportResponse;
use crate::oci::Descriptor;
use crate::options::ExporterType;
use crate::reference::Reference;

use super::plan::Plan;

/// The response of an export of `graph` whose `index.json` root is `root`.
pub(super) fn build_response(plan: &Plan<'_>, graph: &Graph, root: &Descriptor) -> ExportResponse {
    let opts = &plan.opts;
    let mut response = ExportResponse::new();
    for (k, v) in &plan.meta {
        if k.starts_with("frontend.") {
            response.insert(k.clone(), String::from_utf8_lossy(v).into_owned());
        }
    }
    response.insert("containerimage.digest".into(), graph.root.digest.clone());
    let response_root: Descriptor = if opts.exporter == ExporterType::Image {
        let mut d = graph.root.clone();
        d.annotations.clear();
        d
    } else {
        root.clone()
    };
    response.insert(
        "containerimage.descriptor".into(),
        base64::engine::general_purpose::STANDARD.encode(response_root.to_json()),
    );
    if let Some(c) = &graph.config_digest {
        response.insert("containerimage.config.digest".into(), c.clone());
    }
    let names = &plan.names;
    if !names.is_empty() {
        let mut listed: Vec<String> = names.iter().map(Reference::full).collect();
        if opts.exporter == ExporterType::Image && opts.name_canonical {
            // BuildKit adds `name@digest` for each name.
            listed.extend(
                names
                    .iter()
                    .map(|n| format!("{}@{}", n.name(), graph.root.digest)),
            );
        }
        response.insert("image.name".into(), listed.join(","));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::export::fixtures::{request, SINGLE};
    use crate::export::plan::plan;
    use crate::export::resolve::resolve;
    use crate::limits::Limits;

    fn graph() -> Graph {
        let mut root = Descriptor::new(crate::oci::MT_OCI_MANIFEST, "sha256:root".into(), 10);
        root.annotations.insert("k".into(), "v".into());
        Graph {
            blobs: BTreeMap::new(),
            root,
            config_digest: Some("sha256:config".into()),
            image_manifests: Vec::new(),
            attestation_manifests: Vec::new(),
            subjects: BTreeMap::new(),
            single: None,
            signatures: Vec::new(),
            signature_tags: Vec::new(),
        }
    }

    fn response_of(req: &crate::model::ExportRequest) -> ExportResponse {
        let plan = plan(req, resolve(req, &Limits::default()).unwrap()).unwrap();
        let g = graph();
        let mut root = g.root.clone();
        root.annotations.insert("created".into(), "then".into());
        build_response(&plan, &g, &root)
    }

    fn descriptor(r: &ExportResponse) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&r["containerimage.descriptor"])
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn an_archive_describes_its_index_json_root() {
        let mut req = request("oci", &[("name", "app:1")], SINGLE);
        let meta = &mut req.result.metadata;
        meta.insert("frontend.caps".into(), b"x".to_vec());
        meta.insert("other".into(), b"y".to_vec());
        let r = response_of(&req);
        assert_eq!(r["containerimage.digest"], "sha256:root");
        assert_eq!(r["containerimage.config.digest"], "sha256:config");
        assert_eq!(r["frontend.caps"], "x");
        assert!(!r.contains_key("other"));
        assert_eq!(r["image.name"], "docker.io/library/app:1");
        assert!(descriptor(&r).contains("\"created\""));
    }

    #[test]
    fn an_image_lists_canonical_names_and_drops_annotations() {
        let req = request(
            "image",
            &[("name", "app:1"), ("name-canonical", "true")],
            SINGLE,
        );
        let r = response_of(&req);
        assert_eq!(
            r["image.name"],
            "docker.io/library/app:1,docker.io/library/app@sha256:root"
        );
        assert!(!descriptor(&r).contains("annotations"));
    }
}
