//! `rust-version` in Cargo.toml is what the locked dependencies need: the
//! highest `rust-version` among the packages of Cargo.lock, as their own
//! manifests in Cargo's registry cache declare it. The README states it.

use std::path::{Path, PathBuf};

fn field<'a>(toml: &'a str, key: &str) -> Option<&'a str> {
    toml.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"))
}

#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = env!("CARGO_PKG_RUST_VERSION");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home().join("registry/src"))
        .expect("Cargo's registry cache (the dependencies were built from it)")
        .map(|e| e.unwrap().path())
        .collect();
    let (mut highest, mut by, mut read) = (Vec::new(), String::new(), 0);
    for pkg in lock.split("[[package]]").skip(1) {
        if !pkg.contains("source = \"registry+") {
            continue;
        }
        let (name, ver) = (field(pkg, "name").unwrap(), field(pkg, "version").unwrap());
        let Some(manifest) = registries
            .iter()
            .map(|r| r.join(format!("{name}-{ver}/Cargo.toml")))
            .find(|p| p.is_file())
        else {
            continue; // Locked for another platform, never downloaded here.
        };
        read += 1;
        let text = std::fs::read_to_string(&manifest).unwrap();
        if let Some(rv) = field(&text, "rust-version") {
            if version(rv) > highest {
                highest = version(rv);
                by = format!("{name} {ver} ({rv})");
            }
        }
    }
    assert!(
        read > 100,
        "only {read} locked packages found in the registry cache"
    );
    assert_eq!(
        version(ours),
        highest,
        "rust-version {ours}; the highest need is {by}"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("`cargo`, {ours} or newer")),
        "README.md must state Rust {ours}"
    );
}
