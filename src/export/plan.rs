//! Step 2 of an export: everything decided before a blob is read. The
//! metadata with the unknown attributes over it, the epochs, the platforms
//! in output order, the attestations each platform keeps, the checks of
//! attributes against each other, and the image names.
//!
//! Pure: it reads only the request, so every rule here is tested without a
//! blob. The checks run in BuildKit's order, which decides the error a
//! request with several faults gets.

use std::collections::BTreeMap;

use crate::annotations;
use crate::assemble::{attest, config};
use crate::error::{ExportError, Result};
use crate::model::{Attestation, BuildResult, ExportRequest};
use crate::oci::Platform;
use crate::options::ExportOptions;
use crate::reference::{self, Reference};
use crate::timefmt::Time;

use super::input::{map_platforms, meta_epoch, KEY_CONFIG, KEY_EPOCH, KEY_IMAGE_NAME};

/// What the later steps do, decided from the request alone.
pub(super) struct Plan<'r> {
    /// The finalized options, with the metadata's annotations merged in.
    pub opts: ExportOptions,
    /// The refs are a platform map (else one unnamed ref, key `""`).
    pub is_map: bool,
    /// The result metadata with the unknown attributes copied over it.
    pub meta: BTreeMap<String, Vec<u8>>,
    /// The epoch of the attribute, else of the global metadata key.
    pub global_epoch: Option<Time>,
    /// An epoch was given globally, so per-platform keys do not apply.
    pub has_global_epoch: bool,
    /// (platform id, platform), in output order.
    pub platforms: Vec<(String, Platform)>,
    /// The attestations each platform keeps, in platform order.
    pub attestations: Vec<Vec<&'r Attestation>>,
    pub oci_types: bool,
    /// An index even for one platform (a map result, or attestations).
    pub want_index: bool,
    pub names: Vec<Reference>,
}

/// Plans the export of `req` with its resolved options, checking
/// everything that needs no blob.
pub(super) fn plan(req: &ExportRequest, mut opts: ExportOptions) -> Result<Plan<'_>> {
    let result = &req.result;
    let is_map = result.is_map();
    let meta = merge_metadata(&result.metadata, &mut opts)?;
    let (global_epoch, has_global_epoch) = global_epoch(&opts, &meta)?;
    let platforms = order_platforms(req, &meta, is_map)?;
    check_attestation_platforms(result, &platforms)?;
    let attestations =
        attestations_per_platform(result, &platforms, is_map, opts.force_inline_attestations);
    let has_attestations = attestations.iter().any(|a| !a.is_empty());
    opts.finalize(!result.attestations.is_empty());
    opts.check_extensions()?;
    let mut plan = Plan {
        oci_types: opts.oci_types(),
        want_index: is_map || has_attestations,
        opts,
        is_map,
        meta,
        global_epoch,
        has_global_epoch,
        platforms,
        attestations,
        names: Vec::new(),
    };
    validate(&plan, has_attestations)?;
    plan.names = image_names(&plan.opts, &plan.meta)?;
    Ok(plan)
}

/// Unknown attributes are copied into the metadata, over the frontend's;
/// the metadata's annotations join the attributes' ones.
fn merge_metadata(
    metadata: &BTreeMap<String, Vec<u8>>,
    opts: &mut ExportOptions,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut meta = metadata.clone();
    for (k, v) in &opts.extra_metadata {
        meta.insert(k.clone(), v.clone().into_bytes());
    }
    let meta_annotations = annotations::parse_metadata(&meta)?;
    opts.annotations.merge(&meta_annotations);
    Ok(meta)
}

/// The epoch: the attribute, else the global metadata key (else, later,
/// per platform). Returns it and whether one was given globally at all.
fn global_epoch(
    opts: &ExportOptions,
    meta: &BTreeMap<String, Vec<u8>>,
) -> Result<(Option<Time>, bool)> {
    let mut global_epoch = opts.epoch.map(Time::from_unix);
    if global_epoch.is_none() {
        if let Some(v) = meta.get(KEY_EPOCH) {
            global_epoch = meta_epoch(KEY_EPOCH, v)?;
        }
    }
    let has_global_epoch = opts.epoch.is_some() || meta.contains_key(KEY_EPOCH);
    Ok((global_epoch, has_global_epoch))
}

/// Platforms, in output order: a map's from `refs.platforms`, a single
/// ref's from its config (`linux/amd64` without one).
fn order_platforms(
    req: &ExportRequest,
    meta: &BTreeMap<String, Vec<u8>>,
    is_map: bool,
) -> Result<Vec<(String, Platform)>> {
    if is_map {
        return map_platforms(req, meta);
    }
    let p = match meta.get(KEY_CONFIG) {
        Some(c) if !c.is_empty() => config::config_platform(c)?,
        _ => None,
    }
    .unwrap_or_else(|| Platform::new("linux", "amd64"));
    Ok(vec![(crate::platform::format(&p), p)])
}

/// Every attestation key names a platform that is exported.
fn check_attestation_platforms(
    result: &BuildResult,
    platforms: &[(String, Platform)],
) -> Result<()> {
    let Some(key) = result
        .attestations
        .keys()
        .find(|k| !platforms.iter().any(|(id, _)| id == *k))
    else {
        return Ok(());
    };
    Err(ExportError::invalid(
        format!("attestations[{key:?}]"),
        format!(
            "attestations for platform {key} have no ref to attach to (platforms: {})",
            platforms
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Attestations per platform; a single ref drops them when only
/// inline-only ones are present (unless `attestation-inline`).
fn attestations_per_platform<'r>(
    result: &'r BuildResult,
    platforms: &[(String, Platform)],
    is_map: bool,
    force_inline: bool,
) -> Vec<Vec<&'r Attestation>> {
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
            .any(|a| force_inline || !attest::is_inline_only(a));
        if !required {
            atts.iter_mut().for_each(Vec::clear);
        }
    }
    atts
}

/// The attributes against each other and against the result: media types
/// that cannot carry attestations or annotations, index annotations
/// without an index, annotations for platforms not exported, and
/// attestation origins.
fn validate(plan: &Plan<'_>, has_attestations: bool) -> Result<()> {
    let opts = &plan.opts;
    if !plan.oci_types && has_attestations {
        return Err(ExportError::conflict(
            "oci-mediatypes",
            "cannot export attestations with \"oci-mediatypes=false\"",
        ));
    }
    if !plan.oci_types && !opts.annotations.is_empty() {
        return Err(ExportError::conflict(
            "oci-mediatypes",
            "cannot export annotations with \"oci-mediatypes=false\"",
        ));
    }
    let global = opts.annotations.for_platform(None);
    if !plan.want_index && (!global.index.is_empty() || !global.index_descriptor.is_empty()) {
        return Err(ExportError::conflict(
            "annotation-index",
            "index annotations not supported for single platform export",
        ));
    }
    if plan.is_map {
        for scoped in opts.annotations.scoped_platforms() {
            if !plan
                .platforms
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
    for (i, (id, _)) in plan.platforms.iter().enumerate() {
        for (j, a) in plan.attestations[i].iter().enumerate() {
            attest::check_origin(a, &format!("attestations[{id:?}][{j}]"))?;
        }
    }
    Ok(())
}

/// The image names: the `name` attribute, or with `name=*` the metadata's.
fn image_names(opts: &ExportOptions, meta: &BTreeMap<String, Vec<u8>>) -> Result<Vec<Reference>> {
    let names_attr = if opts.name == "*" {
        meta.get(KEY_IMAGE_NAME)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    } else {
        opts.name.clone()
    };
    reference::parse_names(&names_attr)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
