//! The library entry point: one export from request to output bytes.
//!
//! The server and the CLI both call [`export`]. It resolves the options,
//! checks the result, exports the layers (the only I/O before the sink),
//! assembles the image graph and writes it to the sink.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use base64::Engine as _;

use crate::annotations::{self, Annotations};
use crate::assemble::sbom::LayerFiles;
use crate::assemble::{self, attest, config, AssembleOptions, PlatformInput};
use crate::blob::BlobSource;
use crate::error::{ExportError, Result};
use crate::layer::{self, ExportedLayer, LayerPlan};
use crate::limits::Limits;
use crate::model::{Attestation, ExportRequest, ExportResponse};
use crate::oci::{Descriptor, Platform};
use crate::options::{ExportOptions, ExporterType};
use crate::progress::Progress;
use crate::reference::{self, Reference};
use crate::sink;
use crate::timefmt::Time;

mod input;

pub use input::check_layer_count;

use input::{
    check_layer, check_limits, map_platforms, meta_epoch, parse_created, KEY_CONFIG, KEY_EPOCH,
    KEY_IMAGE_NAME,
};

/// What an export may use besides the request.
pub struct ExportEnv<'a> {
    pub blobs: &'a dyn BlobSource,
    /// A directory for temporary files (re-compressed layers).
    pub scratch: &'a Path,
    /// What one request may bring; `Limits::default()` outside the server.
    pub limits: Limits,
    /// How pushes reach registries (credentials, certificates); each push
    /// sets `insecure` from its own attributes.
    pub registry: crate::registry::ClientOptions,
}

/// Checks an exporter type, attributes and compatibility version; returns
/// the effective options as key=value strings.
pub fn resolve_options(
    exporter: &str,
    attrs: &BTreeMap<String, String>,
    compatibility_version: i32,
) -> Result<BTreeMap<String, String>> {
    Ok(ExportOptions::parse(exporter, attrs, compatibility_version)?.effective())
}

/// Runs one export. `out` receives the output archive (an OCI layout as a
/// tar; nothing for `type=image`). Returns the exporter response map.
pub fn export(
    req: &ExportRequest,
    env: &ExportEnv<'_>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportResponse> {
    check_limits(req, &env.limits)?;
    let mut opts = ExportOptions::parse(&req.exporter, &req.attrs, req.compatibility_version)?;
    let result = &req.result;
    if result.refs.is_empty() {
        return Err(ExportError::invalid(
            "refs",
            "build result has no refs to export",
        ));
    }
    let is_map = result.is_map();
    if opts.exporter == ExporterType::Docker && is_map {
        return Err(ExportError::conflict(
            "refs",
            "docker exporter does not currently support exporting manifest lists",
        ));
    }

    // Unknown attributes are copied into the metadata, over the frontend's.
    let mut meta = result.metadata.clone();
    for (k, v) in &opts.extra_metadata {
        meta.insert(k.clone(), v.clone().into_bytes());
    }
    let meta_annotations = annotations::parse_metadata(&meta)?;
    opts.annotations.merge(&meta_annotations);

    // The epoch: the attribute, else the global metadata key, else per platform.
    let mut global_epoch = opts.epoch.map(Time::from_unix);
    if global_epoch.is_none() {
        if let Some(v) = meta.get(KEY_EPOCH) {
            global_epoch = meta_epoch(KEY_EPOCH, v)?;
        }
    }
    let has_global_epoch = opts.epoch.is_some() || meta.contains_key(KEY_EPOCH);

    // Platforms, in output order.
    let platforms: Vec<(String, Platform)> = if is_map {
        map_platforms(req, &meta)?
    } else {
        let p = match meta.get(KEY_CONFIG) {
            Some(c) if !c.is_empty() => config::config_platform(c)?,
            _ => None,
        }
        .unwrap_or_else(|| Platform::new("linux", "amd64"));
        vec![(crate::platform::format(&p), p)]
    };

    if let Some(key) = result
        .attestations
        .keys()
        .find(|k| !platforms.iter().any(|(id, _)| id == *k))
    {
        return Err(ExportError::invalid(
            format!("attestations[{key:?}]"),
            format!(
                "attestations for platform {key} have no ref to attach to (platforms: {})",
                platforms
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    // Attestations per platform; a single ref drops them when only
    // inline-only ones are present (unless attestation-inline).
    let mut atts: Vec<Vec<&Attestation>> = platforms
        .iter()
        .map(|(id, _)| {
            result
                .attestations
                .get(id)
                .map(|v| v.iter().collect())
                .unwrap_or_default()
        })
        .collect();
    if !is_map {
        let required = atts
            .iter()
            .flatten()
            .any(|a| opts.force_inline_attestations || !attest::is_inline_only(a));
        if !required {
            atts.iter_mut().for_each(Vec::clear);
        }
    }
    let has_attestations = atts.iter().any(|a| !a.is_empty());
    opts.finalize(!result.attestations.is_empty());
    opts.check_extensions()?;
    let oci_types = opts.oci_types();

    if !oci_types && has_attestations {
        return Err(ExportError::conflict(
            "oci-mediatypes",
            "cannot export attestations with \"oci-mediatypes=false\"",
        ));
    }
    if !oci_types && !opts.annotations.is_empty() {
        return Err(ExportError::conflict(
            "oci-mediatypes",
            "cannot export annotations with \"oci-mediatypes=false\"",
        ));
    }
    let want_index = is_map || has_attestations;
    let global = opts.annotations.for_platform(None);
    if !want_index && (!global.index.is_empty() || !global.index_descriptor.is_empty()) {
        return Err(ExportError::conflict(
            "annotation-index",
            "index annotations not supported for single platform export",
        ));
    }
    if is_map {
        for scoped in opts.annotations.scoped_platforms() {
            if !platforms
                .iter()
                .any(|(_, p)| crate::platform::format(p) == scoped)
            {
                return Err(ExportError::invalid(
                    "annotation",
                    format!("invalid annotation: no platform {scoped} found in source"),
                ));
            }
        }
    }
    for (i, (id, _)) in platforms.iter().enumerate() {
        for (j, a) in atts[i].iter().enumerate() {
            attest::check_origin(a, &format!("attestations[{id:?}][{j}]"))?;
        }
    }

    // Image names.
    let names_attr = if opts.name == "*" {
        meta.get(KEY_IMAGE_NAME)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    } else {
        opts.name.clone()
    };
    let names: Vec<Reference> = reference::parse_names(&names_attr)?;

    // Export the layers (the one step that reads blobs before the sink).
    let mut inputs: Vec<PlatformInput<'_>> = Vec::with_capacity(platforms.len());
    let mut converted: BTreeMap<(String, Option<i64>), ExportedLayer> = BTreeMap::new();
    let mut entry_names = layer::files::EntryNames::default();
    for (i, (id, platform)) in platforms.iter().enumerate() {
        let ref_key = if is_map { id.as_str() } else { "" };
        let layers = &result.refs[ref_key];
        let epoch = if has_global_epoch {
            global_epoch
        } else {
            match meta.get(&format!("{KEY_EPOCH}/{id}")) {
                Some(v) => meta_epoch(&format!("{KEY_EPOCH}/{id}"), v)?,
                None => None,
            }
        };
        let plan = LayerPlan {
            compression: opts.compression,
            level: opts.compression_level,
            force: opts.force_compression,
            rewrite_epoch: if opts.rewrite_timestamp {
                epoch.map(|t| t.unix)
            } else {
                None
            },
        };
        let mut exported = Vec::with_capacity(layers.len());
        let mut layer_meta = Vec::with_capacity(layers.len());
        for (j, l) in layers.iter().enumerate() {
            let field = format!("refs[{ref_key:?}][{j}]");
            check_layer(l, &field)?;
            let key = (l.digest.clone(), plan.rewrite_epoch);
            let e = match converted.get(&key) {
                Some(e) => e.clone(),
                None => {
                    let e =
                        layer::export_layer(l, &field, &plan, oci_types, env.blobs, env.scratch)?;
                    converted.insert(key, e.clone());
                    e
                }
            };
            exported.push(e);
            layer_meta.push((
                l.created_by.clone(),
                parse_created(&l.created, &format!("{field}.created"))?,
            ));
        }
        let config_key = if is_map {
            format!("{KEY_CONFIG}/{id}")
        } else {
            KEY_CONFIG.to_string()
        };
        let config = meta
            .get(&config_key)
            .map(Vec::as_slice)
            .filter(|c| !c.is_empty());
        if is_map {
            if let Some(c) = config {
                config::parse_history(c)?;
                config::check_os_arch(c)?;
            }
        }
        let scope = if is_map {
            Some(crate::platform::format(platform))
        } else {
            None
        };
        let attestations = std::mem::take(&mut atts[i]);
        let layer_files = if !exported.is_empty() && attest::wants_layer_files(&attestations) {
            let names = entry_names.layer_files(layers, &exported, ref_key, env.blobs)?;
            Some(LayerFiles::new(
                names.iter().map(|(d, n)| (d.clone(), n.iter())),
            ))
        } else {
            None
        };
        inputs.push(PlatformInput {
            id: id.clone(),
            platform: platform.clone(),
            config,
            layers: exported,
            layer_meta,
            attestations,
            layer_files,
            epoch,
            annotations: opts.annotations.for_platform(scope.as_deref()),
        });
    }

    let graph = assemble::assemble(
        &inputs,
        &AssembleOptions {
            oci_types,
            oci_artifact: opts.oci_artifact(),
            attestations_in_index: opts.attestations_in_index,
            want_index,
            names: &names,
            annotations: Annotations {
                index: global.index.clone(),
                index_descriptor: global.index_descriptor.clone(),
                ..Default::default()
            },
            max_statement_size: env.limits.max_statement_size,
            builder_version: &result.builder_version,
        },
    )?;

    let created = global_epoch
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Time::from_unix(now)
        })
        .format_seconds();
    let root = sink::layout::root_with_created(&graph.root, &created);

    if opts.exporter != ExporterType::Image {
        sink::write_oci_tar(
            &graph,
            &sink::ArchiveSpec {
                names: &names,
                root: &root,
                docker_manifest: opts.exporter == ExporterType::Docker,
                detached: if opts.attestations_in_index {
                    &[]
                } else {
                    &graph.attestation_manifests
                },
            },
            env.blobs,
            out,
            progress,
        )?;
    } else {
        if req.attrs.contains_key(crate::options::keys::STORE)
            || req.attrs.contains_key(crate::options::keys::UNPACK)
        {
            tracing::debug!("store and unpack are accepted, but there is no local image store");
        }
        if opts.push {
            sink::registry::push(
                &graph,
                &sink::registry::PushSpec {
                    names: &names,
                    push_by_digest: opts.push_by_digest,
                    insecure: opts.insecure,
                    referrers_fallback: opts.referrers_fallback,
                    registry: &env.registry,
                },
                env.blobs,
                progress,
            )?;
        }
    }

    let mut response = ExportResponse::new();
    for (k, v) in &meta {
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
    Ok(response)
}
