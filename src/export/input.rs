//! Reading and checking the build result before any work: the platform
//! list, frontend epochs, layer descriptors and the configured limits.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::annotations;
use crate::error::{ExportError, Result};
use crate::limits::{self, Limits};
use crate::model::ExportRequest;
use crate::oci::Platform;
use crate::timefmt::Time;

pub(super) const KEY_PLATFORMS: &str = "refs.platforms";
pub(super) const KEY_CONFIG: &str = "containerimage.config";
pub(super) const KEY_EPOCH: &str = "source.date.epoch";
pub(super) const KEY_IMAGE_NAME: &str = "image.name";

/// Looks a JSON field up the way Go does (exact, then case-insensitive).
fn go_field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn platform_from_json(v: &Value) -> Platform {
    let s = |k: &str| {
        go_field(v, k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Platform {
        architecture: s("architecture"),
        os: s("os"),
        os_version: s("os.version"),
        os_features: go_field(v, "os.features")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        variant: s("variant"),
    }
}

/// The platforms of a map result, in `refs.platforms` order.
pub(super) fn map_platforms(
    req: &ExportRequest,
    meta: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Platform)>> {
    let refs = &req.result.refs;
    let Some(raw) = meta.get(KEY_PLATFORMS) else {
        if refs.len() == 1 {
            let id = refs.keys().next().cloned().unwrap_or_default();
            let p = crate::platform::parse(&id).ok_or_else(|| {
                ExportError::invalid(
                    "refs",
                    format!("unable to export multiple refs, missing platforms mapping (ref {id:?} is not a platform)"),
                )
            })?;
            return Ok(vec![(id, p)]);
        }
        return Err(ExportError::invalid(
            "metadata[\"refs.platforms\"]",
            "unable to export multiple refs, missing platforms mapping",
        ));
    };
    let v: Value = serde_json::from_slice(raw).map_err(|e| {
        ExportError::invalid(
            "metadata[\"refs.platforms\"]",
            format!("failed to parse platforms passed to exporter: {e}"),
        )
    })?;
    let list = go_field(&v, "Platforms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.len() != refs.len() {
        return Err(ExportError::invalid(
            "metadata[\"refs.platforms\"]",
            format!(
                "number of platforms does not match references {} {}",
                list.len(),
                refs.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for p in &list {
        let id = go_field(p, "ID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !refs.contains_key(&id) {
            return Err(ExportError::invalid(
                "metadata[\"refs.platforms\"]",
                format!("failed to find ref for ID {id}"),
            ));
        }
        if out.iter().any(|(seen, _)| *seen == id) {
            return Err(ExportError::invalid(
                "metadata[\"refs.platforms\"]",
                format!("duplicate platform id {id} in platforms passed to exporter"),
            ));
        }
        let platform = go_field(p, "Platform")
            .map(platform_from_json)
            .unwrap_or_default();
        out.push((id, platform));
    }
    Ok(out)
}

pub(super) fn meta_epoch(key: &str, v: &[u8]) -> Result<Option<Time>> {
    let s = String::from_utf8_lossy(v);
    crate::options::parse_epoch("", &s)
        .map(|e| e.map(Time::from_unix))
        .map_err(|e| {
            ExportError::invalid(
                format!("metadata[{key:?}]"),
                format!(
                    "invalid SOURCE_DATE_EPOCH from frontend: {}: {e}",
                    crate::options::go_quote(&s)
                ),
            )
        })
}

pub(super) fn parse_created(s: &str, field: &str) -> Result<Option<Time>> {
    if s.is_empty() {
        return Ok(None);
    }
    Time::parse(s).map(Some).ok_or_else(|| {
        ExportError::invalid(
            field,
            format!("invalid layer creation time {s:?}: not RFC 3339"),
        )
    })
}

pub(super) fn check_layer(l: &crate::model::Layer, field: &str) -> Result<()> {
    if !crate::oci::is_sha256_digest(&l.digest) {
        return Err(ExportError::invalid(
            format!("{field}.digest"),
            format!(
                "invalid layer digest {:?}: expected sha256:<64 hex>",
                l.digest
            ),
        ));
    }
    if !crate::oci::is_sha256_digest(&l.diff_id) {
        return Err(ExportError::invalid(
            format!("{field}.diffID"),
            format!(
                "invalid layer diffID {:?}: expected sha256:<64 hex>",
                l.diff_id
            ),
        ));
    }
    Ok(())
}

/// Refuses a build result of more layers than `--max-layers` allows.
pub fn check_layer_count(layers: usize, lim: &Limits) -> Result<()> {
    if layers > lim.max_layers {
        return Err(limits::exceeded(
            "refs",
            format!("a build result of {layers} layers"),
            lim.max_layers as u64,
            "max-layers",
        ));
    }
    Ok(())
}

/// Refuses a request past the limits before any work: counts, annotation
/// sizes and JSON nesting (statement sizes are checked as they are written).
pub(super) fn check_limits(req: &ExportRequest, lim: &Limits) -> Result<()> {
    let result = &req.result;
    if result.refs.len() > lim.max_platforms {
        return Err(limits::exceeded(
            "refs",
            format!("a build result of {} platforms", result.refs.len()),
            lim.max_platforms as u64,
            "max-platforms",
        ));
    }
    let layers: usize = result.refs.values().map(Vec::len).sum();
    check_layer_count(layers, lim)?;
    for (key, atts) in &result.attestations {
        if atts.len() > lim.max_attestations_per_platform {
            return Err(limits::exceeded(
                format!("attestations[{key:?}]"),
                format!("{} attestations for platform {key}", atts.len()),
                lim.max_attestations_per_platform as u64,
                "max-attestations",
            ));
        }
        for (i, a) in atts.iter().enumerate() {
            let field = format!("attestations[{key:?}][{i}]");
            match &a.content {
                crate::model::AttestationContent::InToto(c) => {
                    limits::check_json_depth(&format!("{field}.content"), c, lim)?
                }
                crate::model::AttestationContent::Bundle(files) => {
                    for (name, c) in files {
                        limits::check_json_depth(&format!("{field}.bundle[{name:?}]"), c, lim)?;
                    }
                }
            }
        }
    }
    annotations::check_sizes(
        req.attrs.iter().map(|(k, v)| (k.as_str(), v.len())),
        lim.max_annotation_size,
    )?;
    annotations::check_sizes(
        result.metadata.iter().map(|(k, v)| (k.as_str(), v.len())),
        lim.max_annotation_size,
    )?;
    for (k, v) in &result.metadata {
        if k == KEY_PLATFORMS || k == KEY_CONFIG || k.starts_with("containerimage.config/") {
            limits::check_json_depth(&format!("metadata[{k:?}]"), v, lim)?;
        }
    }
    Ok(())
}
