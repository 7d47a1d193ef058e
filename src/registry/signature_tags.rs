//! cosign's `.sig` and `.att` tags in a repository: each holds every
//! signature made for its digest, so ours are added to what it lists
//! ([`crate::sign::tags::merged_layers`]), as [`super::tag_merge`] extends
//! tags that several writers share. The push writes them with its
//! referrers fallback tags and waits one settle delay for all.

use bytes::Bytes;

use super::error::{RegistryError, Result};
use super::tag_merge::{Extended, TagExtension};
use crate::oci::MT_OCI_MANIFEST;
use crate::sign::tags;

/// The extension of cosign's `tag` in `repo` that adds the layers of
/// `ours` (a manifest of cosign's tag scheme, whose config the push puts)
/// to what it lists, with the config that a merged list needs.
pub fn signature_tag_extension<'a>(
    repo: &'a str,
    tag: &str,
    ours: &'a [u8],
) -> Result<TagExtension<'a>> {
    let name = format!("{repo}:{tag}");
    let invalid = move |e: String| RegistryError::Invalid(format!("{name}: {e}"));
    let layers = tags::layers_of(ours).map_err(&invalid)?;
    let held = layers.clone();
    let invalid_held = invalid.clone();
    let extend = move |current: Option<&[u8]>| -> Result<Option<Extended>> {
        let Some(merged) = tags::merged_layers(current, &layers).map_err(&invalid)? else {
            return Ok(None);
        };
        let t = tags::tag_manifest(&merged);
        // Only a merged list has a config the repository may lack.
        let blobs = if t.manifest == ours {
            Vec::new()
        } else {
            vec![(t.config.0, Bytes::from(t.config.1))]
        };
        Ok(Some(Extended {
            manifest: t.manifest,
            blobs,
        }))
    };
    let holds = move |m: &[u8]| tags::lists_all(m, &held).map_err(&invalid_held);
    Ok(TagExtension {
        repo,
        tag: tag.to_string(),
        media_type: MT_OCI_MANIFEST,
        extend: Box::new(extend),
        holds: Box::new(holds),
    })
}
