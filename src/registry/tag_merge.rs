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
//! A push draws one delay for all the tags it writes ([`SettleClock`]),
//! counted from when its first tag can be written, so that tags written
//! later in the push (its signatures') are read again at the same time as
//! the first ones, and none sooner than [`SETTLE`] after its own last write.
//! The wait is idle time for the registry; what the push still has to put
//! goes in it.
//!
//! The window that remains, on registries that ignore `If-Match`: a writer
//! whose read-to-write takes longer than the settle delay (a stalled
//! connection, say) overwrites the tag after we verified it and returned,
//! dropping our additions; nothing restores them until the next push.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
/// concurrent writers fall out of step.
fn settle_delay() -> Duration {
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

/// When the tags written together are read again: one settle delay drawn
/// for all of them, from the clock's start, and never sooner than
/// [`SETTLE`] after a tag's own last write.
#[derive(Clone, Copy, Debug)]
pub struct SettleClock {
    deadline: Instant,
    drawn: Duration,
}

impl SettleClock {
    /// A clock with a delay drawn now ([`settle_delay`]).
    pub fn start() -> SettleClock {
        let drawn = settle_delay();
        SettleClock {
            deadline: Instant::now() + drawn,
            drawn,
        }
    }

    /// How long a tag written at `written` still waits.
    fn wait_after(&self, written: Instant) -> Duration {
        self.deadline
            .max(written + SETTLE)
            .saturating_duration_since(Instant::now())
    }
}

/// What a tag is to hold after our additions: its manifest and the blobs
/// that manifest names and the repository may lack.
pub struct Extended {
    pub manifest: Vec<u8>,
    pub blobs: Vec<(Descriptor, Bytes)>,
}

/// A tag's new content given its current manifest (None: no tag); None
/// when it holds all of ours already.
pub type Extend<'a> = dyn Fn(Option<&[u8]>) -> Result<Option<Extended>> + Send + Sync + 'a;
/// True when a manifest of the tag holds all of ours.
pub type Holds<'a> = dyn Fn(&[u8]) -> Result<bool> + Send + Sync + 'a;

/// How one tag is extended.
pub struct TagExtension<'a> {
    pub repo: &'a str,
    pub tag: String,
    pub media_type: &'static str,
    pub extend: Box<Extend<'a>>,
    pub holds: Box<Holds<'a>>,
}

impl RegistryClient {
    /// Extends a tag as `x` says; returns once a read after `clock`'s
    /// delay shows it holding all of ours.
    pub(crate) async fn extend_tag(&self, x: &TagExtension<'_>, clock: SettleClock) -> Result<()> {
        let written = self.write_tag(x).await?;
        self.settle_tag(x, clock, written).await
    }

    /// Reads the tag, extends it and writes it back, once: when it was
    /// written, or None when it held all of ours already. A conditional
    /// write that lost to another writer is tried again.
    pub(crate) async fn write_tag(&self, x: &TagExtension<'_>) -> Result<Option<Instant>> {
        let scope = push_scope(x.repo, None);
        for attempt in 0..ROUNDS {
            let current = self.get_manifest_scoped(x.repo, &x.tag, &scope).await?;
            let Some(next) = (x.extend)(current.as_ref().map(|m| m.bytes.as_ref()))? else {
                return Ok(None);
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
            let put = self
                .put_manifest(
                    x.repo,
                    &x.tag,
                    x.media_type,
                    Bytes::from(next.manifest),
                    etag,
                )
                .await;
            match put {
                Ok(_) => return Ok(Some(Instant::now())),
                Err(RegistryError::PreconditionFailed { .. }) => {
                    debug!(
                        tag = x.tag,
                        attempt, "the tag changed under us; reading it again"
                    );
                    tokio::time::sleep(jitter(SETTLE)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.kept_changing(x))
    }

    /// Returns once a read of the tag after `clock`'s delay (and at least
    /// [`SETTLE`] after `written`) shows all of ours; a concurrent writer
    /// that dropped some of ours is answered by extending the tag again,
    /// with a delay of its own. `written` None: the tag needed nothing.
    pub(crate) async fn settle_tag(
        &self,
        x: &TagExtension<'_>,
        clock: SettleClock,
        written: Option<Instant>,
    ) -> Result<()> {
        let Some(mut written) = written else {
            return Ok(());
        };
        let scope = push_scope(x.repo, None);
        let mut clock = clock;
        for round in 0..ROUNDS {
            let wait = clock.wait_after(written);
            debug!(
                tag = x.tag,
                round,
                settle_ms = clock.drawn.as_millis() as u64,
                wait_ms = wait.as_millis() as u64,
                "written; reading it again after the settle delay"
            );
            tokio::time::sleep(wait).await;
            let after = self.get_manifest_scoped(x.repo, &x.tag, &scope).await?;
            if let Some(m) = &after {
                if (x.holds)(&m.bytes)? {
                    return Ok(());
                }
            }
            debug!(
                tag = x.tag,
                round, "a concurrent writer replaced the tag; extending it again"
            );
            clock = SettleClock::start();
            match self.write_tag(x).await? {
                Some(at) => written = at,
                None => return Ok(()),
            }
        }
        Err(self.kept_changing(x))
    }

    fn kept_changing(&self, x: &TagExtension<'_>) -> RegistryError {
        RegistryError::Unavailable {
            registry: self.host().to_string(),
            attempts: ROUNDS,
            detail: format!(
                "the tag {}:{} kept changing under concurrent writers",
                x.repo, x.tag
            ),
        }
    }
}
