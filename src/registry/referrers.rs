//! Referrers: the `GET /v2/<name>/referrers/<digest>` API and, for
//! registries without it, the fallback tag `<alg>-<hex>` whose index lists
//! the manifests that name the digest as their subject. The fallback index
//! is extended as [`super::tag_merge`] extends tags several writers share.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde_json::Value;
use tracing::debug;

use super::auth::pull_scope;
use super::error::{RegistryError, Result};
use super::manifests::{media_type_of, MAX_MANIFEST};
use super::tag_merge::{Extended, SettleClock, TagExtension};
use super::{check_digest, Call, RegistryClient};
use crate::json::{self, Object};
use crate::oci::{self, Descriptor};
use crate::options::ReferrersFallback;

/// The fallback tag of a digest: `<alg>-<hex>`, the algorithm cut to 32
/// characters and the hex to 64, anything outside `[a-zA-Z0-9_.-]` as `-`.
pub fn fallback_tag(digest: &str) -> String {
    let (alg, hex) = digest.split_once(':').unwrap_or(("", digest));
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .take(max)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("{}-{}", clean(alg, 32), clean(hex, 64))
}

/// The descriptor a referrers index lists for a manifest: its media type,
/// digest and size, its `artifactType` (else its config's media type), and
/// all of its annotations.
pub fn referrer_descriptor(desc: &Descriptor, manifest: &[u8]) -> Result<Descriptor> {
    let v: Value = serde_json::from_slice(manifest)
        .map_err(|e| RegistryError::Invalid(format!("manifest {}: {e}", desc.digest)))?;
    let mut d = Descriptor::new(&desc.media_type, desc.digest.clone(), desc.size);
    d.artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| v.pointer("/config/mediaType").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    if let Some(a) = v.get("annotations").and_then(Value::as_object) {
        for (k, val) in a {
            if let Some(s) = val.as_str() {
                d.annotations.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(d)
}

/// A manifest put into a repository that names a subject: its descriptor
/// and bytes, and the subject's digest as the image's model has it (the
/// push knows what it built or read; the bytes are not parsed for it).
#[derive(Clone, Copy)]
pub struct Referrer<'a> {
    pub desc: &'a Descriptor,
    pub bytes: &'a [u8],
    pub subject: &'a str,
}

/// The digests an index lists.
pub fn listed_digests(index: &[u8]) -> Result<Vec<String>> {
    let v: Value = serde_json::from_slice(index)
        .map_err(|e| RegistryError::Invalid(format!("referrers index: {e}")))?;
    Ok(v.get("manifests")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|d| d.get("digest").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// The index with `add` appended (deduplicated by digest); None when every
/// descriptor is listed already. Existing entries are kept as they are.
pub fn merge(existing: Option<&[u8]>, add: &[Descriptor]) -> Result<Option<Vec<u8>>> {
    let mut entries: Vec<String> = Vec::new();
    let mut have: Vec<String> = Vec::new();
    if let Some(bytes) = existing {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Invalid(format!("referrers index: {e}")))?;
        for m in v
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(d) = m.get("digest").and_then(Value::as_str) {
                if have.iter().any(|h| h == d) {
                    continue;
                }
                have.push(d.to_string());
            }
            entries
                .push(serde_json::to_string(m).map_err(|e| RegistryError::Invalid(e.to_string()))?);
        }
    }
    let before = entries.len();
    for d in add {
        if !have.contains(&d.digest) {
            have.push(d.digest.clone());
            entries.push(d.to_json());
        }
    }
    if entries.len() == before && existing.is_some() {
        return Ok(None);
    }
    let index = Object::new()
        .int("schemaVersion", 2)
        .str("mediaType", oci::MT_OCI_INDEX)
        .raw("manifests", &json::array(entries))
        .finish();
    Ok(Some(json::pretty(&index).into_bytes()))
}

impl RegistryClient {
    /// The referrers index from the referrers API, or None when the registry
    /// does not offer the API.
    pub async fn referrers(&self, repo: &str, digest: &str) -> Result<Option<Bytes>> {
        self.referrers_scoped(repo, digest, &pull_scope(repo)).await
    }

    async fn referrers_scoped(
        &self,
        repo: &str,
        digest: &str,
        scope: &str,
    ) -> Result<Option<Bytes>> {
        check_digest(self.host(), digest)?;
        let resp = self
            .request_whole(
                Call {
                    method: Method::GET,
                    url: self.url(&format!("/v2/{repo}/referrers/{digest}")),
                    scope,
                    headers: vec![(ACCEPT, HeaderValue::from_static(oci::MT_OCI_INDEX))],
                    body: Bytes::new(),
                },
                MAX_MANIFEST,
            )
            .await?;
        if resp.status != StatusCode::OK {
            return Ok(None);
        }
        let content_type = resp.header(&CONTENT_TYPE).unwrap_or_default();
        let body = resp.body;
        let is_index = content_type.starts_with(oci::MT_OCI_INDEX)
            || media_type_of(&body).as_deref() == Some(oci::MT_OCI_INDEX);
        Ok(is_index.then_some(body))
    }

    /// True when the registry answers the referrers API for `repo`.
    pub async fn supports_referrers(&self, repo: &str, digest: &str) -> Result<bool> {
        self.supports_referrers_scoped(repo, digest, &pull_scope(repo))
            .await
    }

    /// [`Self::supports_referrers`] asked with the token of `scope` (a
    /// push's, so that asking before the push fetches no token of its own).
    pub async fn supports_referrers_scoped(
        &self,
        repo: &str,
        digest: &str,
        scope: &str,
    ) -> Result<bool> {
        Ok(self.referrers_scoped(repo, digest, scope).await?.is_some())
    }

    /// The fallback tag's index for `subject`, or None when there is none.
    pub async fn fallback_referrers(&self, repo: &str, subject: &str) -> Result<Option<Bytes>> {
        Ok(self
            .get_manifest(repo, &fallback_tag(subject))
            .await?
            .map(|m| m.bytes))
    }

    /// Makes the manifests that name a subject findable as its referrers,
    /// once they are in `repo`: nothing more when the registry indexed them
    /// itself (`indexed`: it answered `OCI-Subject`) or answers the
    /// referrers API, else (or always, by `policy`) each subject's fallback
    /// tag lists them. Returns the fallback tags written.
    pub async fn maintain_referrers(
        &self,
        repo: &str,
        referrers: &[Referrer<'_>],
        indexed: bool,
        policy: ReferrersFallback,
    ) -> Result<Vec<String>> {
        let by_subject = by_subject(referrers)?;
        let Some(first) = by_subject.keys().next() else {
            return Ok(Vec::new());
        };
        if !self.fallback_wanted(repo, first, indexed, policy).await? {
            return Ok(Vec::new());
        }
        // Each subject has a tag of its own: they are written at once and
        // wait the same settle delay.
        let clock = SettleClock::start();
        futures_util::future::try_join_all(by_subject.iter().map(|(subject, add)| async move {
            self.extend_tag(&fallback_extension(repo, subject, add), clock)
                .await
        }))
        .await?;
        Ok(by_subject.keys().map(|s| fallback_tag(s)).collect())
    }

    /// Whether the referrers of `repo` need fallback tags: as `policy` says,
    /// and by default unless the registry indexed the subjects itself
    /// (`indexed`) or answers the referrers API for `probe` (a subject).
    pub async fn fallback_wanted(
        &self,
        repo: &str,
        probe: &str,
        indexed: bool,
        policy: ReferrersFallback,
    ) -> Result<bool> {
        let write = match policy {
            ReferrersFallback::Never => false,
            ReferrersFallback::Always => true,
            ReferrersFallback::Auto => !indexed && !self.supports_referrers(repo, probe).await?,
        };
        debug!(repo, indexed, write, "referrers");
        Ok(write)
    }
}

/// The referrers by subject, as their fallback tags list them.
pub fn by_subject<'a>(referrers: &[Referrer<'a>]) -> Result<BTreeMap<&'a str, Vec<Descriptor>>> {
    let mut by_subject: BTreeMap<&str, Vec<Descriptor>> = BTreeMap::new();
    for r in referrers {
        by_subject
            .entry(r.subject)
            .or_default()
            .push(referrer_descriptor(r.desc, r.bytes)?);
    }
    Ok(by_subject)
}

/// The extension of `subject`'s fallback tag in `repo` that lists `add`,
/// keeping what the tag lists already.
pub fn fallback_extension<'a>(
    repo: &'a str,
    subject: &str,
    add: &'a [Descriptor],
) -> TagExtension<'a> {
    let extend = move |current: Option<&[u8]>| -> Result<Option<Extended>> {
        Ok(merge(current, add)?.map(|manifest| Extended {
            manifest,
            blobs: Vec::new(),
        }))
    };
    let holds = move |index: &[u8]| -> Result<bool> {
        let listed = listed_digests(index)?;
        Ok(add.iter().all(|w| listed.contains(&w.digest)))
    };
    TagExtension {
        repo,
        tag: fallback_tag(subject),
        media_type: oci::MT_OCI_INDEX,
        extend: Box::new(extend),
        holds: Box::new(holds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags() {
        let hex = "a".repeat(64);
        assert_eq!(
            fallback_tag(&format!("sha256:{hex}")),
            format!("sha256-{hex}")
        );
        let long_alg = format!("{}+b3:{}", "x".repeat(40), "c".repeat(80));
        let t = fallback_tag(&long_alg);
        assert_eq!(t, format!("{}-{}", "x".repeat(32), "c".repeat(64)));
        assert_eq!(fallback_tag("sha512+x:ab/cd"), "sha512-x-ab-cd");
    }

    #[test]
    fn referrer_descriptors_carry_type_and_annotations() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.docker.attestation.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"annotations":{"k":"v"}}"#;
        let d = referrer_descriptor(&Descriptor::of(oci::MT_OCI_MANIFEST, m), m).unwrap();
        assert_eq!(d.artifact_type, oci::ARTIFACT_TYPE_ATTESTATION);
        assert_eq!(d.annotations["k"], "v");
        let legacy = br#"{"config":{"mediaType":"application/vnd.example.config"}}"#;
        let d = referrer_descriptor(&Descriptor::of(oci::MT_OCI_MANIFEST, legacy), legacy).unwrap();
        assert_eq!(d.artifact_type, "application/vnd.example.config");
    }

    #[test]
    fn merge_dedupes_and_keeps_existing() {
        let a = Descriptor::of(oci::MT_OCI_MANIFEST, b"a");
        let b = Descriptor::of(oci::MT_OCI_MANIFEST, b"b");
        let first = merge(None, std::slice::from_ref(&a)).unwrap().unwrap();
        assert_eq!(listed_digests(&first).unwrap(), vec![a.digest.clone()]);
        assert!(merge(Some(&first), std::slice::from_ref(&a))
            .unwrap()
            .is_none());
        let both = merge(Some(&first), &[a.clone(), b.clone()])
            .unwrap()
            .unwrap();
        assert_eq!(listed_digests(&both).unwrap(), vec![a.digest, b.digest]);
        assert_eq!(media_type_of(&both).as_deref(), Some(oci::MT_OCI_INDEX));
    }
}
