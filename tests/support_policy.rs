//! The test-support policy itself (`tests/support`): which values of `CI` mean CI, that a
//! missing prerequisite outside CI writes one record named after the test and fails
//! under CI, and that `tests/count.sh` moves the recorded tests from passed to skipped.

mod support;

use std::path::Path;
use std::process::{Command, Output};

/// Set in the child run of [`a_missing_tool_is_a_recorded_skip_outside_ci_and_a_failure_in_ci`].
const PROBE: &str = "OXPORT_SUPPORT_PROBE";
const PROBE_TEST: &str = "a_missing_tool_is_a_recorded_skip_outside_ci_and_a_failure_in_ci";

#[test]
fn ci_is_true_in_any_case_or_1() {
    for yes in ["true", "TRUE", "True", "1"] {
        assert!(support::is_ci_value(Some(yes)), "CI={yes} is CI");
    }
    for no in ["false", "0", "", "yes", "2", " true"] {
        assert!(!support::is_ci_value(Some(no)), "CI={no:?} is not CI");
    }
    assert!(!support::is_ci_value(None), "an unset CI is not CI");
}

/// Runs this test binary's probe test alone, with `OXPORT_TEST_SKIPS=skips` and `CI`
/// set to `ci` (or unset).
fn run_probe(skips: &Path, ci: Option<&str>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", PROBE_TEST, "--nocapture"])
        .env(PROBE, "1")
        .env(support::SKIPS_ENV, skips)
        .env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    cmd.output().unwrap()
}

fn records(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_missing_tool_is_a_recorded_skip_outside_ci_and_a_failure_in_ci() {
    if std::env::var_os(PROBE).is_some() {
        // The child run: the check a test would do for a tool that cannot exist.
        let found = support::require_tool("oxport-no-such-tool", "the probe check");
        assert!(found.is_none());
        return;
    }

    let skips = tempfile::tempdir().unwrap();
    let out = run_probe(skips.path(), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the probe failed outside CI: {stderr}"
    );
    assert!(
        stderr.contains("NOT CHECKED: the probe check"),
        "no banner: {stderr}"
    );
    let recs = records(skips.path());
    assert_eq!(recs.len(), 1, "one record: {recs:?}");
    let (name, reason) = &recs[0];
    let prefix = format!("support_policy--{PROBE_TEST}--");
    let hash = name
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{name}"));
    assert!(hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        reason.starts_with("the probe check: `oxport-no-such-tool` is not installed"),
        "{reason}"
    );

    // Under CI the same test fails, naming the tool, and records nothing.
    let skips = tempfile::tempdir().unwrap();
    let out = run_probe(skips.path(), Some("TRUE"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the probe passed under CI");
    assert!(
        text.contains("`oxport-no-such-tool` is not installed; it is required under CI"),
        "{text}"
    );
    assert!(records(skips.path()).is_empty());
}

#[test]
fn one_record_per_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = support::record_skip(dir.path(), "k", "t", "reason one").unwrap();
    let again = support::record_skip(dir.path(), "k", "t", "reason one").unwrap();
    let b = support::record_skip(dir.path(), "k", "t", "reason two").unwrap();
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert_eq!(records(dir.path()).len(), 2);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "reason two\n");
}

/// A cargo log of two test binaries: `alpha` 3 passed, `beta` 2 passed, 1 failed
/// (`beta_fails`) and 1 ignored; captured output in the failures section looks like a
/// name list but is not one.
const FAKE_LOG: &str = "\
     Running tests/alpha.rs (target/debug/deps/alpha-0123456789abcdef)

running 3 tests
test skips_once ... ok
test plain ... ok
test other ... ok

test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/beta.rs (target/debug/deps/beta-fedcba9876543210)

running 4 tests
test ignored_one ... ignored
test beta_fails ... FAILED
test beta_skips ... ok
test beta_plain ... ok

failures:

---- beta_fails stdout ----
    beta_skips
thread 'beta_fails' panicked at tests/beta.rs:3:5

failures:
    beta_fails

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";

fn count(log: &Path, skips: Option<&Path>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/count.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(log);
    if let Some(s) = skips {
        cmd.arg(s);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "count.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn count_sh_moves_recorded_tests_from_passed_to_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cargo.log");
    std::fs::write(&log, FAKE_LOG).unwrap();
    assert_eq!(
        count(&log, None),
        "5 1 1\n",
        "without records: cargo's counts"
    );

    let skips = dir.path().join("skips");
    std::fs::create_dir(&skips).unwrap();
    // Two reasons in one test count once; a failed test with a record stays failed.
    for (krate, test, reason) in [
        ("alpha", "skips_once", "tool a missing"),
        ("alpha", "skips_once", "tool b missing"),
        ("beta", "beta_skips", "tool c missing"),
        ("beta", "beta_fails", "tool d missing"),
    ] {
        support::record_skip(&skips, krate, test, reason).unwrap();
    }
    let text = count(&log, Some(&skips));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("3 1 3"), "{text}");
    let mut reasons: Vec<&str> = lines.collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "  alpha::skips_once: tool a missing",
            "  alpha::skips_once: tool b missing",
            "  beta::beta_fails: tool d missing",
            "  beta::beta_skips: tool c missing",
        ]
    );
}
