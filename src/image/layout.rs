//! An OCI layout directory (`oci:DIR[:REF]`) as an image store.
//!
//! The layout is untrusted input: every file is read through
//! [`crate::untrusted`]. Symbolic links are followed (layouts that share
//! blobs through links stay readable), but whatever a name leads to must be
//! a regular file: a FIFO, a device or a socket is refused when opened,
//! without blocking. `index.json` and `manifest.json` are read whole only
//! up to [`MAX_JSON_BLOB`], and a blob is read no further than the size it
//! had when opened.

use std::borrow::Cow;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::archive::blob_name;
use super::{Image, MAX_JSON_BLOB};
use crate::error::{ErrorKind, ExportError, Result};
use crate::untrusted;

pub struct LayoutSource {
    dir: PathBuf,
    reference: Option<String>,
}

/// A digest that is safe to use as a path: `alg:hex` of plain characters.
fn plain_digest(digest: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_'))
    };
    matches!(digest.split_once(':'), Some((alg, hex)) if ok(alg) && ok(hex))
}

impl LayoutSource {
    pub fn open(dir: &Path, reference: Option<String>) -> Result<LayoutSource> {
        // index.json only has to be there: reading it checks what it is.
        let index = fs::symlink_metadata(dir.join("index.json"));
        if !dir.join("oci-layout").is_file() || index.is_err() {
            return Err(ExportError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{}: not an OCI layout (no oci-layout or index.json)",
                    dir.display()
                ),
            ));
        }
        Ok(LayoutSource {
            dir: dir.to_path_buf(),
            reference,
        })
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        plain_digest(digest).then(|| self.dir.join(blob_name(digest)))
    }
}

/// An error reading one of the layout's files, which the message names.
fn read_error(e: io::Error) -> ExportError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::InvalidData => ErrorKind::ResourceExhausted,
        _ => ErrorKind::InvalidArgument,
    };
    ExportError::new(kind, e.to_string())
}

impl Image for LayoutSource {
    fn index_json(&self) -> Result<Cow<'_, [u8]>> {
        untrusted::read_capped(&self.dir.join("index.json"), MAX_JSON_BLOB)
            .map(Cow::Owned)
            .map_err(read_error)
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        let m = fs::metadata(self.blob_path(digest)?).ok()?;
        m.is_file().then_some(m.len())
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        let missing =
            || ExportError::new(ErrorKind::NotFound, format!("{digest}: blob is missing"));
        let p = self.blob_path(digest).ok_or_else(missing)?;
        match untrusted::open_regular(&p) {
            // Never past the size it had when opened (a growing file).
            Ok((f, size)) => Ok(Box::new(io::BufReader::with_capacity(
                256 << 10,
                f.take(size),
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
            Err(e) => Err(read_error(e).context(digest)),
        }
    }

    fn manifest_json(&self) -> Result<Option<Cow<'_, [u8]>>> {
        untrusted::read_capped_opt(&self.dir.join("manifest.json"), MAX_JSON_BLOB)
            .map(|m| m.map(Cow::Owned))
            .map_err(read_error)
    }

    fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_cannot_escape_the_layout() {
        assert!(plain_digest("sha256:abc"));
        assert!(!plain_digest("sha256:../../etc"));
        assert!(!plain_digest("sha256/x:y"));
        assert!(!plain_digest("nocolon"));
    }
}
