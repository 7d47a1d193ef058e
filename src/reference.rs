//! Image references as Docker normalises them (`fixture` ->
//! `docker.io/library/fixture:latest`), their familiar form, and the
//! `pkg:docker` package URLs that name images in in-toto subjects.

use crate::error::{ExportError, Result};
use crate::oci::Platform;
use crate::platform;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// Repository path (`library/fixture`).
    pub path: String,
    pub tag: String,
    /// `alg:hex` when the reference pins a digest.
    pub digest: String,
}

impl Reference {
    /// Parses and normalises a reference; adds `:latest` when neither tag nor
    /// digest is given.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| {
            ExportError::invalid("name", format!("invalid reference format: {why}: {s:?}"))
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("empty name"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, d.to_string()),
            None => (s, String::new()),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], rest[i + 1..].to_string()),
            _ => (rest, String::new()),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io".to_string()
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(bad("invalid repository path component"));
        }
        if !tag.is_empty()
            && (tag.len() > 128
                || !tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
        {
            return Err(bad("invalid tag"));
        }
        if s.contains('@') {
            check_digest(&digest).map_err(|why| bad(&why))?;
        }
        let tag = if tag.is_empty() && digest.is_empty() {
            "latest".to_string()
        } else {
            tag
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The full normalised string, e.g. `docker.io/library/fixture:latest`.
    pub fn full(&self) -> String {
        self.qualified(self.name())
    }

    /// `name` followed by `:tag` and `@digest` where present.
    fn qualified(&self, mut name: String) -> String {
        if !self.tag.is_empty() {
            name.push(':');
            name.push_str(&self.tag);
        }
        if !self.digest.is_empty() {
            name.push('@');
            name.push_str(&self.digest);
        }
        name
    }

    /// The name without `docker.io/` and `library/`.
    pub fn familiar_name(&self) -> String {
        if self.domain == "docker.io" {
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The familiar form with tag and digest (`fixture-short:latest`).
    pub fn familiar(&self) -> String {
        self.qualified(self.familiar_name())
    }

    /// The package URL BuildKit writes as a statement subject:
    /// `pkg:docker/<namespace>/<name>@<tag>?digest=<digest>&platform=<platform>`.
    /// As packageurl-go writes it: namespace segments and the name are
    /// query-escaped (a registry port's `:` becomes `%3A`), the version and the
    /// qualifier values path-escaped; a pinned digest is a qualifier, not the
    /// version.
    pub fn purl(&self, platform: Option<&Platform>) -> String {
        let name = self.familiar_name();
        let mut s = String::from("pkg:docker/");
        let segments: Vec<String> = name.split('/').map(platform::query_escape).collect();
        s.push_str(&segments.join("/"));
        if !self.tag.is_empty() {
            s.push('@');
            s.push_str(&path_escape(&self.tag));
        }
        let mut qualifiers = Vec::new();
        if !self.digest.is_empty() {
            qualifiers.push(format!("digest={}", path_escape(&self.digest)));
        }
        if let Some(p) = platform {
            qualifiers.push(format!("platform={}", path_escape(&platform::format(p))));
        }
        if !qualifiers.is_empty() {
            s.push('?');
            s.push_str(&qualifiers.join("&"));
        }
        s
    }
}

/// Checks a digest as OCI allows it in references and URLs: `sha256:` and
/// 64 lowercase hex digits, or `sha512:` and 128. Any other algorithm, case
/// or length is refused, so a digest can never reach a URL path unchecked.
pub fn check_digest(d: &str) -> std::result::Result<(), String> {
    if crate::oci::digest_algorithm(d).is_some() {
        return Ok(());
    }
    // What is wrong, for the message; `oci::digest_algorithm` is the rule.
    let Some((alg, _)) = d.split_once(':') else {
        return Err("a digest is <algorithm>:<hex>".to_string());
    };
    Err(match alg {
        "sha256" => "a sha256 digest is 64 lowercase hex digits".to_string(),
        "sha512" => "a sha512 digest is 128 lowercase hex digits".to_string(),
        _ => format!("unsupported digest algorithm {alg:?} (sha256 and sha512 are)"),
    })
}

/// A tag of Docker's grammar: up to 128 of `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A path component of Docker's grammar: lowercase alphanumerics joined by
/// single separators (`.`, `_`, `__` or runs of `-`).
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Go's `url.PathEscape`.
fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b':'
            | b'='
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits the `name` attribute (comma separated) into normalised references.
pub fn parse_names(names: &str) -> Result<Vec<Reference>> {
    names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(Reference::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_docker_hub_names() {
        let r = Reference::parse("fixture-short").unwrap();
        assert_eq!(r.full(), "docker.io/library/fixture-short:latest");
        assert_eq!(r.familiar(), "fixture-short:latest");
        let r = Reference::parse("example.com/app/fixture:1.0").unwrap();
        assert_eq!(r.full(), "example.com/app/fixture:1.0");
        assert_eq!(r.tag, "1.0");
        let r = Reference::parse("localhost:5000/demo").unwrap();
        assert_eq!(r.full(), "localhost:5000/demo:latest");
        assert!(Reference::parse("Upper/Case").is_err());
        assert!(Reference::parse("example.com/../etc").is_err());
        assert!(Reference::parse("example.com/a..b").is_err());
        assert!(Reference::parse("example.com/a__b-c.d/e---f").is_ok());
    }

    #[test]
    fn digests_are_checked() {
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("img:v1@sha256:{hex}")).unwrap();
        assert_eq!(r.digest, format!("sha256:{hex}"));
        assert!(Reference::parse(&format!("img@sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "img:v1@sha256:../../x".to_string(),
            format!("img@sha256:{}", "A".repeat(64)),
            format!("img@sha256:{}", "a".repeat(63)),
            format!("img@sha512:{hex}"),
            format!("img@md5:{}", "a".repeat(32)),
            "img@".to_string(),
            "img@sha256".to_string(),
        ] {
            let err = Reference::parse(&bad).unwrap_err();
            assert!(
                err.message.contains("invalid reference format"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn purls() {
        let p = Platform::new("linux", "arm64");
        assert_eq!(
            Reference::parse("example.com/app/fixture:1.0")
                .unwrap()
                .purl(Some(&p)),
            "pkg:docker/example.com/app/fixture@1.0?platform=linux%2Farm64"
        );
        assert_eq!(
            Reference::parse("docker.io/library/golden:latest")
                .unwrap()
                .purl(None),
            "pkg:docker/golden@latest"
        );
        // A registry port is query-escaped, as packageurl-go escapes names.
        assert_eq!(
            Reference::parse("127.0.0.1:5000/e2e/mp:1")
                .unwrap()
                .purl(Some(&p)),
            "pkg:docker/127.0.0.1%3A5000/e2e/mp@1?platform=linux%2Farm64"
        );
        // A pinned digest is a qualifier.
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            Reference::parse(&format!("example.com/a@{d}"))
                .unwrap()
                .purl(Some(&p)),
            format!("pkg:docker/example.com/a?digest={d}&platform=linux%2Farm64")
        );
    }
}
