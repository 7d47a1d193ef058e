//! Manifests and tags: resolve (HEAD), get, put (the exact bytes, with their
//! media type as `Content-Type`), and the tag list.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH, LINK};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;

use super::auth::{pull_scope, push_scope};
use super::error::{RegistryError, Result};
use super::{check_reference, Call, RegistryClient};
use crate::oci::{self, Descriptor};

/// Manifests larger than this are refused when read.
pub const MAX_MANIFEST: usize = 4 << 20;

/// Every manifest media type oxport reads.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");

/// A manifest as read from a registry.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type (from the content, else `Content-Type`), digest and size.
    pub descriptor: Descriptor,
    pub bytes: Bytes,
    /// The `ETag`, for a conditional write back (`If-Match`).
    pub etag: Option<String>,
}

/// What a manifest PUT answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: String,
    /// The `OCI-Subject` header: the registry indexed the subject (referrers API).
    pub oci_subject: Option<String>,
}

fn header(resp: &http::Response<Incoming>, name: &HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// The `mediaType` field of a manifest, if it has one.
pub fn media_type_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(String::from)
}

impl RegistryClient {
    fn manifest_call<'a>(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
        scope: &'a str,
    ) -> Call<'a> {
        Call {
            method,
            url: self.url(&format!("/v2/{repo}/manifests/{reference}")),
            scope,
            headers: vec![(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS))],
            body: Bytes::new(),
        }
    }

    /// Resolves a tag or digest to a descriptor; None when absent.
    pub async fn resolve(&self, repo: &str, reference: &str) -> Result<Option<Descriptor>> {
        check_reference(self.host(), reference)?;
        let scope = pull_scope(repo);
        let resp = self
            .request(self.manifest_call(Method::HEAD, repo, reference, &scope))
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let digest = header(&resp, &DOCKER_CONTENT_DIGEST);
                let media_type = header(&resp, &CONTENT_TYPE).unwrap_or_default();
                let size = header(&resp, &http::header::CONTENT_LENGTH)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                match digest {
                    Some(d) => Ok(Some(Descriptor::new(&media_type, d, size))),
                    // Without the digest header, the content tells.
                    None => Ok(self
                        .get_manifest(repo, reference)
                        .await?
                        .map(|m| m.descriptor)),
                }
            }
            _ => Err(Self::unexpected(format!("HEAD manifest {repo}:{reference}"), resp).await),
        }
    }

    /// Reads a manifest by tag or digest; None when absent. A digest
    /// reference is verified against the content.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<FetchedManifest>> {
        self.get_manifest_scoped(repo, reference, &pull_scope(repo))
            .await
    }

    pub(crate) async fn get_manifest_scoped(
        &self,
        repo: &str,
        reference: &str,
        scope: &str,
    ) -> Result<Option<FetchedManifest>> {
        check_reference(self.host(), reference)?;
        let resp = self
            .request_whole(
                self.manifest_call(Method::GET, repo, reference, scope),
                MAX_MANIFEST,
            )
            .await?;
        match resp.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let content_type = resp.header(&CONTENT_TYPE).unwrap_or_default();
                let etag = resp.header(&ETAG);
                let bytes = resp.body;
                let digest = oci::digest_of(&bytes);
                if reference.contains(':') && reference != digest {
                    return Err(RegistryError::Invalid(format!(
                        "manifest {repo}@{reference}: content has digest {digest}"
                    )));
                }
                let media_type = media_type_of(&bytes).unwrap_or(content_type);
                Ok(Some(FetchedManifest {
                    descriptor: Descriptor::new(&media_type, digest, bytes.len() as u64),
                    bytes,
                    etag,
                }))
            }
            _ => Err(resp.unexpected(format!("GET manifest {repo}:{reference}"))),
        }
    }

    /// Puts a manifest under a tag or its digest, byte for byte. With
    /// `if_match`, the write only happens when the current ETag matches.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        if_match: Option<&str>,
    ) -> Result<PushedManifest> {
        check_reference(self.host(), reference)?;
        let scope = push_scope(repo, None);
        let mut headers = vec![(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| RegistryError::Invalid(format!("bad media type {media_type:?}")))?,
        )];
        if let Some(tag) = if_match {
            if let Ok(v) = HeaderValue::from_str(tag) {
                headers.push((IF_MATCH, v));
            }
        }
        let digest = oci::digest_of(&bytes);
        let resp = self
            .request_whole(
                Call {
                    method: Method::PUT,
                    url: self.url(&format!("/v2/{repo}/manifests/{reference}")),
                    scope: &scope,
                    headers,
                    body: bytes,
                },
                1 << 16,
            )
            .await?;
        match resp.status {
            StatusCode::PRECONDITION_FAILED => Err(RegistryError::PreconditionFailed {
                what: format!("{}/{repo}:{reference}", self.host()),
            }),
            StatusCode::BAD_REQUEST if names_unknown_content(&resp.body) => {
                Err(RegistryError::ManifestBlobUnknown {
                    what: format!("PUT manifest {}/{repo}:{reference}", self.host()),
                    detail: super::error::body_detail(&resp.body),
                })
            }
            s if s.is_success() => {
                let oci_subject = resp.header(&OCI_SUBJECT);
                if let Some(d) = resp.header(&DOCKER_CONTENT_DIGEST) {
                    if d != digest {
                        return Err(RegistryError::Invalid(format!(
                            "{}/{repo}:{reference}: the registry stored {d}, not {digest}",
                            self.host()
                        )));
                    }
                }
                Ok(PushedManifest {
                    digest,
                    oci_subject,
                })
            }
            _ => Err(resp.unexpected(format!("PUT manifest {repo}:{reference}"))),
        }
    }

    /// Every tag of a repository (following `Link` pagination).
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        let scope = pull_scope(repo);
        let mut url = self.url(&format!("/v2/{repo}/tags/list"));
        let mut tags = Vec::new();
        for _ in 0..1000 {
            let resp = self
                .request_whole(
                    Call {
                        method: Method::GET,
                        url: url.clone(),
                        scope: &scope,
                        headers: Vec::new(),
                        body: Bytes::new(),
                    },
                    MAX_MANIFEST,
                )
                .await?;
            if resp.status == StatusCode::NOT_FOUND {
                return Ok(tags);
            }
            if !resp.status.is_success() {
                return Err(resp.unexpected(format!("list tags of {repo}")));
            }
            let next = resp.header(&LINK).and_then(|l| next_link(&l));
            let v: serde_json::Value = serde_json::from_slice(&resp.body)
                .map_err(|e| RegistryError::Invalid(format!("tags of {repo}: {e}")))?;
            if let Some(list) = v.get("tags").and_then(|t| t.as_array()) {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(String::from)));
            }
            match next {
                Some(n) => url = self.resolve_location(&n),
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }
}

/// True when a 400 answer to a manifest PUT says the manifest names content
/// the repository lacks (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UNKNOWN`,
/// `MANIFEST_UNKNOWN` for an index child).
fn names_unknown_content(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    v.get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("code").and_then(|c| c.as_str()))
        .any(|c| {
            matches!(
                c,
                "MANIFEST_BLOB_UNKNOWN" | "BLOB_UNKNOWN" | "MANIFEST_UNKNOWN"
            )
        })
}

/// The target of `Link: </v2/...?n=100&last=x>; rel="next"`.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_media_types() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            media_type_of(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#
            )
            .as_deref(),
            Some(oci::MT_OCI_INDEX)
        );
    }
}
