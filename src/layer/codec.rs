//! Streaming compression codecs and a hashing writer.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::oci;
use crate::options::Compression;

/// The compression a layer media type names.
pub fn compression_of(media_type: &str) -> Option<Compression> {
    match media_type {
        oci::MT_OCI_LAYER | oci::MT_DOCKER_LAYER => Some(Compression::Uncompressed),
        oci::MT_OCI_LAYER_GZIP | oci::MT_DOCKER_LAYER_GZIP => Some(Compression::Gzip),
        oci::MT_OCI_LAYER_ZSTD | oci::MT_DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// The layer media type for a compression, in OCI or Docker flavour.
pub fn media_type(c: Compression, oci_types: bool) -> &'static str {
    match (c, oci_types) {
        (Compression::Uncompressed, true) => oci::MT_OCI_LAYER,
        (Compression::Gzip, true) => oci::MT_OCI_LAYER_GZIP,
        (Compression::Zstd, true) => oci::MT_OCI_LAYER_ZSTD,
        (Compression::Uncompressed, false) => oci::MT_DOCKER_LAYER,
        (Compression::Gzip, false) => oci::MT_DOCKER_LAYER_GZIP,
        (Compression::Zstd, false) => oci::MT_DOCKER_LAYER_ZSTD,
    }
}

/// A reader of the uncompressed bytes of a compressed stream.
pub fn decoder<'a>(
    c: Compression,
    r: Box<dyn Read + Send + 'a>,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::Uncompressed => r,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(256 * 1024, r),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

/// A writer that compresses into `w`; `finish` flushes the trailer.
pub trait Encoder: Write {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W: Write>(W);
impl<W: Write> Write for Plain<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write> Encoder for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Encoder for super::pgzip::ParallelGz<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut w = (*self).finish()?;
        w.flush()
    }
}

impl<W: Write> Encoder for zstd::stream::write::Encoder<'static, W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut w = (*self).finish()?;
        w.flush()
    }
}

/// An encoder for `c` at `level` (the codec's default when `None`).
pub fn encoder<'a, W: Write + 'static>(
    c: Compression,
    level: Option<i64>,
    w: W,
) -> io::Result<Box<dyn Encoder + 'a>> {
    Ok(match c {
        Compression::Uncompressed => Box::new(Plain(w)),
        Compression::Gzip => {
            let level = level.map_or(flate2::Compression::default(), |l| {
                flate2::Compression::new(l.clamp(0, 9) as u32)
            });
            Box::new(super::pgzip::ParallelGz::new(w, level))
        }
        Compression::Zstd => {
            let level = level.map_or(3, |l| l.clamp(1, 22) as i32);
            let mut e = zstd::stream::write::Encoder::new(w, level)?;
            // zstd's own workers compress while this thread feeds and hashes.
            e.multithread(cores())?;
            Box::new(e)
        }
    })
}

fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Copies `r` into `w` in 1 MiB pieces: encoders do per-call work, and
/// `io::copy`'s 8 KiB pieces would multiply it. Returns the bytes copied.
pub fn copy_large(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Counts and hashes what passes through to the inner writer.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// (`sha256:<hex>`, bytes written, inner writer).
    pub fn finish(self) -> (String, u64, W) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A shared handle to a hashing writer, so that the hash survives the
/// encoder that owns the writer.
pub struct Shared<W>(pub std::sync::Arc<std::sync::Mutex<HashWriter<W>>>);

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("hash writer lock").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().expect("hash writer lock").flush()
    }
}
