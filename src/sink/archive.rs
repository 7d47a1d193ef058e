//! The layout-tar sink: any [`Image`] streamed as an OCI layout tar, the
//! bytes BuildKit's `oci` and `docker` exporters write (Go's `archive/tar`
//! headers, see [`super::tar`]).
//!
//! Entry order: `blobs/`, `blobs/sha256/`, the blobs in digest order, then
//! `index.json`, `manifest.json` (when the image has one) and `oci-layout`.

use std::io::Write;

use super::tar::TarWriter;
use super::Sink;
use crate::error::{ErrorKind, ExportError, Result};
use crate::image::files::OCI_LAYOUT;
use crate::image::Image;
use crate::oci;
use crate::progress::Progress;

/// Writes images as layout tars to `out` (stdout, a file, a layout
/// directory's unpacker, the server's output stream).
pub struct TarSink<W: Write> {
    out: W,
}

impl<W: Write> TarSink<W> {
    pub fn new(out: W) -> Self {
        TarSink { out }
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn write(&mut self, image: &dyn Image, progress: &mut dyn FnMut(Progress)) -> Result<()> {
        let mut tw = TarWriter::new(&mut self.out);
        tw.dir("blobs/")?;
        tw.dir("blobs/sha256/")?;
        for (desc, bytes) in image.blobs()? {
            let digest = &desc.digest;
            if !oci::is_sha256_digest(digest) {
                return Err(ExportError::new(
                    ErrorKind::InvalidArgument,
                    format!("{digest}: only sha256 blobs can be written"),
                ));
            }
            let name = format!("blobs/sha256/{}", oci::digest_hex(digest));
            if let Some(b) = bytes {
                tw.file_bytes(&name, 0o444, &b)?;
                continue;
            }
            let total = desc.size;
            image.stream(&desc, &mut |r| {
                tw.file(&name, 0o444, total, r, &mut |done| {
                    progress(Progress::Writing {
                        digest: digest.clone(),
                        done,
                        total,
                    })
                })
            })?;
            progress(Progress::Done {
                digest: digest.clone(),
                total,
            });
        }
        tw.file_bytes("index.json", 0o644, &image.index_json()?)?;
        if let Some(m) = image.manifest_json()? {
            tw.file_bytes("manifest.json", 0o644, &m)?;
        }
        tw.file_bytes("oci-layout", 0o444, OCI_LAYOUT)?;
        tw.finish()?;
        Ok(())
    }
}
