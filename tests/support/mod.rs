//! The one test-support policy of the integration tests: when a run is CI, and what a
//! missing prerequisite (a tool, a Python package, a shared checkout) means. Every test
//! file declares `mod support;`; the helper trees (`harness/`, `registry_support/`) use it
//! too, so there is a single rule.
//!
//! - CI: [`in_ci`] is true when `CI` is `true` (in any letter case) or `1`, as CI systems
//!   and `.ci/run` set it. Anything else, unset included, is a developer's run.
//! - Under CI a missing prerequisite fails the test: [`missing`] panics naming it.
//! - Elsewhere the part it guards is reported as SKIPPED, never as passed. Cargo's test
//!   harness has no skip at run time, so [`skip`] prints a `NOT CHECKED` banner on stderr
//!   (outside the harness's capture, so it is always seen) and, when `OXPORT_TEST_SKIPS`
//!   names a directory, writes one record there: a file named `CRATE--TEST--HASH` (the test
//!   binary, the test, a hash of the reason) holding the reason. `tests/run.sh` points
//!   `OXPORT_TEST_SKIPS` at a fresh directory and, through `tests/count.sh`, counts every
//!   test with a record (and no failure) as skipped instead of passed. The caller returns
//!   early, or leaves out only the part it could not check.

#![allow(dead_code)]

pub mod pki;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the directory of skip records.
pub const SKIPS_ENV: &str = "OXPORT_TEST_SKIPS";

/// True when this run is CI: `CI` is `true` (any case) or `1`.
pub fn in_ci() -> bool {
    is_ci_value(std::env::var("CI").ok().as_deref())
}

/// The rule of [`in_ci`] for one value of `CI` (None: unset).
pub fn is_ci_value(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Writes straight to the process's stderr, bypassing the test harness's output
/// capture, for the few lines that must always be seen (tallies, skipped checks).
pub fn announce(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{msg}");
    let _ = err.flush();
}

/// Finds an executable on PATH (or checks an explicit path).
pub fn which(name: &str) -> Option<PathBuf> {
    let candidate = Path::new(name);
    if candidate.components().count() > 1 {
        return is_executable(candidate).then(|| candidate.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A tool that `purpose` needs. None means it is missing outside CI and the check was
/// reported as skipped; under CI a missing tool panics.
pub fn require_tool(name: &str, purpose: &str) -> Option<PathBuf> {
    if let Some(p) = which(name) {
        return Some(p);
    }
    missing(&format!("`{name}` is not installed"), purpose)
}

/// A pinned Go tool that `tests/tools.sh` installs (into `OXPORT_TOOLS_DIR`, by default
/// `target/tools`), else one of that name on `PATH`; [`missing`] when neither exists.
pub fn require_pinned_tool(name: &str, purpose: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("OXPORT_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"));
    let pinned = dir.join(name);
    if is_executable(&pinned) {
        return Some(pinned);
    }
    require_tool(
        name,
        &format!("{purpose} (bash tests/tools.sh installs `{name}`)"),
    )
}

/// A prerequisite of `purpose` is missing (`what` says which): a failure under CI, a
/// recorded skip elsewhere. Always None, so a caller can write
/// `let Some(x) = find().or_else(|| missing(..)) else { return };`.
pub fn missing<T>(what: &str, purpose: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "{what}; it is required under CI for {purpose} (tests/run.sh installs it)"
    );
    skip(
        purpose,
        &format!("{what} (tests/run.sh installs it; under CI this fails)"),
    );
    None
}

/// Reports `purpose` as not checked, `because` the reason, whatever the environment: the
/// banner, and a record when `OXPORT_TEST_SKIPS` is set. For prerequisites that CI itself
/// may lack; everything CI must have goes through [`missing`].
pub fn skip(purpose: &str, because: &str) {
    announce(&format!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! NOT CHECKED: {purpose}\n\
         !!! because {because}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    ));
    let Some(dir) = std::env::var_os(SKIPS_ENV) else {
        return;
    };
    let reason = format!("{purpose}: {because}");
    let test = current_test();
    if let Err(e) = record_skip(Path::new(&dir), env!("CARGO_CRATE_NAME"), &test, &reason) {
        // A skip that cannot be recorded would be counted as passed.
        panic!("cannot record the skip of {test} in {SKIPS_ENV}: {e}");
    }
}

/// The running test's name: libtest runs each test on a thread named after it. Code on
/// another thread (a spawned task) has no test name; its record says `unknown`.
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => name.to_string(),
        _ => "unknown".into(),
    }
}

/// Writes the record of one skip into `dir`: `CRATE--TEST--HASH`, holding the reason.
/// The same reason twice in one test gives the same file.
pub fn record_skip(dir: &Path, krate: &str, test: &str, reason: &str) -> std::io::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(&Sha256::digest(reason.as_bytes())[..8]);
    let path = dir.join(format!("{krate}--{test}--{hash}"));
    fs::write(&path, format!("{reason}\n"))?;
    Ok(path)
}
