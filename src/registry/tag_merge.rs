//! Tags that several writers extend: the referrers fallback tag, cosign's
//! `.sig` and `.att` tags. Each is read, extended and written back; where
//! the registry gives an ETag the write is conditional (`If-Match`).
//!
//! Registries that ignore `If-Match` can lose a concurrent writer's
//! additions, so after writing, the tag is read again after a settle delay,
//! and the cycle repeats (a bounded number of times) until it holds all of
//! ours. The delay is much longer than one read-modify-write, so a
//! concurrent writer that read before our write has written by the time we
//! check.
//!
//! The window that remains, on registries that ignore `If-Match`: a writer
//! whose read-to-write takes longer than the settle delay (a stalled
//! connection, say) overwrites the tag after we verified it and returned,
//! dropping our additions; nothing restores them until the next push.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

use super::auth::push_scope;
use super::error::{RegistryError, Result};
use super::{BytesBlob, RegistryClient};
use crate::oci::Descriptor;

/// Read-modify-write rounds before giving up on a tag.
const ROUNDS: u32 = 8;
/// The wait before verifying a write (plus up to as much again of jitter).
const SETTLE: Duration = Duration::from_millis(300);

/// A settle delay: [`SETTLE`] and up to as much again of jitter, so that
/// concurrent writers fall out of step. A push draws one for all the tags
/// it writes, so it waits one delay, not one per tag nor the longest of
/// several.
pub fn settle_delay() -> Duration {
    SETTLE + jitter(SETTLE)
}

/// A small pseudo-random jitter below `max`.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed =
        (nanos as u64 ^ (std::process::id() as u64) << 16).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_millis(seed % (max.as_millis().max(1) as u64))
}

/// What a tag is to hold after our additions: its manifest and the blobs
/// that manifest names and the repository may lack.
pub struct Extended {
    pub manifest: Vec<u8>,
    pub blobs: Vec<(Descriptor, Bytes)>,
}

/// A tag's new content given its current manifest (None: no tag); None
/// when it holds all of ours already.
pub type Extend<'a> = dyn Fn(Option<&[u8]>) -> Result<Option<Extended>> + Sync + 'a;
/// True when a manifest of the tag holds all of ours.
pub type Holds<'a> = dyn Fn(&[u8]) -> Result<bool> + Sync + 'a;

/// How one tag is extended.
pub struct TagExtension<'a> {
    pub repo: &'a str,
    pub tag: &'a str,
    pub media_type: &'a str,
    pub extend: &'a Extend<'a>,
    pub holds: &'a Holds<'a>,
}

impl RegistryClient {
    /// Extends a tag as `x` says; returns once a settled read shows it
    /// holding all of ours. `first_settle` is the first round's delay; later
    /// rounds draw their own.
    pub(crate) async fn extend_tag(
        &self,
        x: &TagExtension<'_>,
        first_settle: Duration,
    ) -> Result<()> {
        let scope = push_scope(x.repo, None);
        for round in 0..ROUNDS {
            let current = self.get_manifest_scoped(x.repo, x.tag, &scope).await?;
            let Some(next) = (x.extend)(current.as_ref().map(|m| m.bytes.as_ref()))? else {
                return Ok(());
            };
            for (d, bytes) in next.blobs {
                self.push_blob(
                    x.repo,
                    &d,
                    Arc::new(BytesBlob(bytes)),
                    None,
                    Arc::new(|_| {}),
                )
                .await?;
            }
            let etag = current.as_ref().and_then(|m| m.etag.as_deref());
            match self
                .put_manifest(
                    x.repo,
                    x.tag,
                    x.media_type,
                    Bytes::from(next.manifest),
                    etag,
                )
                .await
            {
                Ok(_) => {}
                Err(RegistryError::PreconditionFailed { .. }) => {
                    debug!(
                        tag = x.tag,
                        round, "the tag changed under us; reading it again"
                    );
                    tokio::time::sleep(jitter(SETTLE)).await;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let settle = if round == 0 {
                first_settle
            } else {
                settle_delay()
            };
            debug!(
                tag = x.tag,
                round,
                settle_ms = settle.as_millis() as u64,
                "written; reading it again after the settle delay"
            );
            tokio::time::sleep(settle).await;
            let after = self.get_manifest_scoped(x.repo, x.tag, &scope).await?;
            if let Some(m) = &after {
                if (x.holds)(&m.bytes)? {
                    return Ok(());
                }
            }
            debug!(
                tag = x.tag,
                round, "a concurrent writer replaced the tag; extending it again"
            );
        }
        Err(RegistryError::Unavailable {
            registry: self.host().to_string(),
            attempts: ROUNDS,
            detail: format!(
                "the tag {}:{} kept changing under concurrent writers",
                x.repo, x.tag
            ),
        })
    }
}
