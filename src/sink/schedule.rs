//! The order of a push within one repository: every blob and manifest is a
//! task that starts once what it names is in the repository, a few tasks at
//! a time.
//!
//! What a registry checks is exactly what a task waits for: a manifest's
//! config and layers before the manifest, an index's manifests before the
//! index, and a subject before the manifests naming it (registries that
//! check subjects accept them then).
//!
//! Why not phases (every blob, then the manifests in waves): a push of a
//! small image is round trips, and in phases the slots idle while a wave
//! of one index or two manifests goes, and every manifest waits for the
//! slowest blob, even one it does not name. Here a manifest goes as soon as
//! its own content is there, next to uploads that are still running, and
//! the number of requests in flight never exceeds the concurrency: a
//! registry whose tokens last a few requests sees no more at once than
//! before.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt as _;

use crate::registry::repair::referenced;

/// A manifest as the schedule sees it.
pub struct Manifest<'a> {
    pub digest: &'a str,
    pub bytes: &'a [u8],
    pub subject: Option<&'a str>,
}

/// What each task waits for, by task number: the blobs (by digest) are
/// tasks `0..blobs.len()`, then the manifests in their order. Only what the
/// push itself puts counts; a manifest never waits for itself.
pub fn dependencies(blobs: &[&str], manifests: &[Manifest<'_>]) -> Vec<Vec<usize>> {
    let mut task: HashMap<&str, usize> = HashMap::new();
    for (i, d) in blobs.iter().enumerate() {
        task.insert(d, i);
    }
    for (i, m) in manifests.iter().enumerate() {
        task.insert(m.digest, blobs.len() + i);
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); blobs.len()];
    for (i, m) in manifests.iter().enumerate() {
        let me = blobs.len() + i;
        let (named_blobs, named_manifests) = referenced(m.bytes);
        let mut own: Vec<usize> = named_blobs
            .iter()
            .chain(&named_manifests)
            .map(String::as_str)
            .chain(m.subject)
            .filter_map(|d| task.get(d).copied())
            .filter(|&t| t != me)
            .collect();
        own.sort_unstable();
        own.dedup();
        deps.push(own);
    }
    deps
}

/// Runs the tasks, at most `concurrency` at once, each once every task it
/// waits for has finished. Among tasks ready together, the one with the
/// longest chain of tasks waiting behind it goes first (then the lowest
/// number): the layers of an image manifest before a signature's bundle,
/// since the attestations, signatures and index wait for that manifest. The
/// first error ends the run (tasks still running are dropped). Results come
/// in the order tasks finished.
///
/// Dependencies that form a cycle (an image whose lists and subjects name
/// each other) cannot all be met: when nothing is running and nothing is
/// ready, the lowest-numbered task left starts anyway, as a push in the
/// image's order would have put it.
pub async fn run<T, E, F>(
    deps: &[Vec<usize>],
    concurrency: usize,
    mut start: impl FnMut(usize) -> F,
) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let n = deps.len();
    let mut left: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let chain = chain_lengths(deps, &dependents);
    let mut ready: BTreeSet<(Reverse<usize>, usize)> = (0..n)
        .filter(|&i| left[i] == 0)
        .map(|i| (Reverse(chain[i]), i))
        .collect();
    let mut started = vec![false; n];
    let mut running = FuturesUnordered::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        while running.len() < concurrency.max(1) {
            let next = match ready.pop_first() {
                Some((_, i)) => i,
                None if running.is_empty() => match (0..n).find(|&i| !started[i]) {
                    Some(i) => i,
                    None => break,
                },
                None => break,
            };
            started[next] = true;
            let fut = start(next);
            running.push(async move { (next, fut.await) });
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        out.push(result?);
        for &j in &dependents[i] {
            left[j] -= 1;
            if left[j] == 0 && !started[j] {
                ready.insert((Reverse(chain[j]), j));
            }
        }
    }
    Ok(out)
}

/// The tasks `keep` marks, renumbered: their numbers in `deps`, and what
/// each waits for among them. What they wait for outside the subset is
/// taken to be in place (an earlier run put it).
pub fn subset(deps: &[Vec<usize>], keep: &[bool]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let ids: Vec<usize> = (0..deps.len()).filter(|&i| keep[i]).collect();
    let mut new_id = vec![usize::MAX; deps.len()];
    for (k, &i) in ids.iter().enumerate() {
        new_id[i] = k;
    }
    let sub = ids
        .iter()
        .map(|&i| {
            deps[i]
                .iter()
                .filter(|&&d| keep[d])
                .map(|&d| new_id[d])
                .collect()
        })
        .collect();
    (ids, sub)
}

/// Marks, besides the tasks marked already, every task that waits for a
/// marked one, directly or through others: what cannot go before them.
pub fn mark_dependents(deps: &[Vec<usize>], marked: &mut [bool]) {
    let mut changed = true;
    while changed {
        changed = false;
        for (i, ds) in deps.iter().enumerate() {
            if !marked[i] && ds.iter().any(|&d| marked[d]) {
                marked[i] = true;
                changed = true;
            }
        }
    }
}

/// For each task, the number of tasks in the longest chain that starts
/// with it and goes on through what waits for it. Tasks on a cycle (and
/// those before one) count 0: they start in number order.
fn chain_lengths(deps: &[Vec<usize>], dependents: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut chain = vec![0usize; n];
    // From the tasks nothing waits for, back through what they wait for.
    let mut waiting: Vec<usize> = dependents.iter().map(Vec::len).collect();
    let mut todo: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    while let Some(i) = todo.pop() {
        chain[i] = 1 + dependents[i].iter().map(|&j| chain[j]).max().unwrap_or(0);
        for &d in &deps[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                todo.push(d);
            }
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::oci::{self, Descriptor};

    /// A manifest's digest and bytes, and its subject.
    struct Owned(String, String, Option<String>);

    fn item(json: &str, subject: Option<&str>) -> Owned {
        Owned(
            oci::digest_of(json.as_bytes()),
            json.to_string(),
            subject.map(String::from),
        )
    }

    fn deps_of(blobs: &[&Descriptor], manifests: &[&Owned]) -> Vec<Vec<usize>> {
        let blobs: Vec<&str> = blobs.iter().map(|d| d.digest.as_str()).collect();
        let manifests: Vec<Manifest<'_>> = manifests
            .iter()
            .map(|m| Manifest {
                digest: &m.0,
                bytes: m.1.as_bytes(),
                subject: m.2.as_deref(),
            })
            .collect();
        dependencies(&blobs, &manifests)
    }

    #[test]
    fn manifests_wait_for_what_they_name_and_their_subject() {
        let config = Descriptor::of(oci::MT_OCI_CONFIG, b"{}");
        let layer = Descriptor::of(oci::MT_OCI_LAYER_GZIP, b"layer");
        let other = Descriptor::of(oci::MT_OCI_LAYER_GZIP, b"other");
        let image = item(
            &format!(
                r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}},{{"digest":"sha256:{}"}}]}}"#,
                config.digest,
                layer.digest,
                "0".repeat(64)
            ),
            None,
        );
        let signature = item(
            &format!(
                r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}}]}}"#,
                config.digest, other.digest
            ),
            Some(&image.0),
        );
        let index = item(
            &format!(r#"{{"manifests":[{{"digest":"{}"}}]}}"#, image.0),
            None,
        );
        let deps = deps_of(&[&config, &layer, &other], &[&image, &signature, &index]);
        // A layer the push does not carry (the zero digest) is no task.
        assert_eq!(
            deps,
            [vec![], vec![], vec![], vec![0, 1], vec![0, 2, 3], vec![3]]
        );
    }

    #[test]
    fn a_manifest_naming_itself_does_not_wait_for_itself() {
        let me = oci::digest_of(br#"{"layers":[]}"#);
        let looped = item(r#"{"layers":[]}"#, Some(&me));
        assert_eq!(deps_of(&[], &[&looped]), [Vec::<usize>::new()]);
    }

    /// Runs `deps` with tasks that finish at once, recording the order in
    /// which they started.
    fn order(deps: &[Vec<usize>], concurrency: usize) -> Vec<usize> {
        let started = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&started);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let done: Vec<usize> = rt
            .block_on(run(deps, concurrency, move |i| {
                log.lock().unwrap().push(i);
                async move { Ok::<_, ()>(i) }
            }))
            .unwrap();
        assert_eq!(done.len(), deps.len(), "every task finished once");
        Arc::try_unwrap(started).unwrap().into_inner().unwrap()
    }

    #[test]
    fn tasks_start_after_what_they_wait_for_the_longest_chain_first() {
        // 0 to 3 are blobs; 4 waits for 1 and 3; 5 for 4; 6 for 0.
        let deps = [vec![], vec![], vec![], vec![], vec![1, 3], vec![4], vec![0]];
        assert_eq!(
            chain_lengths(
                &deps,
                &[vec![6], vec![4], vec![], vec![4], vec![5], vec![], vec![]]
            ),
            [2, 3, 1, 3, 2, 1, 1]
        );
        // 1 and 3 lead to 4 and 5, 0 to 6 only, 2 to nothing; 4 and 0 tie.
        assert_eq!(order(&deps, 1), [1, 3, 0, 4, 2, 5, 6]);
        assert_eq!(
            order(&[vec![], vec![], vec![]], 1),
            [0, 1, 2],
            "ties in number order"
        );
    }

    #[test]
    fn a_cycle_is_broken_in_the_image_order() {
        let got = order(&[vec![1], vec![0], vec![]], 2);
        assert_eq!(got, [2, 0, 1]);
    }

    #[test]
    fn no_more_than_the_concurrency_run_at_once_and_errors_end_the_run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (now, most) = (Arc::new(Mutex::new(0usize)), Arc::new(Mutex::new(0usize)));
        let deps = vec![Vec::new(); 12];
        let (n, m) = (Arc::clone(&now), Arc::clone(&most));
        let r: Result<Vec<usize>, String> = rt.block_on(run(&deps, 3, move |i| {
            let (n, m) = (Arc::clone(&n), Arc::clone(&m));
            async move {
                let in_flight = {
                    let mut n = n.lock().unwrap();
                    *n += 1;
                    *n
                };
                {
                    let mut most = m.lock().unwrap();
                    *most = (*most).max(in_flight);
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                *n.lock().unwrap() -= 1;
                if i == 7 {
                    return Err(format!("task {i} failed"));
                }
                Ok(i)
            }
        }));
        assert_eq!(r.unwrap_err(), "task 7 failed");
        assert_eq!(*most.lock().unwrap(), 3);
    }

    #[test]
    fn a_subset_keeps_its_own_dependencies_renumbered() {
        // 0 and 1 blobs, 2 waits for 0, 3 waits for 1 and 2, 4 waits for 3.
        let deps = vec![vec![], vec![], vec![0], vec![1, 2], vec![3]];
        let mut late = vec![false, true, false, false, false];
        mark_dependents(&deps, &mut late);
        assert_eq!(late, [false, true, false, true, true]);
        let early: Vec<bool> = late.iter().map(|l| !l).collect();
        assert_eq!(subset(&deps, &early), (vec![0, 2], vec![vec![], vec![0]]));
        assert_eq!(
            subset(&deps, &late),
            (vec![1, 3, 4], vec![vec![], vec![0], vec![1]])
        );
    }
}
