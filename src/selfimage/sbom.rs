//! An SPDX 2.3 document of the crate and its dependencies, from the
//! `Cargo.lock` the binary was built with.
//!
//! The lock lists every package the workspace may build (all targets, all
//! platforms); that over-approximates the binary, which is the safe side for
//! an SBOM. Dependency edges come from each package's `dependencies` list.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The lock file the crate was compiled with.
pub const CARGO_LOCK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"));

/// One `[[package]]` of a lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub checksum: Option<String>,
    /// `name version` of each dependency.
    pub dependencies: Vec<String>,
}

/// Reads the `[[package]]` tables of a Cargo.lock with `cargo-lock`. Every
/// dependency entry comes out as `name version`: the parser resolves the
/// entries that name only a package to the version the lock holds.
pub fn parse_lock(text: &str) -> Result<Vec<LockedPackage>, String> {
    let lock: cargo_lock::Lockfile = text.parse().map_err(|e| format!("Cargo.lock: {e}"))?;
    Ok(lock
        .packages
        .iter()
        .map(|p| LockedPackage {
            name: p.name.to_string(),
            version: p.version.to_string(),
            source: p.source.as_ref().map(ToString::to_string),
            checksum: p.checksum.as_ref().map(ToString::to_string),
            dependencies: p
                .dependencies
                .iter()
                .map(|d| format!("{} {}", d.name, d.version))
                .collect(),
        })
        .collect())
}

/// An SPDX id: letters, digits, `.` and `-` only.
fn spdx_id(name: &str, version: &str) -> String {
    let raw = format!("SPDXRef-Package-cargo-{name}-{version}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The SPDX document describing `root` (the crate the binary is built from).
/// `namespace_key` makes the document namespace unique per binary (its
/// digest); `created` is an RFC 3339 time.
pub fn document(
    packages: &[LockedPackage],
    root: &str,
    namespace_key: &str,
    created: &str,
) -> Value {
    let version_of: BTreeMap<&str, Vec<&str>> =
        packages.iter().fold(BTreeMap::new(), |mut m, p| {
            m.entry(p.name.as_str())
                .or_default()
                .push(p.version.as_str());
            m
        });
    // A dependency entry names a version only when the name is ambiguous.
    let resolve = |entry: &str| -> Option<String> {
        let mut parts = entry.split_whitespace();
        let name = parts.next()?;
        let version = match parts.next() {
            Some(v) => v,
            None => version_of.get(name)?.first()?,
        };
        Some(spdx_id(name, version))
    };

    let mut spdx_packages = Vec::new();
    let mut relationships = Vec::new();
    let root_pkg = packages
        .iter()
        .find(|p| p.name == root && p.source.is_none());
    if let Some(r) = root_pkg {
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": spdx_id(&r.name, &r.version),
        }));
    }
    for p in packages {
        let id = spdx_id(&p.name, &p.version);
        let registry = p
            .source
            .as_deref()
            .is_some_and(|s| s.starts_with("registry+"));
        let download = if registry {
            format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                p.name, p.version
            )
        } else {
            "NOASSERTION".to_string()
        };
        let mut pkg = json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": download,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:cargo/{}@{}", p.name, p.version),
            }],
        });
        if let Some(sum) = &p.checksum {
            pkg["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
        }
        spdx_packages.push(pkg);
        for dep in &p.dependencies {
            if let Some(target) = resolve(dep) {
                relationships.push(json!({
                    "spdxElementId": id,
                    "relationshipType": "DEPENDS_ON",
                    "relatedSpdxElement": target,
                }));
            }
        }
    }
    let version = root_pkg.map(|p| p.version.as_str()).unwrap_or("unknown");
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{root}-{version}"),
        "documentNamespace": format!("https://spdx.org/spdxdocs/{root}-{version}-{namespace_key}"),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: oxport-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    })
}

/// Adds the files of the image's layer to `doc`: each by its path in the
/// image and its SHA-256, described by the document. The packages say what
/// the binary was built from; the files say what the image holds (the
/// binary, its loader and the shared libraries it loads).
pub fn add_files(doc: &mut Value, files: &[(String, String)]) {
    let mut entries = Vec::new();
    for (i, (path, sha256)) in files.iter().enumerate() {
        let id = format!("SPDXRef-File-{i}");
        entries.push(json!({
            "fileName": format!("./{path}"),
            "SPDXID": id,
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256}],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        if let Some(r) = doc["relationships"].as_array_mut() {
            r.push(json!({
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": id,
            }));
        }
    }
    doc["files"] = Value::Array(entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    const LOCK: &str = r#"
version = 4

[[package]]
name = "a"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
dependencies = [
 "b 0.1.0",
]

[[package]]
name = "b"
version = "0.1.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "b"
version = "0.2.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "me"
version = "0.3.0"
dependencies = ["a"]
"#;

    #[test]
    fn parses_packages_and_edges() {
        let pkgs = parse_lock(LOCK).unwrap();
        assert_eq!(pkgs.len(), 4);
        assert_eq!(pkgs[0].dependencies, ["b 0.1.0"]);
        assert_eq!(pkgs[0].checksum.as_deref(), Some(CHECKSUM));
        assert_eq!(
            pkgs[0].source.as_deref(),
            Some("registry+https://github.com/rust-lang/crates.io-index")
        );
        assert_eq!(pkgs[3].source, None);
        assert_eq!(pkgs[3].dependencies, ["a 1.0.0"]);

        let doc = document(&pkgs, "me", "k", "2024-01-01T00:00:00Z");
        assert_eq!(doc["name"], "me-0.3.0");
        let rels = doc["relationships"].as_array().unwrap();
        assert_eq!(
            rels[0]["relatedSpdxElement"],
            "SPDXRef-Package-cargo-me-0.3.0"
        );
        assert!(rels
            .iter()
            .any(|r| r["spdxElementId"] == "SPDXRef-Package-cargo-a-1.0.0"
                && r["relatedSpdxElement"] == "SPDXRef-Package-cargo-b-0.1.0"));
        assert!(rels
            .iter()
            .any(|r| r["spdxElementId"] == "SPDXRef-Package-cargo-me-0.3.0"
                && r["relatedSpdxElement"] == "SPDXRef-Package-cargo-a-1.0.0"));
        assert!(parse_lock("[[package]]\nname = 1\n").is_err());
    }

    #[test]
    fn the_crates_own_lock_is_read() {
        let pkgs = parse_lock(CARGO_LOCK).unwrap();
        assert!(pkgs
            .iter()
            .any(|p| p.name == "oxport" && p.source.is_none()));
        assert!(pkgs
            .iter()
            .any(|p| p.name == "tonic" && p.checksum.is_some()));
    }
}
