//! An export's assembled graph seen as an [`Image`]: the graph's blobs
//! (layers streamed from the content store or their converted temp file),
//! and the `index.json` and `manifest.json` that the image's names and the
//! exporter ask for.
//!
//! Why apart from [`crate::assemble`]: assembly is pure and knows no
//! layout files; what the archive adds (names, the created annotation,
//! detached attestations, Docker's loader file) is the exporter's choice.

use std::borrow::Cow;
use std::io::{self, Cursor, Read};

use super::{layout, Image};
use crate::assemble::{Blob, Graph};
use crate::blob::BlobSource;
use crate::error::{ExportError, Result};
use crate::oci::Descriptor;
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

/// A graph, the archive's choices, and where its layers are read.
pub struct Exported<'a> {
    pub graph: &'a Graph,
    pub spec: ArchiveSpec<'a>,
    pub blobs: &'a dyn BlobSource,
}

impl Image for Exported<'_> {
    fn blobs(&self) -> Vec<(&Descriptor, Option<&[u8]>)> {
        self.graph
            .blobs
            .values()
            .map(|(d, blob)| match blob {
                Blob::Bytes(b) => (d, Some(b.as_slice())),
                Blob::Layer(_) => (d, None),
            })
            .collect()
    }

    fn open(&self, d: &Descriptor) -> io::Result<Box<dyn Read + Send>> {
        match self.graph.blobs.get(&d.digest) {
            Some((_, Blob::Layer(src))) => src.open(self.blobs),
            Some((_, Blob::Bytes(b))) => Ok(Box::new(Cursor::new(b.clone()))),
            None => Err(io::Error::other(format!(
                "blob {} is missing from the graph",
                d.digest
            ))),
        }
    }

    fn stream(
        &self,
        d: &Descriptor,
        write: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>,
    ) -> Result<()> {
        let mut r = self
            .open(d)
            .map_err(|e| ExportError::from(e).context(&format!("layer {}", d.digest)))?;
        write(&mut r)?;
        Ok(())
    }

    fn index_json(&self) -> Cow<'_, [u8]> {
        let s = &self.spec;
        Cow::Owned(layout::index_json(s.root, s.names, s.detached))
    }

    fn manifest_json(&self) -> Option<Cow<'_, [u8]>> {
        if !self.spec.docker_manifest {
            return None;
        }
        let (config, layers) = self.graph.single.as_ref()?;
        Some(Cow::Owned(layout::docker_manifest_json(
            config,
            layers,
            self.spec.names,
        )))
    }

    fn root(&self) -> Option<&Descriptor> {
        Some(&self.graph.root)
    }

    /// Image manifests in platform order, then attestation manifests, then
    /// the index when the root is one.
    fn manifests(&self) -> Vec<(&Descriptor, Option<&str>)> {
        let g = self.graph;
        let images = g.image_manifests.iter().map(|d| (d, None));
        let attestations = g
            .attestation_manifests
            .iter()
            .map(|d| (d, g.subjects.get(&d.digest).map(String::as_str)));
        let root_is_image = g.image_manifests.iter().any(|d| d.digest == g.root.digest);
        let index = (!root_is_image).then_some((&g.root, None));
        images.chain(attestations).chain(index).collect()
    }
}
