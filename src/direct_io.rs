//! Files written around the page cache (`O_DIRECT`) where the file system
//! allows it: upload data that becomes committed blobs, and re-compressed
//! layers in scratch space. The scratch layers are read back once, through
//! the page cache with each batch dropped again right after it is read
//! ([`BlobReader`]). Committed blobs are read through the page cache and
//! left there, because they are read again ([`open_sequential`]).
//!
//! Reads are not direct: a direct read waits for the disk one batch at a
//! time, while a buffered read gets the kernel's read-ahead, and a push of
//! 1 GiB read directly was measurably slower than BuildKit's push of the
//! same image (`benches/RESULTS.md`, row 8). `POSIX_FADV_DONTNEED` after
//! each batch keeps the pages a read uses down to the read-ahead window.
//!
//! Why: through the page cache every byte first needs a newly allocated
//! page, which is the slowest part of an upload on many virtual machines,
//! and those pages are charged to the server's memory cgroup, so a sidecar
//! with a small memory limit would spend its time in reclaim and dirty-page
//! throttling. Direct writes go from one reused, aligned buffer to the disk.
//!
//! Direct I/O needs block-aligned offsets, lengths and memory, so bytes are
//! gathered into batches that start on a block boundary. The partial block
//! at the end goes through an ordinary handle; a resumed upload reads that
//! block back and rewrites it whole. Files under 4 MiB, and file systems
//! that refuse `O_DIRECT` (tmpfs before Linux 6.6, some FUSE and network
//! file systems), get ordinary I/O.
//!
//! A module of its own, not part of the store: layer export writes its
//! converted layers the same way, and should not depend on the store for it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Alignment of offsets, lengths and memory; covers 512-byte and 4 KiB
/// logical blocks.
const ALIGN: usize = 4096;
/// Bytes gathered before one direct write.
const BATCH: usize = 1 << 20;
/// Files smaller than this use the page cache: for them a 1 MiB aligned
/// batch and a read-ahead thread cost more than they save.
const DIRECT_MIN: u64 = 4 << 20;

/// An append-only file written in aligned direct batches.
pub struct DataFile {
    path: PathBuf,
    file: File,
    /// Pending bytes while direct I/O works; `None` after a fallback.
    direct: Option<Batch>,
    /// The file offset where the pending bytes (or, without a batch, the
    /// next write) go.
    base: u64,
    /// Bytes were written since the last flush.
    unflushed: bool,
}

/// Bytes waiting for a direct write, in an aligned region of `buf`.
struct Batch {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        let buf = vec![0u8; BATCH + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Batch { buf, start, len: 0 }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl DataFile {
    /// Opens (creating when needed) the data file of an upload that holds
    /// `held` bytes, ready to append after them. `size` is the final size
    /// when known; small files are written plainly.
    pub fn open(path: &Path, held: u64, size: Option<u64>) -> io::Result<DataFile> {
        Self::open_with(path, held, size.is_none_or(|s| s >= DIRECT_MIN))
    }

    fn open_with(path: &Path, held: u64, try_direct: bool) -> io::Result<DataFile> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        let direct = match try_direct {
            true => opts.clone().custom_flags(libc::O_DIRECT).open(path),
            false => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let (file, direct) = match direct {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (opts.open(path)?, false),
            Err(e) => return Err(e),
        };
        file.set_len(held)?;
        let mut data = DataFile {
            path: path.to_path_buf(),
            file,
            direct: direct.then(Batch::new),
            base: held,
            unflushed: false,
        };
        if let Some(batch) = &mut data.direct {
            // Start on a block boundary: the partial block is rewritten whole.
            let partial = (held % ALIGN as u64) as usize;
            if partial > 0 {
                let at = held - partial as u64;
                File::open(path)?
                    .read_exact_at(&mut batch.buf[batch.start..batch.start + partial], at)?;
                batch.len = partial;
                data.base = at;
            }
        }
        Ok(data)
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.unflushed |= !data.is_empty();
        while !data.is_empty() {
            let Some(batch) = &mut self.direct else {
                self.file.write_all_at(data, self.base)?;
                self.base += data.len() as u64;
                return Ok(());
            };
            let n = data.len().min(BATCH - batch.len);
            let at = batch.start + batch.len;
            batch.buf[at..at + n].copy_from_slice(&data[..n]);
            batch.len += n;
            data = &data[n..];
            if batch.len == BATCH {
                self.write_head(BATCH)?;
            }
        }
        Ok(())
    }

    /// Writes the first `n` pending bytes (whole blocks) directly and keeps
    /// the rest pending. When the file system refuses the direct write, it
    /// switches to ordinary writes and writes everything pending.
    fn write_head(&mut self, n: usize) -> io::Result<()> {
        let Some(batch) = &mut self.direct else {
            return Ok(());
        };
        let head = &batch.buf[batch.start..batch.start + n];
        match self.file.write_all_at(head, self.base) {
            Ok(()) => {
                batch
                    .buf
                    .copy_within(batch.start + n..batch.start + batch.len, batch.start);
                batch.len -= n;
                self.base += n as u64;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %self.path.display(), "direct writes refused; using the page cache");
                self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
                if let Some(batch) = self.direct.take() {
                    self.file.write_all_at(batch.pending(), self.base)?;
                    self.base += batch.len as u64;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes what is pending, the last partial block through an ordinary
    /// handle. The file then holds every byte written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.unflushed) {
            return Ok(());
        }
        let whole = match &self.direct {
            Some(batch) => batch.len - batch.len % ALIGN,
            None => return Ok(()),
        };
        if whole > 0 {
            self.write_head(whole)?;
        }
        if let Some(batch) = &self.direct {
            if batch.len > 0 {
                // The block stays pending: the next batch rewrites it whole.
                let plain = OpenOptions::new().write(true).open(&self.path)?;
                plain.write_all_at(batch.pending(), self.base)?;
            }
        }
        Ok(())
    }

    /// Drops what is pending: the file is being removed.
    pub fn abandon(&mut self) {
        self.unflushed = false;
        if let Some(batch) = &mut self.direct {
            batch.len = 0;
        }
    }

    /// Makes every byte written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_all()
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        // An upload cut short keeps its bytes for a resume.
        if let Err(e) = self.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "could not keep the bytes of an interrupted upload");
        }
    }
}

impl io::Write for DataFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        DataFile::write(self, data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        DataFile::flush(self)
    }
}

/// Batches read ahead of the reader, so the disk works while the export
/// sends the previous ones.
const READ_AHEAD: usize = 2;

/// Reads a committed blob: a thread reads batches ahead with the kernel's
/// read-ahead and drops each from the page cache once read; the counterpart
/// of [`DataFile`]. Small blobs are read plainly.
pub struct BlobReader {
    path: PathBuf,
    source: Source,
    /// Bytes handed out so far.
    consumed: u64,
}

enum Source {
    Plain(File),
    Ahead {
        /// Full batches in order; `None` marks the end of the file.
        full: mpsc::Receiver<io::Result<Option<Batch>>>,
        empty: mpsc::SyncSender<Batch>,
        /// The batch being handed out, and how much of it is.
        current: Option<(Batch, usize)>,
    },
    End,
}

impl BlobReader {
    pub fn open(path: &Path) -> io::Result<BlobReader> {
        let plain = |file| BlobReader {
            path: path.to_path_buf(),
            source: Source::Plain(file),
            consumed: 0,
        };
        let file = File::open(path)?;
        if file.metadata()?.len() < DIRECT_MIN {
            return Ok(plain(file));
        }
        // A handle of its own for the thread: buffered, with the kernel's
        // read-ahead; each batch leaves the page cache once read.
        let ahead = File::open(path)?;
        let (full_tx, full) = mpsc::sync_channel(READ_AHEAD);
        let (empty, empty_rx) = mpsc::sync_channel(READ_AHEAD + 1);
        std::thread::Builder::new()
            .name("oxport-read".into())
            .spawn(move || read_ahead(&ahead, &full_tx, &empty_rx))?;
        Ok(BlobReader {
            path: path.to_path_buf(),
            source: Source::Ahead {
                full,
                empty,
                current: None,
            },
            consumed: 0,
        })
    }

    /// Continues through the page cache from where the reader stands.
    fn fall_back(&mut self) -> io::Result<()> {
        let mut file = File::open(&self.path)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(self.consumed))?;
        self.source = Source::Plain(file);
        Ok(())
    }
}

/// Opens a committed blob for one sequential read, through the page cache.
///
/// Why the pages stay: a blob is read again and again (every push and export
/// of an image that holds it), as a daemon's content store is; the pages a
/// read leaves are clean, so the kernel reclaims them without I/O when
/// memory is short, and they count towards no process's resident memory.
/// Dropping them after each read made every push of a 1 GiB image read it
/// from disk again (`benches/RESULTS.md`, row 8). The sequential advice
/// doubles the kernel's read-ahead for the file.
pub fn open_sequential(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    advise(&file, 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    Ok(file)
}

/// `posix_fadvise` on `len` bytes of `file` from `offset` (0: to the end).
/// Advice only: a file system that refuses it reads the same bytes.
fn advise(file: &File, offset: u64, len: u64, advice: libc::c_int) {
    // SAFETY: posix_fadvise only advises the kernel about pages of this open
    // descriptor; it touches no memory of ours.
    let rc = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(file),
            offset as libc::off_t,
            len as libc::off_t,
            advice,
        )
    };
    if rc != 0 {
        tracing::debug!(errno = rc, advice, "posix_fadvise refused");
    }
}

/// The read-ahead thread: sends full batches in order, then `None` at the
/// end of the file. It stops when the reader goes away.
fn read_ahead(
    file: &File,
    full: &mpsc::SyncSender<io::Result<Option<Batch>>>,
    empty: &mpsc::Receiver<Batch>,
) {
    let mut fresh = READ_AHEAD + 1;
    let mut next = 0u64;
    loop {
        let mut batch = if fresh > 0 {
            fresh -= 1;
            Batch::new()
        } else {
            match empty.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        };
        let region = &mut batch.buf[batch.start..batch.start + BATCH];
        let n = match file.read_at(region, next) {
            Ok(n) => n,
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        };
        if n == 0 {
            let _ = full.send(Ok(None));
            return;
        }
        batch.len = n;
        // The bytes are in the batch now: their pages may go, so a large
        // blob does not fill the page cache charged to the server.
        advise(file, next, n as u64, libc::POSIX_FADV_DONTNEED);
        next += n as u64;
        if full.send(Ok(Some(batch))).is_err() {
            return;
        }
        // Only the end of the file gives a read that is not whole blocks.
        if n % ALIGN != 0 {
            let _ = full.send(Ok(None));
            return;
        }
    }
}

impl io::Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let (full, empty, current) = match &mut self.source {
            Source::Plain(file) => {
                let n = io::Read::read(file, out)?;
                self.consumed += n as u64;
                return Ok(n);
            }
            Source::End => return Ok(0),
            Source::Ahead {
                full,
                empty,
                current,
            } => (full, empty, current),
        };
        if current.as_ref().is_none_or(|(b, at)| *at == b.len) {
            if let Some((used, _)) = current.take() {
                let _ = empty.try_send(used);
            }
            match full.recv() {
                Ok(Ok(Some(batch))) => *current = Some((batch, 0)),
                Ok(Ok(None)) => {
                    self.source = Source::End;
                    return Ok(0);
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // The file system refused the direct read after all.
                    self.fall_back()?;
                    return self.read(out);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("the read-ahead thread stopped")),
            }
        }
        let Some((batch, at)) = current else {
            return Ok(0);
        };
        let n = out.len().min(batch.len - *at);
        let from = batch.start + *at;
        out[..n].copy_from_slice(&batch.buf[from..from + n]);
        *at += n;
        self.consumed += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn odd_sized_writes_and_resumes_keep_every_byte() {
        // Direct where the file system allows it, and the plain fallback.
        for try_direct in [true, false] {
            odd_sized_writes_and_resumes(try_direct);
        }
    }

    fn odd_sized_writes_and_resumes(try_direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.data");
        let data = pattern(3 * BATCH + 5000);
        let mut f = DataFile::open_with(&path, 0, try_direct).unwrap();
        assert!(try_direct || f.direct.is_none());
        for part in data[..BATCH + 777].chunks(100_003) {
            f.write(part).unwrap();
        }
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), &data[..BATCH + 777]);
        // Resume from an unaligned offset, flush midway, then finish.
        let mut f = DataFile::open_with(&path, (BATCH + 777) as u64, try_direct).unwrap();
        f.write(&data[BATCH + 777..2 * BATCH]).unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), &data[..2 * BATCH]);
        f.write(&data[2 * BATCH..]).unwrap();
        f.sync().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn blob_reader_reads_every_byte_in_any_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z");
        let big = DIRECT_MIN as usize;
        // Unaligned end, an end on a batch boundary, and a small blob.
        for size in [big + 2 * BATCH + 123, big + BATCH, 1000] {
            let data = pattern(size);
            std::fs::write(&path, &data).unwrap();
            let mut got = Vec::new();
            let mut r = BlobReader::open(&path).unwrap();
            let mut buf = vec![0u8; 300_001];
            loop {
                let n = io::Read::read(&mut r, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), data.len());
            assert!(got == data, "bytes differ for size {size}");
            assert_eq!(
                io::Read::read(&mut r, &mut buf).unwrap(),
                0,
                "read after the end"
            );
        }
    }

    #[test]
    fn reopening_cuts_what_was_beyond_the_held_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.data");
        std::fs::write(&path, pattern(10_000)).unwrap();
        let mut f = DataFile::open(&path, 5000, None).unwrap();
        f.write(b"end").unwrap();
        drop(f);
        let mut want = pattern(5000);
        want.extend_from_slice(b"end");
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// Pages of `path` in the page cache (`mincore` over a mapping).
    fn resident_pages(path: &Path) -> usize {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let page = 4096;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: a private read-only mapping of a file we opened, unmapped
        // before return; mincore writes one byte per page into `vec`.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
            libc::munmap(addr, len);
        }
        vec.iter().filter(|b| **b & 1 == 1).count()
    }

    #[test]
    fn a_read_blob_leaves_no_pages_in_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.data");
        let data = pattern(32 << 20);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: advice about pages of an open descriptor.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        let before = resident_pages(&path);
        let mut got = Vec::new();
        io::Read::read_to_end(&mut BlobReader::open(&path).unwrap(), &mut got).unwrap();
        assert!(got == data, "bytes differ");
        let after = resident_pages(&path);
        // Without the advice all 8192 pages would stay; allow the kernel's
        // read-ahead window (at most 2 MiB) beyond what was dropped.
        assert!(
            after <= 512,
            "{after} pages of 8192 stayed in the page cache (before: {before})"
        );
    }
}
