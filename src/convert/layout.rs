//! A conversion's output: the new layout (blobs by digest, `index.json`,
//! Docker's `manifest.json`), and the same layout seen as a
//! [`sink::Image`] over its source, so it goes out through the sinks an
//! export uses.
//!
//! Why the check on the way: a conversion copies blobs from a store it did
//! not write, so every copied blob is hashed as it streams and a blob whose
//! bytes do not match its digest fails the write.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::error::{ErrorKind, ExportError, Result};
use crate::image::{ImageSource, Verified};
use crate::oci::Descriptor;
use crate::sink;

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
    pub fn over<'a>(&'a self, src: &'a dyn ImageSource) -> Converted<'a> {
        Converted { layout: self, src }
    }
}

/// A new layout and the store its copied blobs come from.
pub struct Converted<'a> {
    pub(super) layout: &'a NewLayout,
    src: &'a dyn ImageSource,
}

impl sink::Image for Converted<'_> {
    fn blobs(&self) -> Vec<(&Descriptor, Option<&[u8]>)> {
        self.layout
            .blobs
            .values()
            .map(|(d, data)| match data {
                BlobData::Bytes(b) => (d, Some(b.as_slice())),
                BlobData::Stored => (d, None),
            })
            .collect()
    }

    fn open(&self, d: &Descriptor) -> io::Result<Box<dyn Read + Send>> {
        self.src
            .open_blob(&d.digest)
            .map_err(|e| io::Error::other(e.message))
    }

    fn stream(
        &self,
        d: &Descriptor,
        write: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>,
    ) -> Result<()> {
        let digest = &d.digest;
        let mut r = Verified::new(self.src.open_blob(digest)?);
        write(&mut r).map_err(|e| ExportError::from(e).context(digest))?;
        let (actual, _) = r.finish();
        if actual != *digest {
            return Err(ExportError::new(
                ErrorKind::InvalidArgument,
                format!("{digest}: blob content has digest {actual}"),
            ));
        }
        Ok(())
    }

    fn index_json(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.layout.index_json)
    }

    fn manifest_json(&self) -> Option<Cow<'_, [u8]>> {
        self.layout.manifest_json.as_deref().map(Cow::Borrowed)
    }

    /// A layout may hold several images: a push selects one
    /// ([`super::push`]).
    fn root(&self) -> Option<&Descriptor> {
        None
    }

    fn manifests(&self) -> Vec<(&Descriptor, Option<&str>)> {
        Vec::new()
    }
}
