//! An image built in this process, read as a store: an export's graph (or
//! any other [`sink::Image`]) behind the [`ImageSource`] interface that
//! archives, layouts and registry images implement, so inspection and
//! conversion read it as they read those.
//!
//! Why an adapter and not a second implementation per image: the sinks'
//! view already has every blob by digest and the layout's files; a store
//! is that view looked up by digest.

use std::io::{Cursor, Read};

use super::ImageSource;
use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::Descriptor;
use crate::sink;

/// A built image as a store.
pub struct Built<I>(pub I);

impl<I: sink::Image> Built<I> {
    fn find(&self, digest: &str) -> Option<(Descriptor, Option<Vec<u8>>)> {
        self.0
            .blobs()
            .into_iter()
            .find(|(d, _)| d.digest == digest)
            .map(|(d, b)| (d.clone(), b.map(<[u8]>::to_vec)))
    }
}

impl<I: sink::Image + Send + Sync> ImageSource for Built<I> {
    fn index_json(&self) -> Result<Vec<u8>> {
        Ok(self.0.index_json().into_owned())
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.0
            .blobs()
            .into_iter()
            .find(|(d, _)| d.digest == digest)
            .map(|(d, _)| d.size)
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        match self.find(digest) {
            Some((_, Some(bytes))) => Ok(Box::new(Cursor::new(bytes))),
            Some((d, None)) => Ok(self.0.open(&d)?),
            None => Err(ExportError::new(
                ErrorKind::NotFound,
                format!("{digest}: blob is missing"),
            )),
        }
    }

    fn extra_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(match name {
            "manifest.json" => self.0.manifest_json().map(|m| m.into_owned()),
            _ => None,
        })
    }
}
