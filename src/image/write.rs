//! A new image layout (blobs, `index.json`, `manifest.json`) written as the
//! OCI layout tar the exporter writes: the same entry order, headers and
//! modes, so a conversion's output is byte-identical to an export's.

use std::collections::BTreeMap;
use std::io::Write;

use super::{ImageSource, Verified};
use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::{self, Descriptor};
use crate::sink::{layout::OCI_LAYOUT, tar::TarWriter};

/// Where the bytes of an output blob come from.
#[derive(Debug, Clone)]
pub enum BlobData {
    /// Written by the conversion (manifests, indexes, configs).
    Bytes(Vec<u8>),
    /// Copied from the source store, verified on the way.
    Stored,
}

/// The whole content of an output layout.
#[derive(Debug, Clone, Default)]
pub struct NewLayout {
    /// By digest; `BTreeMap` order of `sha256:<hex>` is the tar's blob order.
    pub blobs: BTreeMap<String, (Descriptor, BlobData)>,
    pub index_json: Vec<u8>,
    /// Docker's loader file, passed through when the source had one.
    pub manifest_json: Option<Vec<u8>>,
}

/// Streams `layout` as a tar; stored blobs are copied from `src` and
/// checked against their descriptors.
pub fn write_tar(layout: &NewLayout, src: &dyn ImageSource, out: &mut dyn Write) -> Result<()> {
    let mut tw = TarWriter::new(out);
    tw.dir("blobs/")?;
    tw.dir("blobs/sha256/")?;
    for (digest, (desc, data)) in &layout.blobs {
        if !oci::is_sha256_digest(digest) {
            return Err(ExportError::new(
                ErrorKind::InvalidArgument,
                format!("{digest}: only sha256 blobs can be written"),
            ));
        }
        let name = format!("blobs/sha256/{}", oci::digest_hex(digest));
        match data {
            BlobData::Bytes(b) => tw.file_bytes(&name, 0o444, b)?,
            BlobData::Stored => {
                let mut r = Verified::new(src.open_blob(digest)?);
                tw.file(&name, 0o444, desc.size, &mut r, &mut |_| {})
                    .map_err(|e| ExportError::from(e).context(digest))?;
                let (actual, _) = r.finish();
                if actual != *digest {
                    return Err(ExportError::new(
                        ErrorKind::InvalidArgument,
                        format!("{digest}: blob content has digest {actual}"),
                    ));
                }
            }
        }
    }
    tw.file_bytes("index.json", 0o644, &layout.index_json)?;
    if let Some(m) = &layout.manifest_json {
        tw.file_bytes("manifest.json", 0o644, m)?;
    }
    tw.file_bytes("oci-layout", 0o444, OCI_LAYOUT)?;
    tw.finish()?;
    Ok(())
}
