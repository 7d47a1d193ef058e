//! Row 9: what signing (`oxport.sign`) adds to a push of the two-platform
//! example: the same `oxport export` to `docker-registry`, with and without
//! a key named, alternately, each run to a repository of its own, so that
//! every blob and manifest is uploaded every time. Medians of the runs.
//!
//! A push to a registry without the referrers API draws a settle delay at
//! random between 300 and 600 ms, the same on both sides. Its spread alone
//! puts a standard error of about 14 ms into a median of 61 runs, as much
//! as half of what is measured. So each run's drawn delay (from the push's
//! debug log) is taken out, and the ratio is of the means without it plus
//! the delay's mean: the expected push time, measured with less noise.
//! Means, not medians: a signed push puts its signatures while the delay
//! runs and waits longer only when a short delay runs out first, in a
//! minority of runs that a median would leave out. The raw medians are
//! printed too.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::procs::{timed, Registry, OXPORT};
use crate::rows::Bench;
use crate::Row;

const RUNS: usize = 41;
/// The mean of the settle delay (300 ms and up to as much again).
const MEAN_SETTLE: Duration = Duration::from_millis(450);

impl Bench {
    pub fn signing(&self) -> Row {
        crate::rows::step("row 9: push the two-platform example, signed and not");
        let registry = Registry::start(&self.work.join("registry-9"));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let case = root.join("examples/two-platform/case.json");
        let key = format!("k={}", root.join("tests/signing/plain-pkcs8.key").display());
        let push = |repo: String, sign: bool| {
            let mut output = format!(
                "type=image,name={}/{repo}:1,push=true,registry.insecure=true",
                registry.host
            );
            if sign {
                output.push_str(",oxport.sign=k");
            }
            let (out, t) = timed(|| {
                Command::new(OXPORT)
                    .args(["export", "--result"])
                    .arg(&case)
                    .args(["--output", &output, "--signing-key", &key])
                    .env("RUST_LOG", "oxport::registry::tag_merge=debug")
                    .output()
                    .expect("run oxport")
            });
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "push to {repo}: {log}");
            (t, t.saturating_sub(settle_of(&log)))
        };
        let (mut plain, mut signed) = (Vec::new(), Vec::new());
        for i in 0..RUNS {
            plain.push(push(format!("plain-{i}"), false));
            signed.push(push(format!("signed-{i}"), true));
        }
        let raw = |v: &[(Duration, Duration)]| median(v.iter().map(|r| r.0).collect());
        let bare = |v: &[(Duration, Duration)]| mean(v.iter().map(|r| r.1).collect());
        let (p, s) = (bare(&plain) + MEAN_SETTLE, bare(&signed) + MEAN_SETTLE);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Row {
            id: "9",
            what: format!(
                "push the two-platform example to docker-registry, {RUNS} runs each, means \
                 without each run's drawn settle delay, plus its mean (450 ms)"
            ),
            ours: format!(
                "signed (oxport.sign): {:.0} ms ({:.0} ms without the delay; raw median {:.0} ms)",
                ms(s),
                ms(bare(&signed)),
                ms(raw(&signed))
            ),
            reference: format!(
                "unsigned: {:.0} ms ({:.0} ms without the delay; raw median {:.0} ms) \
                 (target: signed ≤ 1.05 ×)",
                ms(p),
                ms(bare(&plain)),
                ms(raw(&plain))
            ),
            ratio: format!("{:.2}", s.as_secs_f64() / p.as_secs_f64()),
        }
    }
}

/// The settle delay a push drew, from its debug log (`settle_ms=N` of the
/// first round; every tag of a push shares it).
fn settle_of(log: &str) -> Duration {
    let ms = log
        .lines()
        .filter(|l| l.contains("round=0"))
        .filter_map(|l| l.split("settle_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .expect("the push logs its settle delay");
    Duration::from_millis(ms)
}

fn mean(v: Vec<Duration>) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
