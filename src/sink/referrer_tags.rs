//! The tags a push writes once its content is in: the referrers fallback
//! tags (for registries without the referrers API) and cosign's signature
//! tags.
//!
//! They go in two waves that share one settle delay
//! ([`SettleClock`]): first the fallback tags that no signature goes into,
//! while the push still puts the signatures; then the tags that list
//! signatures. Every tag is read again once, when the delay drawn
//! before the first wave has run out and no sooner than the minimum after
//! its own last write. The delay is idle time for the registry, so a
//! signed push whose signatures are in before it runs out waits no longer
//! than an unsigned one.
//!
//! A subject named by referrers of both parts has its tag written once, in
//! the second wave: a tag can only list manifests the registry has
//! (docker-registry refuses an index naming one it lacks), and the delay
//! runs from the end of the first part whether or not anything was written
//! then.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures_util::future::{try_join, try_join_all};
use tokio::time::Instant;

use super::push::Item;
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::registry::referrers::{by_subject, fallback_extension, fallback_tag, Referrer};
use crate::registry::signature_tags::signature_tag_extension;
use crate::registry::tag_merge::{SettleClock, TagExtension};
use crate::registry::{RegistryClient, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// How the referrers split into the two waves.
struct Waves<'a> {
    /// The subject of the first referrer of the first part.
    probe: Option<&'a str>,
    /// The subjects that only referrers of the first part name.
    first: BTreeSet<&'a str>,
    /// The subjects that signatures name.
    late: BTreeSet<&'a str>,
}

impl<'a> Waves<'a> {
    /// `referrers`: each with true when it is a signature.
    fn of(referrers: &[(Referrer<'a>, bool)]) -> Waves<'a> {
        let late: BTreeSet<&'a str> = referrers
            .iter()
            .filter(|(_, late)| *late)
            .map(|(r, _)| r.subject)
            .collect();
        let early = referrers
            .iter()
            .filter(|(_, late)| !late)
            .map(|(r, _)| r.subject);
        Waves {
            probe: early.clone().next(),
            first: early.filter(|s| !late.contains(s)).collect(),
            late,
        }
    }
}

/// The tags of one repository's push.
pub struct Tags<'a> {
    client: &'a RegistryClient,
    repo: &'a str,
    /// Every referrer by subject: what each fallback tag is to list.
    all: BTreeMap<&'a str, Vec<Descriptor>>,
    waves: Waves<'a>,
    signature_tags: &'a [(String, Item)],
}

/// When each tag was written (None: it held ours already).
type Written<'a> = Vec<(&'a str, Option<Instant>)>;

impl<'a> Tags<'a> {
    /// `referrers`: each with true when it belongs to the second wave (a
    /// signature); `signature_tags`: cosign's tags, always second.
    pub fn new(
        client: &'a RegistryClient,
        repo: &'a str,
        referrers: &[(Referrer<'a>, bool)],
        signature_tags: &'a [(String, Item)],
    ) -> Result<Tags<'a>> {
        let all: Vec<Referrer<'a>> = referrers.iter().map(|(r, _)| *r).collect();
        Ok(Tags {
            client,
            repo,
            all: by_subject(&all)?,
            waves: Waves::of(referrers),
            signature_tags,
        })
    }

    /// Writes the tags, the first wave next to `rest` (the second part of
    /// the push, which says whether the registry indexed a subject
    /// itself). Returns the fallback tags written and what `rest` gave.
    pub async fn write<R>(
        &self,
        indexed: bool,
        policy: ReferrersFallback,
        rest: impl Future<Output = Result<(R, bool)>>,
    ) -> Result<(Vec<String>, R)> {
        let clock = SettleClock::start();
        let fallback: BTreeMap<&str, TagExtension<'_>> = self
            .all
            .iter()
            .map(|(s, add)| (*s, fallback_extension(self.repo, s, add)))
            .collect();
        let cosign = self
            .signature_tags
            .iter()
            .map(|(tag, m)| signature_tag_extension(self.repo, tag, &m.bytes))
            .collect::<Result<Vec<_>>>()?;
        let first = self.first_wave(indexed, policy, &fallback);
        let ((wanted, mut written), (rest, late_indexed)) = try_join(first, rest).await?;
        let wanted = match wanted {
            Some(wanted) => wanted,
            // No referrer in the first part: decided with all of them.
            None => match self.all.keys().next() {
                Some(probe) => {
                    let indexed = indexed || late_indexed;
                    self.client
                        .fallback_wanted(self.repo, probe, indexed, policy)
                        .await?
                }
                None => false,
            },
        };
        let late: Vec<&str> = match wanted {
            true => self.waves.late.iter().copied().collect(),
            false => Vec::new(),
        };
        let (second, signed) = try_join(
            self.write_each(late.into_iter(), &fallback),
            try_join_all(cosign.iter().map(|x| self.client.write_tag(x))),
        )
        .await?;
        written.extend(second);
        let settle_fallback = try_join_all(
            written
                .iter()
                .map(|(s, at)| self.client.settle_tag(&fallback[s], clock, *at)),
        );
        let settle_cosign = try_join_all(
            cosign
                .iter()
                .zip(signed)
                .map(|(x, at)| self.client.settle_tag(x, clock, at)),
        );
        try_join(settle_fallback, settle_cosign).await?;
        let tags = match wanted {
            true => self.all.keys().map(|s| fallback_tag(s)).collect(),
            false => Vec::new(),
        };
        Ok((tags, rest))
    }

    /// Decides whether fallback tags are wanted, by the referrers of the
    /// first part (None when there are none to decide by), and writes the
    /// first wave's.
    async fn first_wave(
        &self,
        indexed: bool,
        policy: ReferrersFallback,
        fallback: &BTreeMap<&str, TagExtension<'_>>,
    ) -> Result<(Option<bool>, Written<'a>)> {
        let Some(probe) = self.waves.probe else {
            return Ok((None, Vec::new()));
        };
        let wanted = self
            .client
            .fallback_wanted(self.repo, probe, indexed, policy)
            .await?;
        if !wanted {
            return Ok((Some(false), Vec::new()));
        }
        let written = self
            .write_each(self.waves.first.iter().copied(), fallback)
            .await?;
        Ok((Some(true), written))
    }

    /// Writes the fallback tags of `subjects`, all at once.
    async fn write_each(
        &self,
        subjects: impl Iterator<Item = &'a str>,
        fallback: &BTreeMap<&str, TagExtension<'_>>,
    ) -> Result<Written<'a>> {
        try_join_all(
            subjects.map(|s| async move { Ok((s, self.client.write_tag(&fallback[s]).await?)) }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_that_a_signature_names_waits_for_the_second_wave() {
        let d = |s: &str| Descriptor::of(crate::oci::MT_OCI_MANIFEST, s.as_bytes());
        let (att_a, sig_a, sig_root, att_b) = (d("att-a"), d("sig-a"), d("sig-root"), d("att-b"));
        let r = |desc, subject, late| {
            let bytes: &[u8] = b"{}";
            (
                Referrer {
                    desc,
                    bytes,
                    subject,
                },
                late,
            )
        };
        let referrers = [
            r(&att_a, "sha256:a", false),
            r(&sig_a, "sha256:a", true),
            r(&sig_root, "sha256:root", true),
            r(&att_b, "sha256:b", false),
        ];
        let w = Waves::of(&referrers);
        // The registry is asked by the first part's first subject, even
        // though its tag waits for the second wave.
        assert_eq!(w.probe, Some("sha256:a"));
        assert_eq!(w.first, BTreeSet::from(["sha256:b"]));
        assert_eq!(w.late, BTreeSet::from(["sha256:a", "sha256:root"]));
        // Without signatures everything is the first wave.
        let unsigned = [r(&att_a, "sha256:a", false), r(&att_b, "sha256:b", false)];
        let w = Waves::of(&unsigned);
        assert_eq!(w.first.len(), 2);
        assert!(w.late.is_empty());
    }
}
