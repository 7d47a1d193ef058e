//! The library entry point: one export from request to output bytes.
//!
//! The server and the CLI both call [`export`]. It runs six named steps,
//! each in a module of its own so that each can be read and tested alone:
//!
//! 1. `resolve`: the limits, the options, the result's shape;
//! 2. `plan`: metadata, epochs, platform order, attestations, attribute
//!    conflicts and names, decided from the request alone;
//! 3. `layers`: the layers exported (the only I/O before the sink);
//! 4. assembly of the image graph (pure, in `assemble`);
//! 5. `write`: the graph written to its sink (a tar, or a registry);
//! 6. `response`: the exporter response map.

use std::io::Write;
use std::path::Path;

use crate::annotations::Annotations;
use crate::assemble::{self, AssembleOptions, Graph, PlatformInput};
use crate::blob::BlobSource;
use crate::error::{ExportError, Result};
use crate::limits::Limits;
use crate::model::{ExportRequest, ExportResponse};
use crate::progress::Progress;
use crate::sign::{Keyring, Signer};
use std::sync::Arc;

#[cfg(test)]
mod fixtures;
mod input;
mod layers;
mod plan;
mod resolve;
mod response;
mod sign;
mod write;

pub use input::check_layer_count;
pub use resolve::resolve_options;

use plan::Plan;

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
    /// The keys a request may sign with (`oxport.sign=NAME`).
    pub keyring: &'a Keyring,
}

/// The signer named by `oxport.sign` (as the options parser read it), out
/// of `keyring`; an unknown name is refused (naming the keys there are,
/// never their files).
pub fn signer_for<'k>(
    name: Option<&str>,
    keyring: &'k Keyring,
) -> Result<Option<&'k Arc<dyn Signer>>> {
    let Some(name) = name else {
        return Ok(None);
    };
    match keyring.get(name) {
        Some(s) => Ok(Some(s)),
        None => {
            let names: Vec<&str> = keyring.names().collect();
            let have = if names.is_empty() {
                "this server has no signing keys (start it with --signing-key NAME=PATH)"
                    .to_string()
            } else {
                format!("this server's keys are: {}", names.join(", "))
            };
            Err(ExportError::invalid(
                crate::options::keys::SIGN,
                format!("no signing key named {name:?}: {have}"),
            ))
        }
    }
}

/// Runs one export. `out` receives the output archive (an OCI layout as a
/// tar; nothing for `type=image`). Returns the exporter response map.
pub fn export(
    req: &ExportRequest,
    env: &ExportEnv<'_>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportResponse> {
    let opts = resolve::resolve(req, &env.limits)?;
    let signer = signer_for(opts.sign.as_deref(), env.keyring)?;
    let plan = plan::plan(req, opts)?;
    let inputs = layers::export_layers(req, &plan, env)?;
    let mut graph = assemble_graph(&plan, &inputs, req, &env.limits)?;
    if let Some(signer) = signer {
        let created = write::created(plan.global_epoch);
        let how = sign::Signing {
            signer: signer.as_ref(),
            created: Some(&created),
            format: plan.opts.sign_format(),
            recursive: plan.opts.sign_recursive(),
            repository: plan.names.first().map(|n| n.name()).unwrap_or_default(),
        };
        sign::sign_graph(&mut graph, &how)?;
    }
    let root = write::write_to_sink(req, &plan, &graph, env, out, progress)?;
    Ok(response::build_response(&plan, &graph, &root))
}

/// Step 4: the image graph of the planned platforms.
fn assemble_graph(
    plan: &Plan<'_>,
    inputs: &[PlatformInput<'_>],
    req: &ExportRequest,
    limits: &Limits,
) -> Result<Graph> {
    let global = plan.opts.annotations.for_platform(None);
    assemble::assemble(
        inputs,
        &AssembleOptions {
            oci_types: plan.oci_types,
            oci_artifact: plan.opts.oci_artifact(),
            attestations_in_index: plan.opts.attestations_in_index,
            want_index: plan.want_index,
            names: &plan.names,
            annotations: Annotations {
                index: global.index,
                index_descriptor: global.index_descriptor,
                ..Default::default()
            },
            max_statement_size: limits.max_statement_size,
            builder_version: &req.result.builder_version,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::fixtures::{request, MemBlobs, PLATFORM_MAP, SINGLE};
    use super::*;

    fn env<'a>(blobs: &'a MemBlobs, scratch: &'a Path) -> ExportEnv<'a> {
        ExportEnv {
            blobs,
            scratch,
            limits: Limits::default(),
            registry: Default::default(),
            keyring: &crate::sign::keyring::NONE,
        }
    }

    /// The graph the first four steps make of `req`.
    fn assembled(req: &ExportRequest, env: &ExportEnv<'_>) -> Graph {
        let plan = plan::plan(req, resolve::resolve(req, &env.limits).unwrap()).unwrap();
        let inputs = layers::export_layers(req, &plan, env).unwrap();
        assemble_graph(&plan, &inputs, req, &env.limits).unwrap()
    }

    #[test]
    fn assembly_takes_the_planned_index_and_annotations() {
        let scratch = tempfile::tempdir().unwrap();
        let blobs = MemBlobs::layers(1);
        let req = request("oci", &[("annotation-index.k", "v")], PLATFORM_MAP);
        let graph = assembled(&req, &env(&blobs, scratch.path()));
        assert_eq!(graph.root.media_type, crate::oci::MT_OCI_INDEX);
        assert_eq!(graph.image_manifests.len(), 2);
        let (_, index) = &graph.blobs[&graph.root.digest];
        let assemble::Blob::Bytes(index) = index else {
            panic!("the index is bytes");
        };
        assert!(String::from_utf8_lossy(index).contains("\"k\": \"v\""));
    }

    /// An exported graph reads back as an image, as archives and layouts
    /// do: `index.json` names the root and every blob verifies.
    #[test]
    fn an_exported_graph_is_an_image_store() {
        use crate::image::{self, parse, Image as _};
        let scratch = tempfile::tempdir().unwrap();
        let blobs = MemBlobs::layers(1);
        let req = request("oci", &[("annotation-index.k", "v")], PLATFORM_MAP);
        let graph = assembled(&req, &env(&blobs, scratch.path()));
        let store = crate::sink::Exported {
            graph: &graph,
            spec: crate::sink::ArchiveSpec {
                names: &[],
                root: &graph.root,
                docker_manifest: false,
                detached: &[],
            },
            blobs: &blobs,
        };
        let top = parse::index(&store.index_json().unwrap(), "index.json").unwrap();
        assert_eq!(top.value.manifests[0].digest, graph.root.digest);
        for (d, _) in graph.blobs.values() {
            assert_eq!(image::check_blob(&store, d).unwrap(), None, "{}", d.digest);
        }
        assert!(store.open_blob("sha256:00").is_err());
        assert_eq!(store.manifest_json().unwrap(), None);
    }

    #[test]
    fn the_steps_together_export_a_single_image() {
        let scratch = tempfile::tempdir().unwrap();
        let blobs = MemBlobs::layers(1);
        let req = request("oci", &[("source-date-epoch", "0")], SINGLE);
        let mut out = Vec::new();
        let response = export(&req, &env(&blobs, scratch.path()), &mut out, &mut |_| {}).unwrap();
        assert!(response["containerimage.digest"].starts_with("sha256:"));
        assert!(response.contains_key("containerimage.config.digest"));
        let tar = String::from_utf8_lossy(&out);
        assert!(tar.contains(&blobs.blobs.keys().next().unwrap()[7..]));
    }
}
