//! One upload in progress: bytes appended to its `.data` file and hashed,
//! then verified and published by [`Ingest::commit`].
//!
//! Large uploads hash on a thread of their own: the SHA-256 pass over one
//! chunk runs while the chunk is written to the file, so an upload costs the
//! slower of the two instead of their sum.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::{remove_quietly, HASH_BUF};
use crate::direct_io::DataFile;
use crate::error::{ExportError, Result};

/// Uploads at least this large hash on their own thread.
const THREAD_HASH_MIN: u64 = 8 << 20;
/// Chunks queued for the hashing thread; bounds the memory it can hold.
const HASH_QUEUE: usize = 4;

/// Where an upload's files are.
pub(super) struct Paths {
    pub data: PathBuf,
    pub meta: PathBuf,
    pub blob: PathBuf,
}

/// The running SHA-256 of an upload.
enum Hashing {
    Inline(Sha256),
    Thread {
        queue: Option<mpsc::SyncSender<Bytes>>,
        worker: Option<JoinHandle<Sha256>>,
    },
}

impl Hashing {
    fn start(state: Sha256, size: u64) -> io::Result<Hashing> {
        if size < THREAD_HASH_MIN {
            return Ok(Hashing::Inline(state));
        }
        let (queue, chunks) = mpsc::sync_channel::<Bytes>(HASH_QUEUE);
        let worker = std::thread::Builder::new()
            .name("oxport-hash".into())
            .spawn(move || {
                let mut h = state;
                for chunk in chunks {
                    h.update(&chunk);
                }
                h
            })?;
        Ok(Hashing::Thread {
            queue: Some(queue),
            worker: Some(worker),
        })
    }

    fn update(&mut self, data: &Bytes) -> io::Result<()> {
        match self {
            Hashing::Inline(h) => {
                h.update(data);
                Ok(())
            }
            // A clone of `Bytes` shares the buffer: no copy.
            Hashing::Thread { queue, .. } => queue
                .as_ref()
                .and_then(|q| q.send(data.clone()).ok())
                .ok_or_else(|| io::Error::other("the hashing thread stopped")),
        }
    }

    fn finish(&mut self) -> io::Result<String> {
        let h = match self {
            Hashing::Inline(h) => h.clone(),
            Hashing::Thread { queue, worker } => {
                queue.take();
                worker
                    .take()
                    .ok_or_else(|| io::Error::other("upload hash already taken"))?
                    .join()
                    .map_err(|_| io::Error::other("the hashing thread panicked"))?
            }
        };
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }
}

impl Drop for Hashing {
    fn drop(&mut self) {
        // Closing the queue ends the thread; the hash is not needed any more.
        if let Hashing::Thread { queue, .. } = self {
            queue.take();
        }
    }
}

/// An upload in progress. Dropping it keeps the bytes written so far, so a
/// later writer can resume; [`Ingest::commit`] verifies and publishes.
pub struct Ingest {
    file: DataFile,
    hashing: Hashing,
    written: u64,
    size: u64,
    digest: String,
    paths: Paths,
}

impl Ingest {
    /// Continues an upload whose first `written` bytes are in its data file
    /// and were hashed into `hasher`.
    pub(super) fn new(
        hasher: Sha256,
        written: u64,
        size: u64,
        digest: String,
        paths: Paths,
    ) -> Result<Ingest> {
        Ok(Ingest {
            file: DataFile::open(&paths.data, written, Some(size))?,
            hashing: Hashing::start(hasher, size.saturating_sub(written))?,
            written,
            size,
            digest,
            paths,
        })
    }

    /// Bytes held so far.
    pub fn offset(&self) -> u64 {
        self.written
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes. Data past the promised size discards the upload.
    pub fn write(&mut self, data: Bytes) -> Result<()> {
        let end = self.written + data.len() as u64;
        if end > self.size {
            self.discard();
            return Err(ExportError::invalid(
                "data",
                format!(
                    "upload of {} has more data than its size {}",
                    self.digest, self.size
                ),
            ));
        }
        self.hashing.update(&data)?;
        self.file.write(&data)?;
        self.written = end;
        Ok(())
    }

    /// Verifies size and digest, then makes the blob visible. On a mismatch
    /// the upload is discarded and the blob stays absent.
    pub fn commit(mut self) -> Result<()> {
        if self.written != self.size {
            return Err(ExportError::conflict(
                "size",
                format!(
                    "upload of {} holds {} bytes, not its size {}",
                    self.digest, self.written, self.size
                ),
            ));
        }
        let got = self.hashing.finish()?;
        if got != self.digest {
            self.discard();
            return Err(ExportError::invalid(
                "digest",
                format!("digest mismatch: expected {}, got {got}", self.digest),
            ));
        }
        fault_point("after-write");
        self.file.sync()?;
        fault_point("after-fsync");
        let paths = &self.paths;
        fs::set_permissions(&paths.data, fs::Permissions::from_mode(0o444))?;
        fs::rename(&paths.data, &paths.blob)?;
        fault_point("after-rename");
        // Make the rename itself durable before anyone is told the blob exists.
        if let Some(dir) = paths.blob.parent() {
            File::open(dir)?.sync_all()?;
        }
        fault_point("after-dir-fsync");
        remove_quietly(&paths.meta);
        Ok(())
    }

    fn discard(&mut self) {
        self.file.abandon();
        remove_quietly(&self.paths.data);
        remove_quietly(&self.paths.meta);
    }
}

/// The crash-consistency test's hook: with `OXPORT_TEST_CRASH_AT` set to a
/// step of the commit, the process dies at that step, as a power cut or a
/// SIGKILL would stop it (tests/crash_points.rs). Unset, it does nothing.
fn fault_point(step: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("OXPORT_TEST_CRASH_AT").ok());
    if at.as_deref() == Some(step) {
        std::process::abort();
    }
}

/// Hashes the first `len` bytes of a partial upload being resumed.
pub(super) fn hash_prefix(file: &mut File, len: u64, hasher: &mut Sha256) -> io::Result<()> {
    let mut limited = (&mut *file).take(len);
    let mut buf = vec![0u8; HASH_BUF];
    let mut total = 0u64;
    loop {
        let n = limited.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    if total != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upload data is shorter than its recorded offset",
        ));
    }
    Ok(())
}
