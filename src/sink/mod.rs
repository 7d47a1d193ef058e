//! Output sinks. Each knows one destination; all take the assembled graph.
//!
//! - `oci_tar`: an OCI layout streamed as a tar (also the docker archive,
//!   and the layout directory, which the client unpacks from the stream).
//! - `registry`: a push to the repositories the image names point at.

pub mod layout;
pub mod registry;
pub mod tar;

use std::io::Write;

use crate::assemble::{Blob, Graph};
use crate::blob::BlobSource;
use crate::error::Result;
use crate::oci::{self, Descriptor};
use crate::progress::Progress;
use crate::reference::Reference;

/// What goes into the archive besides the graph.
pub struct ArchiveSpec<'a> {
    pub names: &'a [Reference],
    /// The root as it stands in `index.json` (with the created annotation).
    pub root: &'a Descriptor,
    /// Add Docker's `manifest.json` (docker exporter, single manifest root).
    pub docker_manifest: bool,
    /// Attestation manifests kept out of the index: listed as top-level entries.
    pub detached: &'a [Descriptor],
}

/// Streams the OCI layout tar of a graph.
pub fn write_oci_tar(
    graph: &Graph,
    spec: &ArchiveSpec<'_>,
    blobs: &dyn BlobSource,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let mut files: Vec<(String, u32, Vec<u8>)> = vec![
        (
            "index.json".into(),
            0o644,
            layout::index_json(spec.root, spec.names, spec.detached),
        ),
        ("oci-layout".into(), 0o444, layout::OCI_LAYOUT.to_vec()),
    ];
    if spec.docker_manifest {
        if let Some((config, layers)) = &graph.single {
            files.push((
                "manifest.json".into(),
                0o644,
                layout::docker_manifest_json(config, layers, spec.names),
            ));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut tw = tar::TarWriter::new(out);
    tw.dir("blobs/")?;
    tw.dir("blobs/sha256/")?;
    // BTreeMap order by "sha256:<hex>" is hex order.
    for (digest, (desc, blob)) in &graph.blobs {
        let name = format!("blobs/sha256/{}", oci::digest_hex(digest));
        match blob {
            Blob::Bytes(b) => tw.file_bytes(&name, 0o444, b)?,
            Blob::Layer(src) => {
                let mut r = src.open(blobs).map_err(|e| {
                    crate::error::ExportError::from(e).context(&format!("layer {digest}"))
                })?;
                let total = desc.size;
                tw.file(&name, 0o444, total, &mut r, &mut |done| {
                    progress(Progress::Writing {
                        digest: digest.clone(),
                        done,
                        total,
                    })
                })?;
                progress(Progress::Done {
                    digest: digest.clone(),
                    total,
                });
            }
        }
    }
    for (name, mode, bytes) in &files {
        tw.file_bytes(name, *mode, bytes)?;
    }
    tw.finish()?;
    Ok(())
}
