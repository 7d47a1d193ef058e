//! The core SBOM: which attestation it is, and BuildKit's supplement to it.
//!
//! An attestation whose metadata carries `sbom-core: NAME` is the core SBOM
//! when its path is `NAME.<ext>`. BuildKit puts the core statements before the
//! others, and rewrites a core SPDX document: each file without a comment that
//! one of the image's layers holds gets `"comment":"layerID: <digest>"` (the
//! topmost exported layer that has the path; whiteout entries do not count, so
//! a deleted file names the layer that created it), the creator
//! `Tool: buildkit-<builder version>` is appended, and the document is written
//! through the SPDX 2.3 Go types (`crate::spdx`). A document that does not
//! decode as SPDX 2.3 stays as it is.
//!
//! Pure: the layers' entry names arrive as data ([`LayerFiles`]).

use std::collections::{BTreeMap, HashMap};

use crate::spdx::{Creator, Document};

/// The metadata key that names the core SBOM.
pub const SBOM_CORE: &str = "sbom-core";
/// in-toto's predicate type of an SPDX document.
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";
/// What a daemon built without version stamping reports.
pub const UNKNOWN_VERSION: &str = "v0.0.0+unknown";

/// Go's `path.Clean`: the shortest lexically equivalent path.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let p = path.as_bytes();
    let rooted = p[0] == b'/';
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    let n = p.len();
    while r < n {
        let ends_at = |i: usize| i == n || p[i] == b'/';
        if p[r] == b'/' || (p[r] == b'.' && ends_at(r + 1)) {
            r += 1;
        } else if p[r] == b'.' && r + 1 < n && p[r + 1] == b'.' && ends_at(r + 2) {
            r += 2;
            if out.len() > dotdot {
                out.pop();
                while out.len() > dotdot && out[out.len() - 1] != b'/' {
                    out.pop();
                }
                if out.len() > dotdot {
                    out.pop();
                }
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".into();
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Go's `path.Join` of two elements.
pub fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(name),
        (false, true) => clean(dir),
        (false, false) => clean(&format!("{dir}/{name}")),
    }
}

/// Go's `path.Base`.
pub fn base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

fn core_name(metadata: &BTreeMap<String, String>) -> Option<&str> {
    metadata.get(SBOM_CORE).map(String::as_str)
}

fn before_dot(s: &str) -> &str {
    s.split_once('.').map_or(s, |(a, _)| a)
}

/// Whether an attestation goes first: its whole path up to the first dot is
/// the core name (so `sbom.spdx.json`, but not `out/sbom.spdx.json`).
pub fn sorts_first(path: &str, metadata: &BTreeMap<String, String>) -> bool {
    core_name(metadata).is_some_and(|n| before_dot(path) == n)
}

/// Whether an in-toto attestation is a core SPDX SBOM to supplement: the
/// base name of its path up to the first dot is the core name.
pub fn is_core_spdx(predicate_type: &str, path: &str, metadata: &BTreeMap<String, String>) -> bool {
    predicate_type == PREDICATE_SPDX
        && core_name(metadata).is_some_and(|n| before_dot(base(path)) == n)
}

/// The entry names of one platform's exported layers, for finding the
/// topmost layer that holds a path.
#[derive(Debug, Default)]
pub struct LayerFiles {
    digests: Vec<String>,
    topmost: HashMap<String, usize>,
}

/// The key a tar entry name or an SPDX file name is looked up by
/// (Go's `filepath.Join("/", name)`).
fn lookup_key(name: &str) -> String {
    clean(&format!("/{name}"))
}

impl LayerFiles {
    /// `layers`: lowest first, each the exported layer's digest and its tar
    /// entry names as written in the archive.
    pub fn new<'a, I, N>(layers: I) -> Self
    where
        I: IntoIterator<Item = (String, N)>,
        N: IntoIterator<Item = &'a String>,
    {
        let mut digests = Vec::new();
        let mut names = Vec::new();
        for (d, n) in layers {
            digests.push(d);
            names.push(n);
        }
        let mut topmost = HashMap::new();
        for (i, layer) in names.into_iter().enumerate().rev() {
            for name in layer {
                let key = lookup_key(name);
                if base(&key).starts_with(".wh.") {
                    continue;
                }
                topmost.entry(key).or_insert(i);
            }
        }
        LayerFiles { digests, topmost }
    }

    /// The digest of the topmost layer that holds `name`.
    pub fn find(&self, name: &str) -> Option<&str> {
        self.topmost
            .get(&lookup_key(name))
            .map(|&i| self.digests[i].as_str())
    }
}

/// BuildKit's supplement of a core SPDX document. `Ok(None)`: not SPDX 2.3,
/// left as it is. `Err`: the document decoded but cannot be written back
/// (as in Go, for example a creator with an empty name).
pub fn supplement(
    content: &[u8],
    layers: &LayerFiles,
    builder_version: &str,
) -> Result<Option<Vec<u8>>, String> {
    let Some(mut doc) = Document::decode(content) else {
        return Ok(None);
    };
    for f in doc.files_mut() {
        if !f.comment.is_empty() {
            // An existing comment is unstructured: it is never overwritten.
            continue;
        }
        if let Some(d) = layers.find(&f.file_name) {
            f.comment = format!("layerID: {d}");
        }
    }
    let version = if builder_version.is_empty() {
        UNKNOWN_VERSION
    } else {
        builder_version
    };
    doc.add_creator(Creator::new("Tool", &format!("buildkit-{version}")));
    let bytes = doc
        .encode()
        .map_err(|e| format!("unable to encode spdx: {}", e.0))?;
    Ok(Some(bytes.into_bytes()))
}

#[cfg(test)]
mod tests;
