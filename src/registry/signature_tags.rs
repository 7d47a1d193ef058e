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
    /// Adds the layers of `ours` (a manifest of cosign's tag scheme, whose
    /// config the caller has pushed) to what `tag` lists, with the config
    /// that a merged list needs; returns when a read `settle` after the
    /// write shows them all.
    pub async fn extend_signature_tag(
        &self,
        repo: &str,
        tag: &str,
        ours: &[u8],
        settle: Duration,
    ) -> Result<()> {
        let invalid = |e: String| RegistryError::Invalid(format!("{repo}:{tag}: {e}"));
        let fresh = ours;
        let ours = tags::layers_of(fresh).map_err(invalid)?;
        let extend = |current: Option<&[u8]>| -> Result<Option<Extended>> {
            let Some(layers) = tags::merged_layers(current, &ours).map_err(invalid)? else {
                return Ok(None);
            };
            let t = tags::tag_manifest(&layers);
            // Only a merged list has a config the repository may lack.
            let blobs = if t.manifest == fresh {
                Vec::new()
            } else {
                vec![(t.config.0, Bytes::from(t.config.1))]
            };
            Ok(Some(Extended {
                manifest: t.manifest,
                blobs,
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
