//! The progress of blobs written to an export's output.
//!
//! Why a module of its own: the sinks emit these events, the wire encodes
//! them and the client shows them. Each of those imports this small type
//! instead of the export entry point that happens to pass them along.

/// A progress event of one blob written to the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Writing {
        digest: String,
        done: u64,
        total: u64,
    },
    Skipped {
        digest: String,
        total: u64,
    },
    Mounted {
        digest: String,
        total: u64,
    },
    Done {
        digest: String,
        total: u64,
    },
}

/// Thins out `Writing` events before they cross the wire: one per blob per
/// interval, the first and the last of each blob always kept.
///
/// Why: an upload reports every 256 KiB piece, 4096 events per GiB. Each is
/// a gRPC message, and behind a builder daemon each becomes a progress
/// update that the daemon forwards to its client; a push of 1 GiB spent
/// about half a CPU second of the daemon's on them, on a machine whose push
/// is CPU-bound. A display refreshes a few times a second at most.
#[derive(Debug)]
pub struct Throttle {
    interval: std::time::Duration,
    /// The time of the last `Writing` event passed, per blob in progress.
    last: std::collections::HashMap<String, std::time::Instant>,
}

impl Throttle {
    /// What a progress display needs: BuildKit's own displays refresh at
    /// about this rate.
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

    pub fn new(interval: std::time::Duration) -> Self {
        Throttle {
            interval,
            last: std::collections::HashMap::new(),
        }
    }

    /// Whether `p`, happening at `now`, goes on. Events other than
    /// `Writing` always do, and end the blob's entry.
    pub fn admit(&mut self, p: &Progress, now: std::time::Instant) -> bool {
        let (digest, done, total) = match p {
            Progress::Writing {
                digest,
                done,
                total,
            } => (digest, *done, *total),
            Progress::Skipped { digest, .. }
            | Progress::Mounted { digest, .. }
            | Progress::Done { digest, .. } => {
                self.last.remove(digest);
                return true;
            }
        };
        if done >= total {
            self.last.remove(digest);
            return true;
        }
        match self.last.get_mut(digest) {
            Some(at) if now.duration_since(*at) < self.interval => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                self.last.insert(digest.clone(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn writing(digest: &str, done: u64) -> Progress {
        Progress::Writing {
            digest: digest.into(),
            done,
            total: 100,
        }
    }

    #[test]
    fn writing_events_pass_once_per_interval_per_blob() {
        let mut t = Throttle::new(Duration::from_millis(100));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(t.admit(&writing("a", 1), at(0)), "the first of a blob");
        assert!(!t.admit(&writing("a", 2), at(50)));
        assert!(
            t.admit(&writing("b", 1), at(60)),
            "another blob has its own clock"
        );
        assert!(!t.admit(&writing("a", 3), at(99)));
        assert!(t.admit(&writing("a", 4), at(100)), "an interval later");
        assert!(!t.admit(&writing("a", 5), at(150)));
        assert!(t.admit(&writing("a", 100), at(151)), "the last, always");
        assert!(t.last.contains_key("b"));
        let done = Progress::Done {
            digest: "b".into(),
            total: 100,
        };
        assert!(t.admit(&done, at(152)));
        assert!(t.last.is_empty(), "finished blobs leave no entry");
        assert!(
            t.admit(&writing("b", 2), at(153)),
            "a blob written again starts over"
        );
    }

    #[test]
    fn other_events_always_pass() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        let now = Instant::now();
        for p in [
            Progress::Skipped {
                digest: "a".into(),
                total: 1,
            },
            Progress::Mounted {
                digest: "a".into(),
                total: 1,
            },
            Progress::Done {
                digest: "a".into(),
                total: 1,
            },
        ] {
            assert!(t.admit(&p, now));
            assert!(t.admit(&p, now));
        }
    }
}
