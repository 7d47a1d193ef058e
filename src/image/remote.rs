//! A registry image (`docker://REF`) as an image store.
//!
//! Manifests and blobs come through different registry calls, so the store
//! walks the manifests when it opens (root by tag or digest, then the
//! manifests an index lists) and keeps them in memory; they are small.
//! Other blobs (layers, configs, statements) are streamed on request. The
//! store's `index.json` lists the root once, named as an export names it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;

use bytes::Bytes;
use tracing::{debug, warn};

use super::bridge::Bridge;
use super::{is_index, is_manifest, parse, Image};
use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::{referrers, ClientOptions, RegistryClient};

/// How deep indexes may nest below the root.
const MAX_DEPTH: usize = 4;

/// How registry locations are reached.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// `registry.insecure`: no certificate verification, plain HTTP when
    /// the server does not speak TLS.
    pub insecure: bool,
}

/// A `docker://` reference parsed and normalised.
pub fn parse_ref(r: &str) -> Result<Reference> {
    Reference::parse(r).map_err(|e| e.context(&format!("docker://{r}")))
}

/// A client of the reference's registry, with credentials as the push uses
/// them (Docker config).
pub fn client(r: &Reference, opts: &RemoteOptions, bridge: &Bridge) -> Result<RegistryClient> {
    // The transport is built inside the runtime it will run on.
    let _entered = bridge.handle().enter();
    Ok(RegistryClient::new(
        &r.domain,
        ClientOptions {
            insecure: opts.insecure,
            ..ClientOptions::default()
        },
    )?)
}

/// Referrers of one subject and where the list came from.
#[derive(Debug, Clone)]
pub struct Listed {
    /// `referrers API` or `fallback tag <tag>`.
    pub via: String,
    pub manifests: Vec<Descriptor>,
}

pub struct RegistrySource {
    bridge: Bridge,
    client: RegistryClient,
    reference: Reference,
    root: Descriptor,
    index_json: Vec<u8>,
    /// Manifests read so far, by digest (verified by the client).
    manifests: Mutex<HashMap<String, Bytes>>,
    /// Blob sizes the registry announced (HEAD), by digest: a read of the
    /// blob is refused past them, so a JSON blob read whole stays within the
    /// size that was checked against its limit.
    announced: Mutex<HashMap<String, u64>>,
}

impl RegistrySource {
    /// Resolves `r` and reads every manifest under it.
    pub fn open(r: &str, opts: &RemoteOptions) -> Result<RegistrySource> {
        let reference = parse_ref(r)?;
        let bridge = Bridge::new()?;
        let client = client(&reference, opts, &bridge)?;
        let at = if reference.digest.is_empty() {
            reference.tag.clone()
        } else {
            reference.digest.clone()
        };
        let (c, repo, a) = (client.clone(), reference.path.clone(), at.clone());
        let fetched = bridge
            .call(async move { c.get_manifest(&repo, &a).await })??
            .ok_or_else(|| {
                ExportError::new(ErrorKind::NotFound, format!("docker://{r}: no such image"))
            })?;
        let root = fetched.descriptor.clone();
        // Named as an export names it, without the digest.
        let mut name = reference.clone();
        name.digest.clear();
        let names: Vec<Reference> = if name.tag.is_empty() {
            Vec::new()
        } else {
            vec![name]
        };
        let src = RegistrySource {
            index_json: super::files::index_json(&root, &names, &[]),
            bridge,
            client,
            reference,
            root: root.clone(),
            manifests: Mutex::new(HashMap::from([(root.digest.clone(), fetched.bytes)])),
            announced: Mutex::new(HashMap::new()),
        };
        src.walk(&root, 0)?;
        debug!(image = %src.reference.full(), root = %root.digest, manifests = src.manifests.lock().expect("manifest cache").len(), "registry image read");
        Ok(src)
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    pub fn root(&self) -> &Descriptor {
        &self.root
    }

    /// Reads the manifests an index lists (recursively); absent ones are
    /// left for the callers' checks to report.
    fn walk(&self, d: &Descriptor, depth: usize) -> Result<()> {
        if !is_index(&d.media_type) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(ExportError::invalid(
                &d.digest,
                format!("{}: indexes nest deeper than {MAX_DEPTH}", d.digest),
            ));
        }
        let Some(bytes) = self.cached(&d.digest) else {
            return Ok(());
        };
        let idx = parse::index(&bytes, &d.digest)?.value;
        for c in idx.manifests {
            if is_index(&c.media_type) || is_manifest(&c.media_type) {
                self.load(&c.digest)?;
                self.walk(&c, depth + 1)?;
            }
        }
        Ok(())
    }

    fn cached(&self, digest: &str) -> Option<Bytes> {
        self.manifests
            .lock()
            .expect("manifest cache")
            .get(digest)
            .cloned()
    }

    /// A manifest by digest, read once; None when the registry lacks it.
    pub fn load(&self, digest: &str) -> Result<Option<Bytes>> {
        if let Some(b) = self.cached(digest) {
            return Ok(Some(b));
        }
        Ok(self.fetch(digest)?.map(|(_, bytes)| bytes))
    }

    /// The manifest the tag `tag` of the image's repository names, read and
    /// kept like [`Self::load`]'s; None when there is no such tag.
    pub fn load_tag(&self, tag: &str) -> Result<Option<Descriptor>> {
        Ok(self.fetch(tag)?.map(|(d, _)| d))
    }

    /// Reads the manifest at `at` (a digest, checked by the client, or a
    /// tag) and keeps it by its digest.
    fn fetch(&self, at: &str) -> Result<Option<(Descriptor, Bytes)>> {
        let (c, repo, a) = (
            self.client.clone(),
            self.reference.path.clone(),
            at.to_string(),
        );
        let Some(m) = self
            .bridge
            .call(async move { c.get_manifest(&repo, &a).await })??
        else {
            return Ok(None);
        };
        self.manifests
            .lock()
            .expect("manifest cache")
            .insert(m.descriptor.digest.clone(), m.bytes.clone());
        Ok(Some((m.descriptor, m.bytes)))
    }

    /// The manifests that name `subject`: from the referrers API when the
    /// registry has it, else from the fallback tag (one request; the list is
    /// capped at 4 MiB). The listed manifests are not read here: a caller
    /// that needs one reads it with [`Self::load`]. None when neither lists
    /// anything.
    pub fn referrers(&self, subject: &str) -> Result<Option<Listed>> {
        let (c, repo, s) = (
            self.client.clone(),
            self.reference.path.clone(),
            subject.to_string(),
        );
        let found = self.bridge.call(async move {
            if let Some(b) = c.referrers(&repo, &s).await? {
                return Ok(Some(("referrers API".to_string(), b)));
            }
            Ok::<_, crate::registry::RegistryError>(
                c.fallback_referrers(&repo, &s)
                    .await?
                    .map(|b| (format!("fallback tag {}", referrers::fallback_tag(&s)), b)),
            )
        })??;
        let Some((via, bytes)) = found else {
            return Ok(None);
        };
        let manifests = parse::index(&bytes, &via)?.value.manifests;
        Ok(Some(Listed { via, manifests }))
    }

    /// Puts `referrers` into the image's repository: each one's blobs, its
    /// manifest by digest, then the fallback tags of their subjects when the
    /// registry indexes none of them itself. Returns the fallback tags.
    pub fn put_referrers(&self, referrers: Vec<NewReferrer>) -> Result<Vec<String>> {
        let (c, repo) = (self.client.clone(), self.reference.path.clone());
        Ok(self.bridge.call(async move {
            let mut indexed = !referrers.is_empty();
            let quiet: crate::registry::OnBytes = std::sync::Arc::new(|_| {});
            for r in &referrers {
                for (d, bytes) in &r.blobs {
                    let blob =
                        std::sync::Arc::new(crate::registry::BytesBlob(bytes.clone().into()));
                    c.push_blob(&repo, d, blob, None, quiet.clone()).await?;
                }
                let put = c
                    .put_manifest(
                        &repo,
                        &r.descriptor.digest,
                        &r.descriptor.media_type,
                        r.manifest.clone().into(),
                        None,
                    )
                    .await?;
                indexed &= put.oci_subject.is_some();
            }
            let listed: Vec<referrers::Referrer<'_>> = referrers
                .iter()
                .map(|r| referrers::Referrer {
                    desc: &r.descriptor,
                    bytes: &r.manifest,
                    subject: &r.subject,
                })
                .collect();
            c.maintain_referrers(
                &repo,
                &listed,
                indexed,
                crate::options::ReferrersFallback::Auto,
            )
            .await
        })??)
    }
}

/// A manifest to put next to an image, naming one of its manifests.
pub struct NewReferrer {
    pub descriptor: Descriptor,
    pub manifest: Vec<u8>,
    /// Its config and layers: (descriptor, bytes).
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// The digest of the manifest it names.
    pub subject: String,
}

/// A blob read that fails once the registry sends more than it announced.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
    what: String,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if buf.is_empty() || self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: the registry sent more than the {} bytes it announced",
                    self.what, self.limit
                ),
            ));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl Image for RegistrySource {
    fn index_json(&self) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(&self.index_json))
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        if let Some(b) = self.cached(digest) {
            return Some(b.len() as u64);
        }
        let (c, repo, d) = (
            self.client.clone(),
            self.reference.path.clone(),
            digest.to_string(),
        );
        match self
            .bridge
            .call(async move { c.blob_size(&repo, &d).await })
        {
            Ok(Ok(size)) => {
                if let Some(n) = size {
                    self.announced
                        .lock()
                        .expect("announced sizes")
                        .insert(digest.to_string(), n);
                }
                size
            }
            Ok(Err(e)) => {
                warn!(%digest, error = %e, "blob size unknown");
                None
            }
            Err(e) => {
                warn!(%digest, error = %e.message, "blob size unknown");
                None
            }
        }
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        if let Some(b) = self.cached(digest) {
            return Ok(Box::new(io::Cursor::new(b)));
        }
        let reader = self.bridge.blob_reader(
            self.client.clone(),
            self.reference.path.clone(),
            digest.to_string(),
        )?;
        let announced = self
            .announced
            .lock()
            .expect("announced sizes")
            .get(digest)
            .copied();
        Ok(match announced {
            Some(limit) => Box::new(Capped {
                inner: reader,
                left: limit,
                limit,
                what: format!("docker://{}@{digest}", self.reference.name()),
            }),
            None => Box::new(reader),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_stop_past_the_announced_size() {
        let capped = |data: &'static [u8], limit: u64| Capped {
            inner: io::Cursor::new(data),
            left: limit,
            limit,
            what: "docker://r/x@sha256:ab".to_string(),
        };
        let mut out = Vec::new();
        capped(b"12345", 5).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"12345");
        let err = capped(b"123456", 5)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("docker://r/x@sha256:ab")
                && err.to_string().contains("more than the 5 bytes"),
            "{err}"
        );
    }
}
