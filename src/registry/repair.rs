//! Manifest PUTs that repair what the repository lacks.
//!
//! Concurrent pushers of shared content to one repository race inside the
//! registry: a blob HEAD may say "present" while another pusher's upload of
//! the same blob is still rewriting the repository's link to it, and the
//! manifest PUT that follows then answers `400 MANIFEST_BLOB_UNKNOWN`. So a
//! PUT refused that way re-checks every blob and child manifest the manifest
//! names, uploads what is missing from the push's own content, and tries
//! again, each round counted against the retry budget.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tracing::debug;

use super::error::{RegistryError, Result};
use super::manifests::PushedManifest;
use super::{BlobOpen, RegistryClient};
use crate::oci::Descriptor;

/// The content a push can send again: its blobs and manifests by digest.
pub trait PushContent: Sync {
    fn blob(&self, digest: &str) -> Option<(Descriptor, Arc<dyn BlobOpen>)>;
    fn manifest(&self, digest: &str) -> Option<(Descriptor, Bytes)>;
}

/// The blobs (config, layers) and child manifests a manifest or index names.
pub(crate) fn referenced(manifest: &[u8]) -> (Vec<String>, Vec<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(manifest) else {
        return (Vec::new(), Vec::new());
    };
    let digests = |items: Option<&Value>| -> Vec<String> {
        items
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("digest").and_then(Value::as_str).map(String::from))
            .collect()
    };
    let mut blobs: Vec<String> = v
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .map(String::from)
        .into_iter()
        .collect();
    blobs.extend(digests(v.get("layers")));
    (blobs, digests(v.get("manifests")))
}

impl RegistryClient {
    /// Puts a manifest; when the registry answers that it names unknown
    /// content, sends the missing blobs and child manifests from `content`
    /// and tries again, within the retry budget.
    pub async fn put_manifest_repairing(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        content: &dyn PushContent,
    ) -> Result<PushedManifest> {
        let mut attempt = 0;
        loop {
            match self
                .put_manifest(repo, reference, media_type, bytes.clone(), None)
                .await
            {
                Err(RegistryError::ManifestBlobUnknown { what, detail }) => {
                    self.backoff(&mut attempt, format!("{what}: {detail}"), None)
                        .await?;
                    let repaired = self.restore_references(repo, &bytes, content).await?;
                    debug!(
                        repo,
                        reference, repaired, "manifest named unknown content; retrying"
                    );
                }
                other => return other,
            }
        }
    }

    /// Sends the blobs and child manifests `manifest` names that `repo`
    /// lacks; returns how many were sent.
    async fn restore_references(
        &self,
        repo: &str,
        manifest: &[u8],
        content: &dyn PushContent,
    ) -> Result<usize> {
        let (blobs, children) = referenced(manifest);
        let mut sent = self.restore_blobs(repo, blobs, content).await?;
        for digest in children {
            if self.resolve(repo, &digest).await?.is_some() {
                continue;
            }
            let Some((desc, bytes)) = content.manifest(&digest) else {
                continue;
            };
            // A child is an image manifest: its own references are blobs.
            sent += self
                .restore_blobs(repo, referenced(&bytes).0, content)
                .await?;
            self.put_manifest(repo, &digest, &desc.media_type, bytes, None)
                .await?;
            sent += 1;
        }
        Ok(sent)
    }

    async fn restore_blobs(
        &self,
        repo: &str,
        blobs: Vec<String>,
        content: &dyn PushContent,
    ) -> Result<usize> {
        let mut sent = 0;
        for digest in blobs {
            if self.blob_exists(repo, &digest).await? {
                continue;
            }
            let Some((desc, src)) = content.blob(&digest) else {
                continue;
            };
            self.push_blob(repo, &desc, src, None, Arc::new(|_| {}))
                .await?;
            sent += 1;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_manifests_and_indexes() {
        let m = br#"{"config":{"digest":"sha256:c"},"layers":[{"digest":"sha256:l1"},{"digest":"sha256:l2"}],"subject":{"digest":"sha256:s"}}"#;
        assert_eq!(
            referenced(m),
            (
                vec!["sha256:c".into(), "sha256:l1".into(), "sha256:l2".into()],
                vec![]
            )
        );
        let i = br#"{"manifests":[{"digest":"sha256:a"},{"digest":"sha256:b"}]}"#;
        assert_eq!(
            referenced(i),
            (vec![], vec!["sha256:a".into(), "sha256:b".into()])
        );
        assert_eq!(referenced(b"not json"), (vec![], vec![]));
    }
}
