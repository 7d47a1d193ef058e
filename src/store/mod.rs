//! The content store: layer blobs by digest, verified before they exist.
//!
//! Layout under the state directory:
//!
//! ```text
//! blobs/sha256/<hex>   committed blobs, read-only, never modified
//! ingest/<key>.data    bytes of an upload in progress (<key> = sha256 of its ref)
//! ingest/<key>.meta    the digest and size that upload promised
//! tmp/                 scratch space for exports
//! ```
//!
//! Invariants:
//! - A file under `blobs/` always holds the bytes its name says: it is renamed
//!   there only after its size and sha256 were checked and its bytes fsynced,
//!   and the directory is fsynced after the rename. The rename is atomic,
//!   and renaming a second verified copy over the first replaces equal bytes,
//!   so concurrent commits of one blob are harmless.
//! - A `.meta` file is written whole (temp file, fsync, rename), so a crash
//!   leaves it absent or complete.
//! - Start-up ([`Store::open`]) removes what a crash can leave: the scratch
//!   directory, half-written `.meta` files, and uploads that cannot be
//!   resumed (no or unreadable meta, more bytes than promised, or a blob that
//!   is already committed). Consistent partial uploads stay for a resume; the
//!   commit verifies their digest anyway.
//! - At most one writer per upload ref at a time ([`Store::try_lock`]). The
//!   lock is in-process: a state directory belongs to one server process.
//! - Nothing here holds a whole blob in memory.
//! - Blob data is written around the page cache where the file system
//!   allows it ([`crate::direct_io`]); uploads hash on a thread of their own
//!   while their bytes are written (`ingest`). Committed blobs are read
//!   through the page cache and left there
//!   ([`crate::direct_io::open_sequential`]).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::blob::BlobSource;
use crate::error::{ErrorKind, ExportError, Result};

mod ingest;

pub use ingest::Ingest;

use crate::digest::parse_digest;

const HASH_BUF: usize = 64 * 1024;

/// How far an upload has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes held for the upload ref; resume from here.
    pub offset: u64,
    /// The blob is in the store.
    pub committed: bool,
}

/// A content store rooted at a state directory.
pub struct Store {
    root: PathBuf,
    active: Arc<Mutex<HashSet<String>>>,
}

impl Store {
    /// Opens (creating as needed) the store under `root`. Leftover scratch
    /// files of an earlier process are removed.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Store> {
        let root = root.into();
        // The store holds other people's layers: only the server's user may
        // read it, whatever the umask (as the systemd unit's StateDirectoryMode).
        let private = |p: &Path| {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
        };
        private(&root)?;
        private(&root.join("blobs").join("sha256"))?;
        private(&root.join("ingest"))?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        private(&tmp)?;
        let store = Store {
            root,
            active: Arc::default(),
        };
        store.recover()?;
        Ok(store)
    }

    /// Removes the upload leftovers of a crashed process that cannot be
    /// resumed; see the module invariants. Returns how many files went.
    fn recover(&self) -> io::Result<usize> {
        let dir = self.root.join("ingest");
        let mut removed = 0;
        let mut remove = |path: &Path, why: &str| {
            tracing::info!(path = %path.display(), why, "removing upload leftover");
            remove_quietly(path);
            removed += 1;
        };
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(key) = name.strip_suffix(".data") {
                let meta = dir.join(format!("{key}.meta"));
                match read_meta(&meta) {
                    None => remove(&path, "no record of its digest and size"),
                    Some((digest, size)) => {
                        let held = fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX);
                        let committed = self.contains(&digest).unwrap_or(false);
                        if committed || held > size {
                            remove(&path, "already committed or longer than promised");
                            remove(&meta, "its upload was removed");
                        }
                    }
                }
            } else if let Some(key) = name.strip_suffix(".meta") {
                let data = dir.join(format!("{key}.data"));
                let valid = read_meta(&path).is_some_and(|(d, _)| parse_digest("", &d).is_ok());
                if !data.exists() || !valid {
                    remove(&path, "no upload data, or unreadable");
                    remove_quietly(&data);
                }
            } else {
                // A `.meta.tmp` of a write cut short, or anything else.
                remove(&path, "not part of an upload");
            }
        }
        let blobs = self.root.join("blobs").join("sha256");
        for entry in fs::read_dir(&blobs)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if parse_digest("", &format!("sha256:{name}")).is_err() {
                remove(&path, "not named by a digest");
            }
        }
        Ok(removed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Scratch space for exports, on the same file system as the store.
    pub fn scratch_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob with this digest lives once committed.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = parse_digest("digest", digest)?;
        Ok(self.root.join("blobs").join("sha256").join(hex))
    }

    pub fn contains(&self, digest: &str) -> Result<bool> {
        Ok(self.blob_path(digest)?.is_file())
    }

    /// The digests the store lacks, in the order asked, without repeats.
    /// Errors name `digests[<i>]`.
    pub fn missing(&self, digests: &[String]) -> Result<Vec<String>> {
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        for (i, d) in digests.iter().enumerate() {
            let hex = parse_digest(&format!("digests[{i}]"), d)?;
            let present = self.root.join("blobs").join("sha256").join(hex).is_file();
            if !present && seen.insert(d.clone()) {
                missing.push(d.clone());
            }
        }
        Ok(missing)
    }

    /// Reports how much of the upload `ref_` is held. An upload whose recorded
    /// digest differs from `digest`, or whose declared size differs from
    /// `size` (when given), counts as nothing held.
    pub fn status(&self, ref_: &str, digest: &str, size: Option<u64>) -> Result<UploadStatus> {
        if self.contains(digest)? {
            return Ok(UploadStatus {
                offset: 0,
                committed: true,
            });
        }
        let (data, meta) = self.ingest_paths(ref_);
        let offset = match read_meta(&meta) {
            Some((d, s)) if d == digest && size.is_none_or(|want| want == s) => {
                fs::metadata(&data).map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        };
        Ok(UploadStatus {
            offset,
            committed: false,
        })
    }

    /// Takes the write lock of an upload ref, or `None` when another writer
    /// holds it. The lock is released when the returned guard is dropped.
    pub fn try_lock(&self, ref_: &str) -> Option<RefLock> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if !active.insert(ref_.to_string()) {
            return None;
        }
        Some(RefLock {
            active: Arc::clone(&self.active),
            ref_: ref_.to_string(),
        })
    }

    /// Starts or resumes writing a blob under a held ref lock. Returns `None`
    /// when the blob is already committed (nothing to write).
    ///
    /// `offset` 0 starts over; any other offset must equal the bytes held.
    pub fn begin_write(
        &self,
        lock: &RefLock,
        digest: &str,
        size: u64,
        offset: u64,
    ) -> Result<Option<Ingest>> {
        let blob_path = self.blob_path(digest)?;
        let (data_path, meta_path) = self.ingest_paths(&lock.ref_);
        if blob_path.is_file() {
            remove_quietly(&data_path);
            remove_quietly(&meta_path);
            return Ok(None);
        }
        let held = match read_meta(&meta_path) {
            Some((d, s)) if d == digest && s == size => {
                fs::metadata(&data_path).map(|m| m.len()).unwrap_or(0)
            }
            Some((d, s)) if offset != 0 => {
                return Err(ExportError::conflict(
                    "offset",
                    format!(
                        "upload ref {:?} holds {d} of {s} bytes, not {digest} of {size} bytes: \
                         start over at offset 0",
                        lock.ref_
                    ),
                ));
            }
            _ => 0,
        };
        if offset != 0 && offset != held {
            return Err(ExportError::conflict(
                "offset",
                format!(
                    "offset {offset} does not match the {held} bytes held for upload ref {:?}",
                    lock.ref_
                ),
            ));
        }
        if offset > size {
            return Err(ExportError::invalid(
                "offset",
                format!("offset {offset} is past the blob size {size}"),
            ));
        }
        let mut hasher = Sha256::new();
        if offset == 0 {
            write_whole(&meta_path, format!("{digest} {size}\n").as_bytes())?;
        } else {
            let mut file = File::open(&data_path)?;
            ingest::hash_prefix(&mut file, offset, &mut hasher)?;
        }
        Ok(Some(Ingest::new(
            hasher,
            offset,
            size,
            digest.to_string(),
            ingest::Paths {
                data: data_path,
                meta: meta_path,
                blob: blob_path,
            },
        )?))
    }

    /// Stores a whole blob from a reader: a convenience over the ref-locked
    /// upload path, used with the digest as the ref. Returns false when the
    /// blob already existed.
    pub fn put(&self, digest: &str, size: u64, mut src: impl Read) -> Result<bool> {
        let lock = self.try_lock(digest).ok_or_else(|| {
            ExportError::new(
                ErrorKind::Unavailable,
                format!("upload ref {digest:?} is locked by another writer"),
            )
        })?;
        let Some(mut ingest) = self.begin_write(&lock, digest, size, 0)? else {
            return Ok(false);
        };
        let mut buf = vec![0u8; HASH_BUF];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ingest.write(bytes::Bytes::copy_from_slice(&buf[..n]))?;
        }
        ingest.commit()?;
        Ok(true)
    }

    /// Removes partial uploads nothing has written to for `max_age`, so that
    /// abandoned uploads do not fill the state directory. An upload in
    /// progress writes at least every `--stream-idle-timeout`, and no request
    /// outlives `--request-timeout`, so a larger age never removes a live one.
    pub fn expire_uploads(&self, max_age: std::time::Duration) -> io::Result<usize> {
        let dir = self.root.join("ingest");
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".data"))
                .map(str::to_string)
            else {
                continue;
            };
            // A file gone since the listing (committed, say) is not an error.
            let Ok(modified) = fs::metadata(&path).and_then(|m| m.modified()) else {
                continue;
            };
            let age = now.duration_since(modified).unwrap_or_default();
            if age >= max_age {
                tracing::info!(path = %path.display(), ?age, "removing an abandoned partial upload");
                remove_quietly(&path);
                remove_quietly(&dir.join(format!("{key}.meta")));
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn ingest_paths(&self, ref_: &str) -> (PathBuf, PathBuf) {
        let key = hex::encode(Sha256::digest(ref_.as_bytes()));
        let dir = self.root.join("ingest");
        (
            dir.join(format!("{key}.data")),
            dir.join(format!("{key}.meta")),
        )
    }
}

impl BlobSource for Store {
    fn open(&self, digest: &str) -> io::Result<Box<dyn Read + Send>> {
        let path = self
            .blob_path(digest)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.message))?;
        Ok(Box::new(crate::direct_io::open_sequential(&path)?))
    }

    fn size(&self, digest: &str) -> io::Result<Option<u64>> {
        let path = self
            .blob_path(digest)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.message))?;
        Ok(Some(std::fs::metadata(path)?.len()))
    }
}

/// The write lock of one upload ref.
pub struct RefLock {
    active: Arc<Mutex<HashSet<String>>>,
    ref_: String,
}

impl RefLock {
    pub fn ref_name(&self) -> &str {
        &self.ref_
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active.remove(&self.ref_);
    }
}

fn read_meta(path: &Path) -> Option<(String, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let (digest, size) = text.trim_end().split_once(' ')?;
    Some((digest.to_string(), size.parse().ok()?))
}

/// Writes a small file so that a crash leaves it absent or complete.
fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

pub(crate) fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests;
