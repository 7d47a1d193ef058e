//! The entry names of layer tars, for the SBOM supplement (the export step
//! hands them to `assemble::sbom::LayerFiles` as data).
//!
//! Names are read by streaming the stored blob through its decompressor and
//! the shared header reader (`ustar`, which follows PAX `path` records and
//! GNU long names as Go's `archive/tar` does, and bounds them); no layer is
//! held in memory. Each input layer is read at
//! most once per export, however many platforms share it. The compression is
//! told by the blob's first bytes, as BuildKit's `DecompressStream` tells it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use crate::blob::BlobSource;
use crate::error::{ExportError, Result};
use crate::model::Layer;
use crate::options::Compression;

use super::codec;
use super::ExportedLayer;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The entry names of one platform's layers, lowest first, each under the
/// digest of its exported blob.
pub type LayerNames = Vec<(String, Arc<Vec<String>>)>;

/// Entry names of the layers read so far in one export, by input digest.
#[derive(Default)]
pub struct EntryNames {
    by_digest: HashMap<String, Arc<Vec<String>>>,
}

impl EntryNames {
    /// The entry names of one platform's layers, each under the digest of
    /// its exported blob (what the SBOM names).
    pub fn layer_files(
        &mut self,
        inputs: &[Layer],
        exported: &[ExportedLayer],
        ref_key: &str,
        blobs: &dyn BlobSource,
    ) -> Result<LayerNames> {
        let mut layers = Vec::with_capacity(inputs.len());
        for (j, (input, out)) in inputs.iter().zip(exported).enumerate() {
            let names = match self.by_digest.get(&input.digest) {
                Some(n) => n.clone(),
                None => {
                    let n = Arc::new(read_names(blobs, &input.digest).map_err(|e| {
                        ExportError::invalid(
                            format!("refs[{ref_key:?}][{j}]"),
                            format!("cannot list the files of layer {}: {e}", input.digest),
                        )
                    })?);
                    self.by_digest.insert(input.digest.clone(), n.clone());
                    n
                }
            };
            layers.push((out.descriptor.digest.clone(), names));
        }
        Ok(layers)
    }
}

/// The compression a blob's first bytes announce.
fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::Uncompressed
    }
}

/// The names of a stored layer blob's tar entries, in archive order.
pub fn read_names(blobs: &dyn BlobSource, digest: &str) -> std::io::Result<Vec<String>> {
    let mut r = BufReader::with_capacity(256 * 1024, blobs.open(digest)?);
    let compression = sniff(r.fill_buf()?);
    names_of(codec::decoder(compression, Box::new(r))?)
}

/// PAX and GNU long-name records larger than this are refused: a layer is
/// the builder's input, and its records are read whole.
const MAX_META_RECORD: u64 = 1 << 20;

/// The entry names of an uncompressed tar stream, as Go's `archive/tar`
/// returns its entries: PAX (`x`) and GNU long-name (`L`, `K`) headers apply
/// to the entry after them and are not entries themselves.
pub fn names_of(mut r: impl Read) -> std::io::Result<Vec<String>> {
    use crate::ustar::{cstr, read_header, Pending};
    let mut names = Vec::new();
    let mut pending = Pending::default();
    let mut h = [0u8; 512];
    loop {
        if !read_block(&mut r, &mut h)? || h.iter().all(|&b| b == 0) {
            return Ok(names);
        }
        let entry = read_header(&h, std::mem::take(&mut pending))?;
        let padded = entry.size.div_ceil(512) * 512;
        match entry.typeflag {
            b'x' | b'L' | b'K' => {
                if entry.size > MAX_META_RECORD {
                    return Err(std::io::Error::other(format!(
                        "a tar metadata record of {} bytes (at most {MAX_META_RECORD})",
                        entry.size
                    )));
                }
                let mut data = vec![0u8; padded as usize];
                r.read_exact(&mut data)?;
                data.truncate(entry.size as usize);
                pending = match entry.typeflag {
                    b'x' => Pending::from_pax(&data)?,
                    b'L' => Pending {
                        path: Some(String::from_utf8_lossy(cstr(&data)).into_owned()),
                        size: None,
                    },
                    _ => std::mem::take(&mut pending),
                };
            }
            _ => {
                names.push(entry.name);
                let skipped = std::io::copy(&mut (&mut r).take(padded), &mut std::io::sink())?;
                if skipped < padded {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
}

/// Fills `h` with the next block; false at a clean end of the stream.
fn read_block(r: &mut impl Read, h: &mut [u8; 512]) -> std::io::Result<bool> {
    let mut n = 0;
    while n < h.len() {
        match r.read(&mut h[n..])? {
            0 if n == 0 => return Ok(false),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            k => n += k,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(names: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for n in names {
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, n, &b"abc"[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn names_follow_long_name_records() {
        let long = format!("dir/{}", "x".repeat(150));
        let t = tar_of(&["a.txt", &long, "dir/.wh.gone"]);
        assert_eq!(
            names_of(&t[..]).unwrap(),
            ["a.txt", long.as_str(), "dir/.wh.gone"]
        );
    }

    #[test]
    fn compression_is_told_by_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"a.txt\0"), Compression::Uncompressed);
    }

    /// A blob source that counts how often each blob is opened.
    struct Counting {
        blobs: HashMap<String, Vec<u8>>,
        opened: std::sync::Mutex<Vec<String>>,
    }

    impl BlobSource for Counting {
        fn open(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>> {
            self.opened.lock().unwrap().push(digest.to_string());
            Ok(Box::new(std::io::Cursor::new(self.blobs[digest].clone())))
        }
    }

    fn layer(digest: &str) -> (Layer, ExportedLayer) {
        let input = Layer {
            digest: digest.to_string(),
            ..Default::default()
        };
        let out = ExportedLayer {
            descriptor: crate::oci::Descriptor::new("m", format!("{digest}-out"), 1),
            diff_id: String::new(),
            source: super::super::LayerSource::Input(digest.to_string()),
        };
        (input, out)
    }

    #[test]
    fn each_layer_is_read_once_per_export_under_its_exported_digest() {
        let gz = |names: &[&str]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &tar_of(names)).unwrap();
            e.finish().unwrap()
        };
        let src = Counting {
            blobs: HashMap::from([
                ("sha256:base".to_string(), gz(&["bin/sh"])),
                ("sha256:app".to_string(), tar_of(&["app/run"])),
            ]),
            opened: Default::default(),
        };
        let (base_in, base_out) = layer("sha256:base");
        let (app_in, app_out) = layer("sha256:app");
        let mut names = EntryNames::default();
        for _platform in 0..2 {
            let files = names
                .layer_files(
                    &[base_in.clone(), app_in.clone()],
                    &[base_out.clone(), app_out.clone()],
                    "linux/amd64",
                    &src,
                )
                .unwrap();
            let files: Vec<(&str, &[String])> = files
                .iter()
                .map(|(d, n)| (d.as_str(), n.as_slice()))
                .collect();
            assert_eq!(
                files,
                [
                    ("sha256:base-out", &["bin/sh".to_string()][..]),
                    ("sha256:app-out", &["app/run".to_string()][..]),
                ]
            );
        }
        assert_eq!(*src.opened.lock().unwrap(), ["sha256:base", "sha256:app"]);
    }

    #[test]
    fn a_huge_pax_record_is_refused_before_it_is_read() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(4 << 30);
        h.set_path("pax").unwrap();
        h.set_cksum();
        // Only the header: a reader that took the size at its word would
        // try to allocate 4 GiB.
        let err = names_of(&h.as_bytes()[..]).unwrap_err();
        assert!(err.to_string().contains("metadata record"), "{err}");
    }

    #[test]
    fn a_broken_tar_is_an_error() {
        let mut t = tar_of(&["a.txt"]);
        t[150] ^= 0xff; // the header checksum no longer matches
        assert!(names_of(&t[..]).is_err());
    }
}
