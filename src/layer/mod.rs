//! Layer export: each input layer either passes through as its stored blob,
//! or is converted (timestamps rewritten and/or re-compressed) into a
//! temporary file. Everything streams; no layer is held in memory.

pub mod codec;
pub mod files;
pub mod pgzip;
pub mod tar_rewrite;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tempfile::TempPath;

use crate::blob::BlobSource;
use crate::direct_io::{BlobReader, DataFile};
use crate::error::{ExportError, Result};
use crate::model::Layer;
use crate::oci::Descriptor;
use crate::options::Compression;

/// The annotation BuildKit puts on every layer that went through rewriting.
pub const REWRITTEN_TIMESTAMP: &str = "buildkit/rewritten-timestamp";

/// Where an exported layer's bytes are.
#[derive(Debug, Clone)]
pub enum LayerSource {
    /// The stored input blob, unchanged.
    Input(String),
    /// A converted blob in a temporary file (removed when the last handle drops).
    Converted(Arc<TempPath>),
}

impl LayerSource {
    pub fn open(&self, blobs: &dyn BlobSource) -> io::Result<Box<dyn io::Read + Send>> {
        match self {
            LayerSource::Input(d) => blobs.open(d),
            LayerSource::Converted(p) => Ok(Box::new(BlobReader::open(p.as_ref() as &Path)?)),
        }
    }
}

/// A layer as it will be exported.
#[derive(Debug, Clone)]
pub struct ExportedLayer {
    /// Media type, digest, size and annotations (before the manifest drops
    /// annotations for Docker media types).
    pub descriptor: Descriptor,
    pub diff_id: String,
    pub source: LayerSource,
}

/// How to export one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerPlan {
    pub compression: Compression,
    pub level: Option<i64>,
    pub force: bool,
    /// Clamp tar times to this epoch (`rewrite-timestamp`).
    pub rewrite_epoch: Option<i64>,
}

/// Internal annotations that never leave the exporter.
fn public_annotations(a: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    a.iter()
        .filter(|(k, _)| {
            k.as_str() != "containerd.io/uncompressed"
                && k.as_str() != "buildkit/createdat"
                && !k.starts_with("containerd.io/distribution.source.")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Exports one layer according to the plan.
pub fn export_layer(
    layer: &Layer,
    field: &str,
    plan: &LayerPlan,
    oci_types: bool,
    blobs: &dyn BlobSource,
    scratch: &Path,
) -> Result<ExportedLayer> {
    let source = codec::compression_of(&layer.media_type).ok_or_else(|| {
        ExportError::invalid(
            format!("{field}.mediaType"),
            format!("unsupported layer media type {}", layer.media_type),
        )
    })?;
    if let Some(stored) = blobs.size(&layer.digest)? {
        if stored != layer.size {
            return Err(ExportError::invalid(
                format!("{field}.size"),
                format!(
                    "layer {} has size {} but the stored blob has {stored} bytes",
                    layer.digest, layer.size
                ),
            ));
        }
    }
    let mut annotations = public_annotations(&layer.annotations);
    let passthrough = |annotations: &BTreeMap<String, String>| ExportedLayer {
        descriptor: Descriptor {
            media_type: codec::media_type(source, oci_types).into(),
            digest: layer.digest.clone(),
            size: layer.size,
            annotations: annotations.clone(),
            ..Default::default()
        },
        diff_id: layer.diff_id.clone(),
        source: LayerSource::Input(layer.digest.clone()),
    };
    let convert = match plan.rewrite_epoch {
        Some(epoch) => {
            annotations.insert(REWRITTEN_TIMESTAMP.into(), epoch.to_string());
            true
        }
        None => plan.force && plan.compression != source,
    };
    if !convert {
        return Ok(passthrough(&annotations));
    }
    let (temp, digest, size, diff_id) =
        convert_blob(layer, source, plan, blobs, scratch).map_err(|e| {
            ExportError::from(e).context(&format!("failed to convert layer {}", layer.digest))
        })?;
    if diff_id == layer.diff_id && plan.compression == source {
        // Nothing changed: the stored blob is exported byte for byte.
        return Ok(passthrough(&annotations));
    }
    Ok(ExportedLayer {
        descriptor: Descriptor {
            media_type: codec::media_type(plan.compression, oci_types).into(),
            digest,
            size,
            annotations,
            ..Default::default()
        },
        diff_id,
        source: LayerSource::Converted(Arc::new(temp)),
    })
}

/// Decompresses, optionally rewrites, and re-compresses into a temp file.
/// Returns (file, digest, size, diffID).
fn convert_blob(
    layer: &Layer,
    source: Compression,
    plan: &LayerPlan,
    blobs: &dyn BlobSource,
    scratch: &Path,
) -> io::Result<(TempPath, String, u64, String)> {
    let file = tempfile::Builder::new()
        .prefix("layer-")
        .tempfile_in(scratch)?;
    let (file, path) = file.into_parts();
    drop(file);
    // Written once and read once by the archive stream: kept out of the page
    // cache (see `direct_io`).
    let compressed = Arc::new(Mutex::new(codec::HashWriter::new(DataFile::open(
        &path, 0, None,
    )?)));
    let encoder = codec::encoder(
        plan.compression,
        plan.level,
        codec::Shared(compressed.clone()),
    )?;
    let mut reader = codec::decoder(source, blobs.open(&layer.digest)?)?;
    let diff_id = match (source, plan.rewrite_epoch) {
        // An uncompressed blob is its own diff: the source holds the bytes
        // its digest names, so a second SHA-256 pass would only repeat it.
        (Compression::Uncompressed, None) => {
            let mut encoder = encoder;
            codec::copy_large(&mut reader, &mut encoder)?;
            encoder.finish()?;
            layer.digest.clone()
        }
        (_, epoch) => {
            let mut uncompressed = codec::HashWriter::new(encoder);
            match epoch {
                Some(epoch) => tar_rewrite::rewrite(&mut reader, &mut uncompressed, epoch)?,
                None => {
                    codec::copy_large(&mut reader, &mut uncompressed)?;
                }
            }
            let (diff_id, _, encoder) = uncompressed.finish();
            encoder.finish()?;
            diff_id
        }
    };
    let hw = Arc::try_unwrap(compressed)
        .map_err(|_| io::Error::other("compressed writer still shared"))?
        .into_inner()
        .map_err(|_| io::Error::other("compressed writer lock poisoned"))?;
    let (digest, size, mut data) = hw.finish();
    // No fsync: the file is scratch, removed when the export ends.
    io::Write::flush(&mut data)?;
    Ok((path, digest, size, diff_id))
}
