//! The conformance cases (tests/conformance/FORMAT.md): the fixtures of
//! `tests/conformance/buildkit-master` and `buildkit-daemon` and the example build
//! result; the ratchet list of the cases that do not pass yet; and the README's
//! headline checked against the counts by kind.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::claims;
use super::{fixtures_dir, repo_root};

pub const PENDING: &str = "tests/conformance-pending.txt";
pub const EXAMPLE: &str = "examples/two-platform";
/// The fixtures recorded from a running daemon; their cases are named
/// `buildkit-daemon/<case>`.
pub const DAEMON_SET: &str = "buildkit-daemon";

pub fn daemon_fixtures_dir() -> PathBuf {
    repo_root().join("tests/conformance").join(DAEMON_SET)
}

/// One case: a fixture, or the example build result.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub json: Value,
}

impl Case {
    pub fn exporter(&self) -> &str {
        self.json["exporter"].as_str().unwrap_or("oci")
    }
}

pub fn load_case(name: String, dir: PathBuf) -> Case {
    let path = dir.join("case.json");
    let text = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let json =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    Case { name, dir, json }
}

/// The fixture names of one set, sorted; at least `min` of them.
pub fn case_names(dir: &Path, min: usize) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("case.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= min,
        "only {} fixtures found under {}",
        names.len(),
        dir.display()
    );
    names
}

pub fn load_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = case_names(&fixtures_dir(), 60)
        .into_iter()
        .map(|n| {
            let dir = fixtures_dir().join(&n);
            load_case(n, dir)
        })
        .collect();
    for n in case_names(&daemon_fixtures_dir(), 4) {
        let dir = daemon_fixtures_dir().join(&n);
        cases.push(load_case(format!("{DAEMON_SET}/{n}"), dir));
    }
    cases.push(load_case(EXAMPLE.into(), repo_root().join(EXAMPLE)));
    cases
}

pub fn read_pending(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {PENDING}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

pub fn write_pending(path: &Path, failing: &BTreeSet<String>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .filter(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = header;
    for c in failing {
        out.push_str(c);
        out.push('\n');
    }
    fs::write(path, out).unwrap_or_else(|e| panic!("write {PENDING}: {e}"));
}

/// The README's headline must state exactly `counts`.
pub fn check_readme(counts: &claims::Counts) -> Result<(), String> {
    let readme = fs::read_to_string(repo_root().join("README.md")).map_err(|e| e.to_string())?;
    let stated = claims::readme_counts(&readme)?;
    if stated == *counts {
        Ok(())
    } else {
        Err(format!(
            "README.md states {}, but the fixtures give {}",
            stated.describe(),
            counts.describe()
        ))
    }
}

/// The fixtures by kind, the example and the pending cases left out: what passes.
pub fn declared_counts(cases: &[Case], pending: &BTreeSet<String>) -> claims::Counts {
    let mut counts = claims::Counts::default();
    for c in cases
        .iter()
        .filter(|c| c.name != EXAMPLE && !pending.contains(&c.name))
    {
        counts.add(&c.json["expect"], c.name.starts_with(DAEMON_SET));
    }
    counts
}
