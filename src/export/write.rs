//! Step 5 of an export: the assembled graph, seen as an [`crate::image::Image`],
//! written to its sink. The `oci` and `docker` exporters write a layout tar
//! to the output; the `image` exporter pushes to a registry when asked (and
//! writes nothing).

use std::io::Write;

use crate::assemble::Graph;
use crate::error::Result;
use crate::image::files;
use crate::model::ExportRequest;
use crate::oci::Descriptor;
use crate::options::ExporterType;
use crate::progress::Progress;
use crate::sink::{self, Sink};
use crate::timefmt::Time;

use super::plan::Plan;
use super::ExportEnv;

/// Writes `graph` where the exporter says; returns the root as it stands
/// in `index.json` (with its `created` annotation).
pub(super) fn write_to_sink(
    req: &ExportRequest,
    plan: &Plan<'_>,
    graph: &Graph,
    env: &ExportEnv<'_>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<Descriptor> {
    let opts = &plan.opts;
    let root = files::root_with_created(&graph.root, &created(plan.global_epoch));
    // Top-level entries of index.json besides the root: attestation
    // manifests kept out of the index, and signatures, so that a copy of
    // the layout carries them.
    let detached_attestations: &[Descriptor] = if opts.attestations_in_index {
        &[]
    } else {
        &graph.attestation_manifests
    };
    // cosign's signature tags are entries named by their tag, as a layout
    // names what it holds.
    let signature_tags = graph.signature_tags.iter().map(|(tag, d)| {
        let mut d = d.clone();
        d.annotations
            .insert(files::ANNOTATION_REF_NAME.into(), tag.clone());
        d
    });
    let detached: Vec<Descriptor> = detached_attestations
        .iter()
        .chain(&graph.signatures)
        .cloned()
        .chain(signature_tags)
        .collect();
    let image = sink::Exported {
        graph,
        spec: sink::ArchiveSpec {
            names: &plan.names,
            root: &root,
            docker_manifest: opts.exporter == ExporterType::Docker,
            detached: &detached,
        },
        blobs: env.blobs,
    };
    let mut sink: Box<dyn Sink + '_> = if opts.exporter != ExporterType::Image {
        Box::new(sink::TarSink::new(out))
    } else {
        if req.attrs.contains_key(crate::options::keys::STORE)
            || req.attrs.contains_key(crate::options::keys::UNPACK)
        {
            tracing::debug!("store and unpack are accepted, but there is no local image store");
        }
        if !opts.push {
            return Ok(root);
        }
        Box::new(sink::registry::RegistrySink {
            spec: sink::registry::PushSpec {
                names: &plan.names,
                push_by_digest: opts.push_by_digest,
                insecure: opts.insecure,
                referrers_fallback: opts.referrers_fallback,
                registry: &env.registry,
            },
        })
    };
    sink.write(&image, progress)?;
    Ok(root)
}

/// The `created` annotation of the root in `index.json`: the epoch, else now.
pub(super) fn created(global_epoch: Option<Time>) -> String {
    global_epoch
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Time::from_unix(now)
        })
        .format_seconds()
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
