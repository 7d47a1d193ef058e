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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use futures_util::future::{try_join, try_join_all};
use tokio::time::Instant;

use super::push::Item;
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::registry::referrers::{by_subject, fallback_extension, fallback_tag, Referrer};
use crate::registry::signature_tags::signature_tag_extension;
use crate::registry::tag_merge::SettleClock;
use crate::registry::{RegistryClient, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// How the referrers split into the two waves.
struct Waves<'a> {
    /// The subject of the first referrer of the first part.
    probe: Option<&'a str>,
    /// The referrers of the first part whose subjects no signature names.
    first: Vec<Referrer<'a>>,
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
        let early = referrers.iter().filter(|(_, late)| !late).map(|(r, _)| r);
        Waves {
            probe: early.clone().next().map(|r| r.subject),
            first: early
                .filter(|r| !late.contains(r.subject))
                .copied()
                .collect(),
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
    /// A subject of the first part, to ask the registry about the
    /// referrers API by as soon as that part is in.
    probe: Option<&'a str>,
    /// The subjects that only referrers of the first part name, with them:
    /// the first wave.
    first: BTreeMap<&'a str, Vec<Descriptor>>,
    /// The subjects that referrers of the second wave name.
    late: BTreeSet<&'a str>,
    signature_tags: &'a [(String, Item)],
}

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
        let waves = Waves::of(referrers);
        Ok(Tags {
            client,
            repo,
            all: by_subject(&all)?,
            probe: waves.probe,
            first: by_subject(&waves.first)?,
            late: waves.late,
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
    ) -> Result<(Vec<String>, (R, bool))> {
        let clock = SettleClock::start();
        let (first, rest) = try_join(self.first_wave(indexed, policy), rest).await?;
        let (wanted, mut written) = match first {
            Some(first) => first,
            // No referrer in the first part: decided with all of them.
            None => match self.all.keys().next() {
                Some(probe) => {
                    let indexed = indexed || rest.1;
                    let wanted = self
                        .client
                        .fallback_wanted(self.repo, probe, indexed, policy)
                        .await?;
                    (wanted, HashMap::new())
                }
                None => (false, HashMap::new()),
            },
        };
        let subjects: Vec<&str> = match wanted {
            true => self.late.iter().copied().collect(),
            false => Vec::new(),
        };
        let (second, signed) = try_join(
            try_join_all(
                subjects
                    .iter()
                    .map(|s| self.write_fallback(s, &self.all[s])),
            ),
            try_join_all(self.signature_tags.iter().map(|(tag, m)| async move {
                let x = signature_tag_extension(self.repo, tag, &m.bytes)?;
                self.client.write_tag(&x).await
            })),
        )
        .await?;
        for (s, at) in second {
            let before = written.get(s).copied().flatten();
            written.insert(s, at.or(before));
        }
        let fallback = try_join_all(written.iter().map(|(s, at)| {
            let x = fallback_extension(self.repo, s, &self.all[s]);
            async move { self.client.settle_tag(&x, clock, *at).await }
        }));
        let cosign = try_join_all(self.signature_tags.iter().zip(signed).map(
            |((tag, m), at)| async move {
                let x = signature_tag_extension(self.repo, tag, &m.bytes)?;
                self.client.settle_tag(&x, clock, at).await
            },
        ));
        try_join(fallback, cosign).await?;
        let tags = match wanted {
            true => self.all.keys().map(|s| fallback_tag(s)).collect(),
            false => Vec::new(),
        };
        Ok((tags, rest))
    }

    /// Decides whether fallback tags are wanted, by the referrers of the
    /// first part, and writes theirs: None when there are none to decide by.
    async fn first_wave(
        &self,
        indexed: bool,
        policy: ReferrersFallback,
    ) -> Result<Option<(bool, HashMap<&'a str, Option<Instant>>)>> {
        let Some(probe) = self.probe else {
            return Ok(None);
        };
        let wanted = self
            .client
            .fallback_wanted(self.repo, probe, indexed, policy)
            .await?;
        if !wanted {
            return Ok(Some((false, HashMap::new())));
        }
        let written = try_join_all(
            self.first
                .iter()
                .map(|(s, add)| self.write_fallback(s, add)),
        )
        .await?;
        Ok(Some((true, written.into_iter().collect())))
    }

    /// Writes `subject`'s fallback tag to list `add`: when, if it was.
    async fn write_fallback(
        &self,
        subject: &'a str,
        add: &[Descriptor],
    ) -> Result<(&'a str, Option<Instant>)> {
        let x = fallback_extension(self.repo, subject, add);
        Ok((subject, self.client.write_tag(&x).await?))
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
        let first: Vec<&str> = w.first.iter().map(|r| r.subject).collect();
        assert_eq!(first, ["sha256:b"]);
        assert_eq!(w.late, BTreeSet::from(["sha256:a", "sha256:root"]));
        // Without signatures everything is the first wave.
        let unsigned = [r(&att_a, "sha256:a", false), r(&att_b, "sha256:b", false)];
        let w = Waves::of(&unsigned);
        assert_eq!(w.first.len(), 2);
        assert!(w.late.is_empty());
    }
}
