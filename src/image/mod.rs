//! Images, and existing images as `oxport convert` and `oxport inspect` read
//! them. [`Image`] is the one interface every image is read through: an
//! export's graph, a conversion's output, an archive, a layout directory and
//! a registry image alike. Exports, conversions, inspections and pushes read
//! it, and the sinks write from it.
//!
//! - [`parse`]: OCI JSON back into the [`crate::oci`] types.
//! - [`files`]: the small files of a layout (`index.json`, `oci-layout`,
//!   Docker's `manifest.json`) and their annotations.
//! - [`listing`]: the blobs an image's `index.json` reaches, for images that
//!   do not hold a list of their own.
//! - [`archive`]: an OCI layout tar (`oci-archive:PATH`), read in place.
//! - [`layout`]: an OCI layout directory (`oci:DIR[:REF]`).
//! - [`remote`]: a registry image (`docker://REF`), through [`bridge`].

pub mod archive;
pub mod bridge;
pub mod files;
pub mod layout;
pub mod listing;
pub mod parse;
pub mod remote;

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::{self, Descriptor, DigestAlgorithm};

/// The largest JSON blob (manifest, index, config, statement) read whole.
pub const MAX_JSON_BLOB: u64 = 64 << 20;

/// An image's blobs in `sha256:<hex>` order (a layout tar's order): each
/// descriptor, and its bytes when they are held in memory.
pub type Blobs<'a> = Vec<(Descriptor, Option<Cow<'a, [u8]>>)>;

/// One image: an index, and blobs by digest, streamed.
///
/// Why one trait for every kind of image: what an export writes, what a
/// conversion reads and writes, what an inspection checks and what a push
/// puts are the same thing, so a sink, a check or a push written once
/// serves them all (as go-containerregistry's writers all take one
/// `v1.Image`). The required methods are the store: `index.json` and blobs
/// by digest. The provided ones are what sinks and pushes need beyond it;
/// an image that knows more (an export's graph knows its manifests' push
/// order and subjects) says so by overriding them.
pub trait Image: Send + Sync {
    /// The layout's `index.json`.
    fn index_json(&self) -> Result<Cow<'_, [u8]>>;

    /// The size of a blob, or `None` when it is missing.
    fn blob_size(&self, digest: &str) -> Option<u64>;

    /// Streams a blob as held (not verified; see [`Verified`]). The reader
    /// owns what it needs, so a registry push can read it on another thread.
    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>>;

    /// Docker's `manifest.json`, when the image has one.
    fn manifest_json(&self) -> Result<Option<Cow<'_, [u8]>>> {
        Ok(None)
    }

    /// The `org.opencontainers.image.ref.name` that selects entries, if any.
    fn reference(&self) -> Option<&str> {
        None
    }

    /// Every blob the image holds, in digest order, with the bytes of those
    /// held in memory. By default: what `index.json` reaches, manifests and
    /// indexes read (and verified) whole, other blobs checked to be there
    /// and left to [`Image::stream`].
    fn blobs(&self) -> Result<Blobs<'_>> {
        listing::reachable(self)
    }

    /// Streams a blob that is not held in memory into `write`, which reads
    /// it to its end. By default the bytes are hashed on the way and a blob
    /// that does not match its digest fails; an image that trusts its blobs
    /// may say more of a failure instead.
    fn stream(
        &self,
        d: &Descriptor,
        write: &mut dyn FnMut(&mut dyn Read) -> io::Result<()>,
    ) -> Result<()> {
        let digest = &d.digest;
        let mut r =
            Verified::for_digest(self.open_blob(digest)?, digest).ok_or_else(|| bad_digest(d))?;
        write(&mut r).map_err(|e| ExportError::from(e).context(digest))?;
        let (actual, _) = r.finish();
        if actual != *digest {
            return Err(ExportError::new(
                ErrorKind::InvalidArgument,
                format!("{digest}: {}", BlobProblem::Digest { actual }),
            ));
        }
        Ok(())
    }

    /// The manifest or index a registry's tags name; `None` for a layout
    /// (of several images, which no registry takes whole).
    fn root(&self) -> Option<&Descriptor> {
        None
    }

    /// Every manifest and index a push puts (all held in memory), in push
    /// order: a manifest before those naming it as subject, an index after
    /// what it lists; each with its subject's digest, kept in the model and
    /// never parsed back out of the bytes. Empty without a root.
    fn manifests(&self) -> Vec<(Descriptor, Option<String>)> {
        Vec::new()
    }

    /// cosign's older signature tags (`sha256-<hex>.sig`, `.att`) a push
    /// extends, each with the manifest (held in memory) of what it adds.
    fn signature_tags(&self) -> Vec<(String, Descriptor)> {
        Vec::new()
    }
}

/// Where an image lives, as the CLI names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `oci-archive:PATH`
    Archive(PathBuf),
    /// `oci:DIR[:REF]`
    Layout {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `docker://REF`
    Registry(String),
}

impl std::str::FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("oci-archive:") {
            if path.is_empty() {
                return Err(format!("{s}: the archive path is empty"));
            }
            return Ok(ImageRef::Archive(path.into()));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = match rest.split_once(':') {
                Some((d, r)) if !r.is_empty() => (d, Some(r.to_string())),
                Some((d, _)) => (d, None),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(format!("{s}: the layout directory is empty"));
            }
            return Ok(ImageRef::Layout {
                dir: dir.into(),
                reference,
            });
        }
        if let Some(r) = s.strip_prefix("docker://") {
            if r.is_empty() {
                return Err(format!("{s}: the image reference is empty"));
            }
            return Ok(ImageRef::Registry(r.to_string()));
        }
        Err(format!(
            "unknown image location {s:?}: use oci-archive:PATH, oci:DIR[:REF] or docker://REF"
        ))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Archive(p) => write!(f, "oci-archive:{}", p.display()),
            ImageRef::Layout { dir, reference } => {
                write!(f, "oci:{}", dir.display())?;
                match reference {
                    Some(r) => write!(f, ":{r}"),
                    None => Ok(()),
                }
            }
            ImageRef::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

/// Opens an image for reading.
pub fn open(r: &ImageRef, opts: &remote::RemoteOptions) -> Result<Box<dyn Image>> {
    match r {
        ImageRef::Archive(p) => Ok(Box::new(archive::ArchiveSource::open(p)?)),
        ImageRef::Layout { dir, reference } => Ok(Box::new(layout::LayoutSource::open(
            dir,
            reference.clone(),
        )?)),
        ImageRef::Registry(r) => Ok(Box::new(remote::RegistrySource::open(r, opts)?)),
    }
}

/// What is wrong with one stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobProblem {
    Missing,
    Size {
        stored: u64,
    },
    Digest {
        actual: String,
    },
    /// The descriptor's digest is not one OCI allows (`sha256:` with 64 or
    /// `sha512:` with 128 lowercase hex digits), so the blob cannot be verified.
    BadDigest,
}

impl fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobProblem::Missing => write!(f, "blob is missing"),
            BlobProblem::Size { stored } => write!(f, "blob has {stored} bytes"),
            BlobProblem::Digest { actual } => write!(f, "blob content has digest {actual}"),
            BlobProblem::BadDigest => write!(
                f,
                "unsupported or malformed digest: OCI allows sha256 (64) and sha512 (128) lowercase hex digits"
            ),
        }
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// A reader that hashes what passes through it with a digest's algorithm.
pub struct Verified<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
}

impl<R: Read> Verified<R> {
    /// Hashes with sha256.
    pub fn new(inner: R) -> Self {
        Self::with(inner, DigestAlgorithm::Sha256)
    }

    /// Hashes with the algorithm of `digest`; `None` when it is not a digest
    /// OCI allows.
    pub fn for_digest(inner: R, digest: &str) -> Option<Self> {
        oci::digest_algorithm(digest).map(|a| Self::with(inner, a))
    }

    fn with(inner: R, alg: DigestAlgorithm) -> Self {
        let hasher = match alg {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        };
        Verified {
            inner,
            hasher,
            read: 0,
        }
    }

    /// `<algorithm>:<hex>` of the bytes read so far, and their count.
    pub fn finish(self) -> (String, u64) {
        let d = match self.hasher {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        (d, self.read)
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(&buf[..n]),
            Hasher::Sha512(h) => h.update(&buf[..n]),
        }
        self.read += n as u64;
        Ok(n)
    }
}

fn bad_digest(d: &Descriptor) -> ExportError {
    ExportError::new(
        ErrorKind::InvalidArgument,
        format!("{:?}: {}", d.digest, BlobProblem::BadDigest),
    )
}

/// Checks one blob against its descriptor, streaming it through the hash.
pub fn check_blob<I: Image + ?Sized>(src: &I, d: &Descriptor) -> Result<Option<BlobProblem>> {
    if oci::digest_algorithm(&d.digest).is_none() {
        return Ok(Some(BlobProblem::BadDigest));
    }
    let Some(stored) = src.blob_size(&d.digest) else {
        return Ok(Some(BlobProblem::Missing));
    };
    if stored != d.size {
        return Ok(Some(BlobProblem::Size { stored }));
    }
    let mut r =
        Verified::for_digest(src.open_blob(&d.digest)?, &d.digest).ok_or_else(|| bad_digest(d))?;
    io::copy(&mut r, &mut io::sink())?;
    let (actual, _) = r.finish();
    Ok((actual != d.digest).then_some(BlobProblem::Digest { actual }))
}

/// Reads a small blob whole and verifies it against its descriptor.
pub fn read_blob<I: Image + ?Sized>(src: &I, d: &Descriptor) -> Result<Vec<u8>> {
    let problem =
        |p: BlobProblem| ExportError::new(ErrorKind::InvalidArgument, format!("{}: {p}", d.digest));
    if oci::digest_algorithm(&d.digest).is_none() {
        return Err(bad_digest(d));
    }
    let stored = src
        .blob_size(&d.digest)
        .ok_or_else(|| problem(BlobProblem::Missing))?;
    if stored != d.size {
        return Err(problem(BlobProblem::Size { stored }));
    }
    if stored > MAX_JSON_BLOB {
        return Err(ExportError::new(
            ErrorKind::ResourceExhausted,
            format!(
                "{}: {stored} bytes is too large for a JSON blob (limit {MAX_JSON_BLOB})",
                d.digest
            ),
        ));
    }
    let mut buf = Vec::with_capacity(stored as usize);
    let mut r = Verified::for_digest(src.open_blob(&d.digest)?.take(stored), &d.digest)
        .ok_or_else(|| bad_digest(d))?;
    r.read_to_end(&mut buf)?;
    let (actual, n) = r.finish();
    if n != stored {
        return Err(problem(BlobProblem::Size { stored: n }));
    }
    if actual != d.digest {
        return Err(problem(BlobProblem::Digest { actual }));
    }
    Ok(buf)
}

/// Copies a blob to `out`, failing when its bytes do not match `d`.
pub fn copy_blob<I: Image + ?Sized>(src: &I, d: &Descriptor, out: &mut dyn Write) -> Result<()> {
    let mut r =
        Verified::for_digest(src.open_blob(&d.digest)?, &d.digest).ok_or_else(|| bad_digest(d))?;
    io::copy(&mut r, out)?;
    let (actual, n) = r.finish();
    if n != d.size {
        return Err(ExportError::new(
            ErrorKind::InvalidArgument,
            format!("{}: {}", d.digest, BlobProblem::Size { stored: n }),
        ));
    }
    if actual != d.digest {
        return Err(ExportError::new(
            ErrorKind::InvalidArgument,
            format!("{}: {}", d.digest, BlobProblem::Digest { actual }),
        ));
    }
    Ok(())
}

/// True for manifest-list and index media types.
pub fn is_index(media_type: &str) -> bool {
    media_type == oci::MT_OCI_INDEX || media_type == oci::MT_DOCKER_LIST
}

/// True for image manifest media types (OCI and Docker).
pub fn is_manifest(media_type: &str) -> bool {
    media_type == oci::MT_OCI_MANIFEST || media_type == oci::MT_DOCKER_MANIFEST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_parse() {
        assert_eq!(
            "oci-archive:a/b.tar".parse::<ImageRef>().unwrap(),
            ImageRef::Archive("a/b.tar".into())
        );
        assert_eq!(
            "oci:dir:v1".parse::<ImageRef>().unwrap(),
            ImageRef::Layout {
                dir: "dir".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            "oci:dir".parse::<ImageRef>().unwrap().to_string(),
            "oci:dir"
        );
        assert!("docker://".parse::<ImageRef>().is_err());
        assert!("dir".parse::<ImageRef>().is_err());
    }
}
