//! Annotation attributes: `annotation[-<kind>][<platform>].<key>=<value>`.
//!
//! They come from exporter attributes and from result metadata (metadata wins).

use std::collections::BTreeMap;

use crate::error::{ExportError, Result};
use crate::platform;

/// The four annotation kinds, for one platform scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub manifest: BTreeMap<String, String>,
    pub manifest_descriptor: BTreeMap<String, String>,
    pub index: BTreeMap<String, String>,
    pub index_descriptor: BTreeMap<String, String>,
}

impl Annotations {
    fn merge_from(&mut self, other: &Annotations) {
        for (dst, src) in [
            (&mut self.manifest, &other.manifest),
            (&mut self.manifest_descriptor, &other.manifest_descriptor),
            (&mut self.index, &other.index),
            (&mut self.index_descriptor, &other.index_descriptor),
        ] {
            dst.extend(src.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.is_empty()
            && self.manifest_descriptor.is_empty()
            && self.index.is_empty()
            && self.index_descriptor.is_empty()
    }
}

/// Annotations by platform scope: "" for unscoped, else a normalised platform id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnotationSet(pub BTreeMap<String, Annotations>);

impl AnnotationSet {
    /// Adds `other` on top of `self` (other's values win).
    pub fn merge(&mut self, other: &AnnotationSet) {
        for (p, a) in &other.0 {
            self.0.entry(p.clone()).or_default().merge_from(a);
        }
    }

    /// The annotations that apply to a platform (unscoped first, then its own
    /// scope on top); `None` gives the unscoped ones only.
    pub fn for_platform(&self, platform_id: Option<&str>) -> Annotations {
        let mut out = Annotations::default();
        if let Some(a) = self.0.get("") {
            out.merge_from(a);
        }
        if let Some(p) = platform_id {
            if let Some(a) = self.0.get(p) {
                out.merge_from(a);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(Annotations::is_empty)
    }

    /// Platform scopes that are used (not "").
    pub fn scoped_platforms(&self) -> impl Iterator<Item = &str> {
        self.0.keys().filter(|k| !k.is_empty()).map(String::as_str)
    }
}

/// Splits a key into (kind, platform, key) when it is an annotation key.
fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix("annotation")?;
    let (kind, rest) = match rest.strip_prefix('-') {
        Some(r) => {
            let end = r
                .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let (plat, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let end = r.find(']')?;
            let p = &r[..end];
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/' || c == '-')
            {
                return None;
            }
            (p, &r[end + 1..])
        }
        None => ("", rest),
    };
    let k = rest.strip_prefix('.')?;
    if k.is_empty() || k.chars().any(char::is_whitespace) {
        return None;
    }
    Some((kind, plat, k))
}

/// Parses the annotation keys out of a map; returns them and the other keys.
pub fn parse(
    attrs: &BTreeMap<String, String>,
) -> Result<(AnnotationSet, BTreeMap<String, String>)> {
    let mut set = AnnotationSet::default();
    let mut rest = BTreeMap::new();
    for (k, v) in attrs {
        let Some((kind, plat, key)) = split_key(k) else {
            rest.insert(k.clone(), v.clone());
            continue;
        };
        let scope = if plat.is_empty() {
            String::new()
        } else {
            let p = platform::parse(plat).ok_or_else(|| {
                ExportError::invalid(k.as_str(), format!("invalid platform {plat} in {k}"))
            })?;
            platform::format(&p)
        };
        let a = set.0.entry(scope).or_default();
        let target = match kind {
            "" | "manifest" => &mut a.manifest,
            "manifest-descriptor" => &mut a.manifest_descriptor,
            "index" => &mut a.index,
            "index-descriptor" => &mut a.index_descriptor,
            other => {
                return Err(ExportError::invalid(
                    k.as_str(),
                    format!("unrecognized annotation type {other}"),
                ))
            }
        };
        target.insert(key.to_string(), v.clone());
    }
    Ok((set, rest))
}

/// Refuses an annotation (key plus value) larger than `max`: annotations
/// travel in every manifest and index, and registries cap manifest sizes at
/// a few MiB. Takes (attribute or metadata key, value length); other keys pass.
pub fn check_sizes<'a>(entries: impl Iterator<Item = (&'a str, usize)>, max: usize) -> Result<()> {
    for (k, len) in entries {
        let Some((_, _, key)) = split_key(k) else {
            continue;
        };
        if key.len() + len > max {
            return Err(crate::limits::exceeded(
                k,
                format!("annotation {key} of {} bytes", key.len() + len),
                max as u64,
                "max-annotation-size",
            ));
        }
    }
    Ok(())
}

/// Parses the annotation keys of result metadata (byte values).
pub fn parse_metadata(meta: &BTreeMap<String, Vec<u8>>) -> Result<AnnotationSet> {
    let strings: BTreeMap<String, String> = meta
        .iter()
        .filter(|(k, _)| k.starts_with("annotation"))
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    Ok(parse(&strings)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_scopes() {
        let attrs: BTreeMap<String, String> = [
            ("annotation.a", "1"),
            ("annotation-index.b", "2"),
            ("annotation-manifest-descriptor[linux/aarch64].c", "3"),
            ("annotationx", "4"),
            ("name", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (set, rest) = parse(&attrs).unwrap();
        assert_eq!(rest.len(), 2);
        let arm = set.for_platform(Some("linux/arm64"));
        assert_eq!(arm.manifest["a"], "1");
        assert_eq!(arm.index["b"], "2");
        assert_eq!(arm.manifest_descriptor["c"], "3");
        assert!(set.for_platform(None).manifest_descriptor.is_empty());
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let attrs: BTreeMap<String, String> =
            [("annotation-foo.k".to_string(), "v".to_string())].into();
        assert_eq!(
            parse(&attrs).unwrap_err().message,
            "unrecognized annotation type foo"
        );
    }
}
