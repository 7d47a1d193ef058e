//! The image's one layer: a USTAR tar (Go `archive/tar` bytes, through the
//! sink's own writer) holding the binary at `usr/local/bin/oxport` and what
//! it needs at run time ([`super::runtime`]), gzipped. Entries are sorted by
//! path, each directory before what it holds. Both digests are computed
//! while the bytes stream to the file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::runtime::RuntimeFile;
use crate::layer::codec::HashWriter;
use crate::sink::tar::TarWriter;

/// Where the binary lives in the image.
pub const BINARY_PATH: &str = "usr/local/bin/oxport";

/// A written layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// `sha256:` of the gzip bytes.
    pub digest: String,
    pub size: u64,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// Each file of the layer: its path in the image and the hex SHA-256
    /// of its content, in layer order.
    pub files: Vec<(String, String)>,
}

/// A `Read` that hashes what passes through: each file's SHA-256 (for the
/// SBOM) comes from the one read that copies it into the layer.
struct HashRead<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes the layer holding `binary` and the `runtime` files to `dest`.
pub fn write(binary: &Path, runtime: &[RuntimeFile], dest: &Path) -> io::Result<LayerBlob> {
    let mut entries: Vec<(&str, &Path)> = vec![(BINARY_PATH, binary)];
    entries.extend(
        runtime
            .iter()
            .map(|f| (f.image_path.as_str(), f.host_path.as_path())),
    );
    entries.sort();
    let compressed = HashWriter::new(BufWriter::new(File::create(dest)?));
    // GzEncoder writes no name and a zero mtime: the bytes depend only on the input.
    let gz = GzEncoder::new(compressed, Compression::default());
    let mut tar = TarWriter::new(HashWriter::new(gz));
    let mut dirs_written: Vec<String> = Vec::new();
    let mut files = Vec::new();
    for (name, host) in entries {
        let parts: Vec<&str> = name.split('/').collect();
        for i in 1..parts.len() {
            let dir = format!("{}/", parts[..i].join("/"));
            if !dirs_written.contains(&dir) {
                tar.dir(&dir)?;
                dirs_written.push(dir);
            }
        }
        let file = File::open(host)?;
        let meta = file.metadata()?;
        let mode = if name == BINARY_PATH {
            0o755
        } else {
            meta.permissions().mode() & 0o755
        };
        let mut src = HashRead {
            inner: file,
            hash: Sha256::new(),
        };
        tar.file(name, mode, meta.len(), &mut src, &mut |_| {})?;
        files.push((name.to_string(), hex::encode(src.hash.finalize())));
    }
    let (diff_id, _, gz) = tar.finish()?.finish();
    let (digest, size, mut file) = gz.finish()?.finish();
    file.flush()?;
    Ok(LayerBlob {
        digest,
        size,
        diff_id,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn layer_holds_the_binary_and_digests_match() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let content: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&bin, &content).unwrap();
        let blob = dir.path().join("layer");
        let l = write(&bin, &[], &blob).unwrap();

        let gz = std::fs::read(&blob).unwrap();
        assert_eq!(l.size, gz.len() as u64);
        assert_eq!(
            l.digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&gz)))
        );
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            l.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
        // Three directory headers, then the file header and its data.
        let names: Vec<String> = (0..4)
            .map(|i| {
                let h = &tar[i * 512..i * 512 + 100];
                String::from_utf8_lossy(h)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["usr/", "usr/local/", "usr/local/bin/", BINARY_PATH]);
        assert_eq!(&tar[3 * 512 + 100..3 * 512 + 107], b"0000755");
        assert_eq!(&tar[4 * 512..4 * 512 + content.len()], &content[..]);
        // Same input, same bytes.
        let again = write(&bin, &[], &dir.path().join("again")).unwrap();
        assert_eq!(again, l);
    }
}
