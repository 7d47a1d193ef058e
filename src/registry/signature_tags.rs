//! cosign's `.sig` and `.att` tags in a repository: each holds every
//! signature made for its digest, so ours are added to what it lists
//! ([`crate::sign::tags::merged_layers`]), as [`super::tag_merge`] extends
//! tags that several writers share.

use std::time::Duration;

use bytes::Bytes;

use super::error::{RegistryError, Result};
use super::tag_merge::{Extended, TagExtension};
use super::RegistryClient;
use crate::oci::MT_OCI_MANIFEST;
use crate::sign::tags;

impl RegistryClient {
    /// Adds the layers of `ours` (a manifest of cosign's tag scheme) to
    /// what `tag` lists, with the config that the merged list needs; returns
    /// when a read `settle` after the write shows them all.
    pub async fn extend_signature_tag(
        &self,
        repo: &str,
        tag: &str,
        ours: &[u8],
        settle: Duration,
    ) -> Result<()> {
        let invalid = |e: String| RegistryError::Invalid(format!("{repo}:{tag}: {e}"));
        let ours = tags::layers_of(ours).map_err(invalid)?;
        let extend = |current: Option<&[u8]>| -> Result<Option<Extended>> {
            let Some(layers) = tags::merged_layers(current, &ours).map_err(invalid)? else {
                return Ok(None);
            };
            let t = tags::tag_manifest(&layers);
            Ok(Some(Extended {
                manifest: t.manifest,
                blobs: vec![(t.config.0, Bytes::from(t.config.1))],
            }))
        };
        let holds = |m: &[u8]| tags::lists_all(m, &ours).map_err(invalid);
        self.extend_tag(
            &TagExtension {
                repo,
                tag,
                media_type: MT_OCI_MANIFEST,
                extend: &extend,
                holds: &holds,
            },
            settle,
        )
        .await
    }
}
