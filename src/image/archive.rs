//! An OCI layout tar read in place: one pass over the headers records where
//! each file's bytes are, and blobs are then streamed from those offsets.
//! Nothing but headers is read up front, so memory stays flat.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::Image;
use crate::error::{ErrorKind, ExportError, Result};
use crate::ustar::{clean_path, cstr, read_header, Pending};

const BLOCK: u64 = 512;
/// PAX and GNU long-name records larger than this are refused.
const MAX_META_RECORD: u64 = 1 << 20;

pub struct ArchiveSource {
    path: PathBuf,
    /// File name inside the archive -> (offset of its bytes, size).
    entries: BTreeMap<String, (u64, u64)>,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> ExportError {
    ExportError::new(
        ErrorKind::InvalidArgument,
        format!("{}: {msg}", path.display()),
    )
}

/// `n` rounded up to whole blocks; `None` past `u64`.
fn round_up(n: u64) -> Option<u64> {
    n.div_ceil(BLOCK).checked_mul(BLOCK)
}

/// The offset after `len` bytes (rounded up to whole blocks) from `pos`,
/// when the archive of `total` bytes holds them. Sizes come from the input,
/// so every step is checked: a size near 2^64 must not wrap around.
fn advance(pos: u64, len: u64, total: u64) -> Option<u64> {
    pos.checked_add(round_up(len)?).filter(|&end| end <= total)
}

impl ArchiveSource {
    pub fn open(path: &Path) -> Result<ArchiveSource> {
        let mut f = File::open(path).map_err(|e| bad(path, e))?;
        let len = f.metadata()?.len();
        let mut entries = BTreeMap::new();
        let mut pos = 0u64;
        let mut pending = Pending::default();
        let mut h = [0u8; BLOCK as usize];
        loop {
            if pos.checked_add(BLOCK).is_none_or(|end| end > len) {
                return Err(bad(path, "the tar ends without its end-of-archive blocks"));
            }
            f.seek(SeekFrom::Start(pos))?;
            f.read_exact(&mut h)?;
            pos += BLOCK;
            if h.iter().all(|&b| b == 0) {
                break;
            }
            let entry = read_header(&h, std::mem::take(&mut pending)).map_err(|e| bad(path, e))?;
            let (name, size) = (entry.name, entry.size);
            match entry.typeflag {
                b'x' | b'L' => {
                    if size > MAX_META_RECORD {
                        return Err(bad(path, "a tar metadata record is too large"));
                    }
                    let mut data = vec![0u8; size as usize];
                    f.read_exact(&mut data)?;
                    pending = if entry.typeflag == b'x' {
                        Pending::from_pax(&data).map_err(|e| bad(path, e))?
                    } else {
                        Pending {
                            path: Some(String::from_utf8_lossy(cstr(&data)).into_owned()),
                            size: None,
                        }
                    };
                }
                b'0' | 0 => {
                    let rel = clean_path(&name).map_err(|e| bad(path, e))?;
                    let key = rel.to_string_lossy().into_owned();
                    if pos.checked_add(size).is_none_or(|end| end > len) {
                        return Err(bad(
                            path,
                            format!("{key}: {size} bytes do not fit in the archive"),
                        ));
                    }
                    entries.insert(key, (pos, size));
                }
                // Directories, global PAX headers and the like carry no files.
                _ => {}
            }
            pos = advance(pos, size, len).ok_or_else(|| {
                bad(
                    path,
                    format!("{name}: an entry of {size} bytes does not fit in the archive"),
                )
            })?;
        }
        Ok(ArchiveSource {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn open_entry(&self, name: &str) -> Result<Option<io::Take<File>>> {
        let Some(&(offset, size)) = self.entries.get(name) else {
            return Ok(None);
        };
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Some(f.take(size)))
    }

    fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut r) = self.open_entry(name)? else {
            return Ok(None);
        };
        if r.limit() > super::MAX_JSON_BLOB {
            return Err(bad(&self.path, format!("{name} is too large")));
        }
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)?;
        Ok(Some(buf))
    }
}

pub(crate) fn blob_name(digest: &str) -> String {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    format!("blobs/{alg}/{hex}")
}

impl Image for ArchiveSource {
    fn index_json(&self) -> Result<Cow<'_, [u8]>> {
        self.read_entry("index.json")?
            .map(Cow::Owned)
            .ok_or_else(|| bad(&self.path, "no index.json: not an OCI layout archive"))
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        self.entries.get(&blob_name(digest)).map(|&(_, s)| s)
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        match self.open_entry(&blob_name(digest))? {
            Some(r) => Ok(Box::new(r)),
            None => Err(ExportError::new(
                ErrorKind::NotFound,
                format!("{digest}: blob is missing"),
            )),
        }
    }

    fn manifest_json(&self) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(self.read_entry("manifest.json")?.map(Cow::Owned))
    }
}
