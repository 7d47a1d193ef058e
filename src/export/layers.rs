//! Step 3 of an export: the layers of every platform exported (passed
//! through or converted), with what assembly needs beside them: each
//! platform's epoch, config, layer history, attestations, annotations and,
//! for a core SBOM, the layers' entry names.
//!
//! This is the one step that reads blobs before the sink. A layer shared by
//! platforms is exported once per epoch, and its entry names are read once.

use std::collections::BTreeMap;

use crate::assemble::sbom::LayerFiles;
use crate::assemble::{attest, config, PlatformInput};
use crate::error::Result;
use crate::layer::{self, ExportedLayer, LayerPlan};
use crate::model::{ExportRequest, Layer};
use crate::timefmt::Time;

use super::input::{check_layer, meta_epoch, parse_created, KEY_CONFIG, KEY_EPOCH};
use super::plan::Plan;
use super::ExportEnv;

/// What one export has done to layers so far, for the platforms after.
#[derive(Default)]
struct LayerCache {
    /// Exported layers by (input digest, rewrite epoch).
    exported: BTreeMap<(String, Option<i64>), ExportedLayer>,
    entry_names: layer::files::EntryNames,
}

/// The inputs of assembly, one per platform in output order.
pub(super) fn export_layers<'p>(
    req: &'p ExportRequest,
    plan: &'p Plan<'_>,
    env: &ExportEnv<'_>,
) -> Result<Vec<PlatformInput<'p>>> {
    let mut cache = LayerCache::default();
    let mut inputs = Vec::with_capacity(plan.platforms.len());
    for i in 0..plan.platforms.len() {
        inputs.push(platform_input(req, plan, i, env, &mut cache)?);
    }
    Ok(inputs)
}

/// The assembly input of the `i`th platform.
fn platform_input<'p>(
    req: &'p ExportRequest,
    plan: &'p Plan<'_>,
    i: usize,
    env: &ExportEnv<'_>,
    cache: &mut LayerCache,
) -> Result<PlatformInput<'p>> {
    let (id, platform) = &plan.platforms[i];
    let ref_key = if plan.is_map { id.as_str() } else { "" };
    let layers = &req.result.refs[ref_key];
    let epoch = platform_epoch(plan, id)?;
    let layer_plan = LayerPlan {
        compression: plan.opts.compression,
        level: plan.opts.compression_level,
        force: plan.opts.force_compression,
        rewrite_epoch: if plan.opts.rewrite_timestamp {
            epoch.map(|t| t.unix)
        } else {
            None
        },
    };
    let (exported, layer_meta) = cache.export_chain(layers, ref_key, &layer_plan, plan, env)?;
    let config = platform_config(plan, id)?;
    let attestations = plan.attestations[i].clone();
    let layer_files = if !exported.is_empty() && attest::wants_layer_files(&attestations) {
        let names = cache
            .entry_names
            .layer_files(layers, &exported, ref_key, env.blobs)?;
        Some(LayerFiles::new(
            names.iter().map(|(d, n)| (d.clone(), n.iter())),
        ))
    } else {
        None
    };
    let scope = plan.is_map.then(|| crate::platform::format(platform));
    Ok(PlatformInput {
        id: id.clone(),
        platform: platform.clone(),
        config,
        layers: exported,
        layer_meta,
        attestations,
        layer_files,
        epoch,
        annotations: plan.opts.annotations.for_platform(scope.as_deref()),
    })
}

/// A platform's epoch: the global one, else its own metadata key.
fn platform_epoch(plan: &Plan<'_>, id: &str) -> Result<Option<Time>> {
    if plan.has_global_epoch {
        return Ok(plan.global_epoch);
    }
    let key = format!("{KEY_EPOCH}/{id}");
    match plan.meta.get(&key) {
        Some(v) => meta_epoch(&key, v),
        None => Ok(None),
    }
}

/// A platform's config from the metadata (`None` for the default one); a
/// map's configs are checked here, a single ref's when its platform was read.
fn platform_config<'p>(plan: &'p Plan<'_>, id: &str) -> Result<Option<&'p [u8]>> {
    let config_key = if plan.is_map {
        format!("{KEY_CONFIG}/{id}")
    } else {
        KEY_CONFIG.to_string()
    };
    let config = plan
        .meta
        .get(&config_key)
        .map(Vec::as_slice)
        .filter(|c| !c.is_empty());
    if plan.is_map {
        if let Some(c) = config {
            config::parse_history(c)?;
            config::check_os_arch(c)?;
        }
    }
    Ok(config)
}

/// Per layer: (createdBy, created).
type LayerMeta = Vec<(String, Option<Time>)>;

impl LayerCache {
    /// Exports one platform's layer chain; returns the exported layers and
    /// their history entries.
    fn export_chain(
        &mut self,
        layers: &[Layer],
        ref_key: &str,
        layer_plan: &LayerPlan,
        plan: &Plan<'_>,
        env: &ExportEnv<'_>,
    ) -> Result<(Vec<ExportedLayer>, LayerMeta)> {
        let mut exported = Vec::with_capacity(layers.len());
        let mut layer_meta = Vec::with_capacity(layers.len());
        for (j, l) in layers.iter().enumerate() {
            let field = format!("refs[{ref_key:?}][{j}]");
            check_layer(l, &field)?;
            let key = (l.digest.clone(), layer_plan.rewrite_epoch);
            let e = match self.exported.get(&key) {
                Some(e) => e.clone(),
                None => {
                    let e = layer::export_layer(
                        l,
                        &field,
                        layer_plan,
                        plan.oci_types,
                        env.blobs,
                        env.scratch,
                    )?;
                    self.exported.insert(key, e.clone());
                    e
                }
            };
            exported.push(e);
            layer_meta.push((
                l.created_by.clone(),
                parse_created(&l.created, &format!("{field}.created"))?,
            ));
        }
        Ok((exported, layer_meta))
    }
}

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
