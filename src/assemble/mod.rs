//! Pure assembly: exported layers, configs and attestations in, an image
//! graph (blobs by digest and a root descriptor) out. No I/O here: layers
//! arrive already exported, as descriptors with a handle to their bytes.

pub mod attest;
pub mod config;
pub mod sbom;

use std::collections::BTreeMap;

use crate::annotations::Annotations;
use crate::error::Result;
use crate::layer::{ExportedLayer, LayerSource};
use crate::model::Attestation;
use crate::oci::{self, Descriptor, Index, Manifest, Platform};
use crate::reference::Reference;
use crate::timefmt::Time;

/// One platform's inputs to assembly.
pub struct PlatformInput<'a> {
    /// The platform id the result uses (`linux/amd64`).
    pub id: String,
    pub platform: Platform,
    /// The frontend's config, or `None` for the default one.
    pub config: Option<&'a [u8]>,
    pub layers: Vec<ExportedLayer>,
    /// Per layer: (createdBy, created).
    pub layer_meta: Vec<(String, Option<Time>)>,
    pub attestations: Vec<&'a Attestation>,
    /// The entry names of the platform's layers, when a core SPDX SBOM needs
    /// them (`None` otherwise, and when the platform has no layers).
    pub layer_files: Option<sbom::LayerFiles>,
    pub epoch: Option<Time>,
    pub annotations: Annotations,
}

/// What assembly needs besides the platforms.
pub struct AssembleOptions<'a> {
    pub oci_types: bool,
    pub oci_artifact: bool,
    /// List attestation manifests in the index (else they stand alone, found
    /// through referrers).
    pub attestations_in_index: bool,
    /// An index even for one platform (map results, or attestations).
    pub want_index: bool,
    pub names: &'a [Reference],
    /// Unscoped annotations (index and index-descriptor kinds apply).
    pub annotations: Annotations,
    /// The largest in-toto statement written (`Limits::max_statement_size`).
    pub max_statement_size: usize,
    /// The builder's version, for the SBOM supplement.
    pub builder_version: &'a str,
}

/// The bytes of one blob of the graph.
#[derive(Debug, Clone)]
pub enum Blob {
    Bytes(Vec<u8>),
    Layer(LayerSource),
}

/// The assembled image: every blob by digest, and the root.
#[derive(Debug, Clone)]
pub struct Graph {
    pub blobs: BTreeMap<String, (Descriptor, Blob)>,
    /// The root descriptor with its platform (single manifest) and the
    /// user's descriptor annotations.
    pub root: Descriptor,
    /// For a single manifest root: its config digest.
    pub config_digest: Option<String>,
    /// Image manifests, in platform order (for push order and docker's manifest.json).
    pub image_manifests: Vec<Descriptor>,
    /// Attestation manifests, in platform order.
    pub attestation_manifests: Vec<Descriptor>,
    /// Manifest digest -> the digest of the subject it names (artifact-form
    /// attestation manifests), so a push need not parse manifests back.
    pub subjects: BTreeMap<String, String>,
    /// For a single manifest root: config and layer digests (docker's manifest.json).
    pub single: Option<(String, Vec<String>)>,
    /// Signature manifests (sigstore bundles as referrers), each with its
    /// subject in `subjects`; added after assembly by a signing step.
    pub signatures: Vec<Descriptor>,
    /// cosign's older signature tags (`sha256-<hex>.sig`, `.att`) and the
    /// manifest each holds; added by a signing step that asks for them.
    pub signature_tags: Vec<(String, Descriptor)>,
}

impl Graph {
    /// Adds a blob (kept once per digest).
    pub fn add(&mut self, d: &Descriptor, blob: Blob) {
        self.blobs.entry(d.digest.clone()).or_insert_with(|| {
            (
                Descriptor::new(&d.media_type, d.digest.clone(), d.size),
                blob,
            )
        });
    }
}

struct BuiltImage {
    descriptor: Descriptor,
    config_digest: String,
    layer_digests: Vec<String>,
}

/// Config, manifest and blobs of one platform's image.
fn build_image(p: &PlatformInput<'_>, oci_types: bool, graph: &mut Graph) -> Result<BuiltImage> {
    let config_bytes = p.config.unwrap_or(config::DEFAULT_CONFIG.as_bytes());
    let history = config::parse_history(config_bytes)?;
    let infos: Vec<config::LayerInfo> = p
        .layers
        .iter()
        .zip(&p.layer_meta)
        .map(|(l, (by, at))| config::LayerInfo {
            diff_id: l.diff_id.clone(),
            created_by: by.clone(),
            created: *at,
        })
        .collect();
    let mut history = config::normalize_history(history, &infos);
    if let Some(e) = &p.epoch {
        config::clamp_history(&mut history, e);
    }
    let diff_ids: Vec<String> = infos.iter().map(|i| i.diff_id.clone()).collect();
    let config = config::patch(config_bytes, &diff_ids, &history, p.epoch.as_ref())?;
    let config_mt = if oci_types {
        oci::MT_OCI_CONFIG
    } else {
        oci::MT_DOCKER_CONFIG
    };
    let config_desc = Descriptor::of(config_mt, &config);
    let mut layers = Vec::with_capacity(p.layers.len());
    for l in &p.layers {
        let mut d = l.descriptor.clone();
        if !oci_types {
            d.annotations.clear();
        }
        graph.add(&d, Blob::Layer(l.source.clone()));
        layers.push(d);
    }
    let manifest = Manifest {
        media_type: if oci_types {
            oci::MT_OCI_MANIFEST
        } else {
            oci::MT_DOCKER_MANIFEST
        }
        .into(),
        config: config_desc.clone(),
        layers,
        annotations: p.annotations.manifest.clone(),
        ..Default::default()
    };
    graph.add(&config_desc, Blob::Bytes(config));
    let bytes = manifest.to_bytes();
    let mut descriptor = Descriptor::of(&manifest.media_type, &bytes);
    graph.add(&descriptor, Blob::Bytes(bytes));
    descriptor.annotations = p.annotations.manifest_descriptor.clone();
    Ok(BuiltImage {
        descriptor,
        config_digest: config_desc.digest,
        layer_digests: p
            .layers
            .iter()
            .map(|l| l.descriptor.digest.clone())
            .collect(),
    })
}

/// Assembles the image graph.
pub fn assemble(platforms: &[PlatformInput<'_>], opts: &AssembleOptions<'_>) -> Result<Graph> {
    let mut graph = Graph {
        blobs: BTreeMap::new(),
        root: Descriptor::default(),
        config_digest: None,
        image_manifests: Vec::new(),
        attestation_manifests: Vec::new(),
        subjects: BTreeMap::new(),
        single: None,
        signatures: Vec::new(),
        signature_tags: Vec::new(),
    };
    let mut images = Vec::with_capacity(platforms.len());
    for p in platforms {
        let mut built = build_image(p, opts.oci_types, &mut graph)?;
        built.descriptor.platform = Some(p.platform.clone());
        graph.image_manifests.push(built.descriptor.clone());
        images.push(built);
    }

    if !opts.want_index {
        let image = images.remove(0);
        graph.root = image.descriptor;
        graph.config_digest = Some(image.config_digest.clone());
        graph.single = Some((image.config_digest, image.layer_digests));
        return Ok(graph);
    }

    let mut manifests: Vec<Descriptor> = images.iter().map(|i| i.descriptor.clone()).collect();
    for (p, image) in platforms.iter().zip(&images) {
        if p.attestations.is_empty() {
            continue;
        }
        let field = format!("attestations[{:?}]", p.id);
        let cx = attest::StatementContext {
            names: opts.names,
            platform: &p.platform,
            manifest: &image.descriptor,
            layer_files: p.layer_files.as_ref(),
            builder_version: opts.builder_version,
        };
        let statements = attest::statements(&p.attestations, &cx, &field, opts.max_statement_size)?;
        let am = attest::attestation_manifest(statements, &image.descriptor, opts.oci_artifact);
        for (d, bytes) in am.blobs {
            graph.add(&d, Blob::Bytes(bytes));
        }
        graph.add(&am.descriptor, Blob::Bytes(am.bytes));
        graph.attestation_manifests.push(am.descriptor.clone());
        if let Some(s) = &am.manifest.subject {
            graph
                .subjects
                .insert(am.descriptor.digest.clone(), s.digest.clone());
        }
        if opts.attestations_in_index {
            manifests.push(am.descriptor);
        }
    }
    let index = Index {
        media_type: if opts.oci_types {
            oci::MT_OCI_INDEX
        } else {
            oci::MT_DOCKER_LIST
        }
        .into(),
        manifests,
        annotations: opts.annotations.index.clone(),
        ..Default::default()
    };
    let bytes = index.to_bytes();
    let mut root = Descriptor::of(&index.media_type, &bytes);
    graph.add(&root, Blob::Bytes(bytes));
    root.annotations = opts.annotations.index_descriptor.clone();
    graph.root = root;
    Ok(graph)
}
