//! A conversion's output: the new layout (blobs by digest, `index.json`,
//! Docker's `manifest.json`), and the same layout seen as an [`Image`]
//! over its source, so it goes out through the sinks an export uses.
//!
//! Why the check on the way: a conversion copies blobs from a store it did
//! not write, so every copied blob is hashed as it streams and a blob whose
//! bytes do not match its digest fails the write.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use crate::error::{ErrorKind, ExportError, Result};
use crate::image::{Blobs, Image};
use crate::oci::Descriptor;

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

impl NewLayout {
    /// The layout as an image whose stored blobs are read from `src`.
    pub fn over<'a>(&'a self, src: &'a dyn Image) -> Converted<'a> {
        Converted { layout: self, src }
    }
}

/// A new layout and the image its copied blobs come from.
pub struct Converted<'a> {
    pub(super) layout: &'a NewLayout,
    src: &'a dyn Image,
}

/// Blobs written by the conversion come from memory, copied ones from the
/// source. Copied blobs are streamed through the default
/// [`Image::stream`], which hashes them on the way.
impl Image for Converted<'_> {
    fn index_json(&self) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(&self.layout.index_json))
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.layout.blobs.get(digest).map(|(d, _)| d.size)
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        match self.layout.blobs.get(digest) {
            Some((_, BlobData::Bytes(b))) => Ok(Box::new(Cursor::new(b.clone()))),
            Some((_, BlobData::Stored)) => self.src.open_blob(digest),
            None => Err(ExportError::new(
                ErrorKind::NotFound,
                format!("{digest}: blob is missing"),
            )),
        }
    }

    fn manifest_json(&self) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(self.layout.manifest_json.as_deref().map(Cow::Borrowed))
    }

    fn blobs(&self) -> Result<Blobs<'_>> {
        Ok(self
            .layout
            .blobs
            .values()
            .map(|(d, data)| match data {
                BlobData::Bytes(b) => (d.clone(), Some(Cow::Borrowed(b.as_slice()))),
                BlobData::Stored => (d.clone(), None),
            })
            .collect())
    }
}
