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

use crate::assemble::{Blob, Graph};
use crate::blob::BlobSource;
use crate::error::{ErrorKind, ExportError, Result};
use crate::image::{files, Blobs, Image};
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

impl Exported<'_> {
    /// Opens a blob of the graph: bytes from memory, a layer from where the
    /// export left it (the content store or its converted temp file).
    fn open(&self, digest: &str) -> io::Result<Box<dyn Read + Send>> {
        match self.graph.blobs.get(digest) {
            Some((_, Blob::Layer(src))) => src.open(self.blobs),
            Some((_, Blob::Bytes(b))) => Ok(Box::new(Cursor::new(b.clone()))),
            None => Err(io::Error::other(format!(
                "blob {digest} is missing from the graph"
            ))),
        }
    }
}

impl Image for Exported<'_> {
    fn index_json(&self) -> Result<Cow<'_, [u8]>> {
        let s = &self.spec;
        Ok(Cow::Owned(files::index_json(s.root, s.names, s.detached)))
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.graph.blobs.get(digest).map(|(d, _)| d.size)
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        match self.graph.blobs.get(digest) {
            Some(_) => Ok(self.open(digest)?),
            None => Err(ExportError::new(
                ErrorKind::NotFound,
                format!("{digest}: blob is missing"),
            )),
        }
    }

    fn manifest_json(&self) -> Result<Option<Cow<'_, [u8]>>> {
        if !self.spec.docker_manifest {
            return Ok(None);
        }
        let Some((config, layers)) = self.graph.single.as_ref() else {
            return Ok(None);
        };
        Ok(Some(Cow::Owned(files::docker_manifest_json(
            config,
            layers,
            self.spec.names,
        ))))
    }

    /// The graph's own list: its blobs were made or verified by the export.
    fn blobs(&self) -> Result<Blobs<'_>> {
        Ok(self
            .graph
            .blobs
            .values()
            .map(|(d, blob)| match blob {
                Blob::Bytes(b) => (d.clone(), Some(Cow::Borrowed(b.as_slice()))),
                Blob::Layer(_) => (d.clone(), None),
            })
            .collect())
    }

    /// Layers come from the export's own store, which verified them on the
    /// way in: streamed as they are, a failure named by its layer.
    fn stream(
        &self,
        d: &Descriptor,
        write: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>,
    ) -> Result<()> {
        let mut r = self
            .open(&d.digest)
            .map_err(|e| ExportError::from(e).context(&format!("layer {}", d.digest)))?;
        write(&mut r)?;
        Ok(())
    }

    fn root(&self) -> Option<&Descriptor> {
        Some(&self.graph.root)
    }

    /// Image manifests in platform order, then attestation manifests, then
    /// the index when the root is one, then signatures (after what they sign).
    fn manifests(&self) -> Vec<(Descriptor, Option<String>)> {
        let g = self.graph;
        let images = g.image_manifests.iter().map(|d| (d.clone(), None));
        let attestations = g
            .attestation_manifests
            .iter()
            .map(|d| (d.clone(), g.subjects.get(&d.digest).cloned()));
        let root_is_image = g.image_manifests.iter().any(|d| d.digest == g.root.digest);
        let index = (!root_is_image).then(|| (g.root.clone(), None));
        let signatures = g
            .signatures
            .iter()
            .map(|d| (d.clone(), g.subjects.get(&d.digest).cloned()));
        images
            .chain(attestations)
            .chain(index)
            .chain(signatures)
            .collect()
    }

    fn signature_tags(&self) -> Vec<(String, Descriptor)> {
        self.graph.signature_tags.clone()
    }
}
