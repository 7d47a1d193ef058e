//! Row 9: what signing (`oxport.sign`) adds to a push of the two-platform
//! example: the same `oxport export` to `docker-registry`, with and without
//! a key named, alternately, each run to a repository of its own, so that
//! every blob and manifest is uploaded every time. Medians of the runs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::procs::{timed, Registry, OXPORT};
use crate::rows::Bench;
use crate::Row;

const RUNS: usize = 61;

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
            let (status, t) = timed(|| {
                Command::new(OXPORT)
                    .args(["export", "--result"])
                    .arg(&case)
                    .args(["--output", &output, "--signing-key", &key])
                    .env_remove("RUST_LOG")
                    .output()
                    .expect("run oxport")
                    .status
            });
            assert!(status.success(), "push to {repo}");
            t
        };
        let (mut plain, mut signed) = (Vec::new(), Vec::new());
        for i in 0..RUNS {
            plain.push(push(format!("plain-{i}"), false));
            signed.push(push(format!("signed-{i}"), true));
        }
        let (p, s) = (median(plain), median(signed));
        Row {
            id: "9",
            what: format!(
                "push the two-platform example to docker-registry, {RUNS} runs each, medians"
            ),
            ours: format!("signed (oxport.sign): {:.0} ms", s.as_secs_f64() * 1e3),
            reference: format!(
                "unsigned: {:.0} ms (target: signed ≤ 1.05 ×)",
                p.as_secs_f64() * 1e3
            ),
            ratio: format!("{:.2}", s.as_secs_f64() / p.as_secs_f64()),
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
