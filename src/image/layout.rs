//! An OCI layout directory (`oci:DIR[:REF]`) as an image store.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::archive::blob_name;
use super::ImageSource;
use crate::error::{ErrorKind, ExportError, Result};

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
        if !dir.join("oci-layout").is_file() || !dir.join("index.json").is_file() {
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

impl ImageSource for LayoutSource {
    fn index_json(&self) -> Result<Vec<u8>> {
        let p = self.dir.join("index.json");
        fs::read(&p).map_err(|e| ExportError::from(e).context(&p.display().to_string()))
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        let m = fs::metadata(self.blob_path(digest)?).ok()?;
        m.is_file().then_some(m.len())
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        let missing =
            || ExportError::new(ErrorKind::NotFound, format!("{digest}: blob is missing"));
        let p = self.blob_path(digest).ok_or_else(missing)?;
        match File::open(p) {
            Ok(f) => Ok(Box::new(io::BufReader::with_capacity(256 << 10, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
            Err(e) => Err(e.into()),
        }
    }

    fn extra_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
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
