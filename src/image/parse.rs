//! Reading OCI JSON (descriptor, platform, manifest, index) back into the
//! [`crate::oci`] types, whose writers give Go's bytes. Fields outside the
//! Go structs are reported, since a rewrite drops them as Go would.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{ExportError, Result};
use crate::oci::{Descriptor, Index, Manifest, Platform};

const DESCRIPTOR_FIELDS: &[&str] = &[
    "mediaType",
    "digest",
    "size",
    "urls",
    "annotations",
    "data",
    "platform",
    "artifactType",
];
const MANIFEST_FIELDS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "subject",
    "annotations",
];
const INDEX_FIELDS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "manifests",
    "subject",
    "annotations",
];

fn bad(at: &str, msg: impl std::fmt::Display) -> ExportError {
    ExportError::invalid(at, format!("{at}: {msg}"))
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| bad(at, "not a JSON object"))
}

fn string(o: &Map<String, Value>, key: &str, at: &str) -> Result<String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(&format!("{at}.{key}"), "not a string")),
    }
}

fn strings(o: &Map<String, Value>, key: &str, at: &str) -> Result<Vec<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(&format!("{at}.{key}[{i}]"), "not a string"))
            })
            .collect(),
        Some(_) => Err(bad(&format!("{at}.{key}"), "not an array")),
    }
}

fn string_map(o: &Map<String, Value>, key: &str, at: &str) -> Result<BTreeMap<String, String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(bad(&format!("{at}.{key}[{k:?}]"), "not a string")),
            })
            .collect(),
        Some(_) => Err(bad(&format!("{at}.{key}"), "not an object")),
    }
}

/// Names the fields Go's struct would drop.
fn unknown_fields(o: &Map<String, Value>, known: &[&str]) -> Vec<String> {
    o.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

pub fn platform(v: &Value, at: &str) -> Result<Platform> {
    let o = object(v, at)?;
    Ok(Platform {
        architecture: string(o, "architecture", at)?,
        os: string(o, "os", at)?,
        os_version: string(o, "os.version", at)?,
        os_features: strings(o, "os.features", at)?,
        variant: string(o, "variant", at)?,
    })
}

pub fn descriptor(v: &Value, at: &str) -> Result<Descriptor> {
    let o = object(v, at)?;
    let size = match o.get("size") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| bad(&format!("{at}.size"), "not a non-negative integer"))?,
        None => 0,
        Some(_) => return Err(bad(&format!("{at}.size"), "not a number")),
    };
    let digest = string(o, "digest", at)?;
    if digest.is_empty() {
        return Err(bad(&format!("{at}.digest"), "missing"));
    }
    if !unknown_fields(o, DESCRIPTOR_FIELDS).is_empty() {
        tracing::debug!(at, "descriptor has fields outside the OCI descriptor");
    }
    Ok(Descriptor {
        media_type: string(o, "mediaType", at)?,
        digest,
        size,
        urls: strings(o, "urls", at)?,
        annotations: string_map(o, "annotations", at)?,
        data: string(o, "data", at)?,
        platform: match o.get("platform") {
            None | Some(Value::Null) => None,
            Some(p) => Some(platform(p, &format!("{at}.platform"))?),
        },
        artifact_type: string(o, "artifactType", at)?,
    })
}

fn descriptors(o: &Map<String, Value>, key: &str, at: &str) -> Result<Vec<Descriptor>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, d)| descriptor(d, &format!("{at}.{key}[{i}]")))
            .collect(),
        Some(_) => Err(bad(&format!("{at}.{key}"), "not an array")),
    }
}

fn subject(o: &Map<String, Value>, at: &str) -> Result<Option<Descriptor>> {
    match o.get("subject") {
        None | Some(Value::Null) => Ok(None),
        Some(s) => Ok(Some(descriptor(s, &format!("{at}.subject"))?)),
    }
}

fn json_value(bytes: &[u8], at: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| bad(at, format!("invalid JSON: {e}")))
}

/// A parsed manifest and the fields it had that a rewrite would drop.
#[derive(Debug)]
pub struct Parsed<T> {
    pub value: T,
    pub dropped: Vec<String>,
}

pub fn manifest(bytes: &[u8], at: &str) -> Result<Parsed<Manifest>> {
    let v = json_value(bytes, at)?;
    let o = object(&v, at)?;
    let config = match o.get("config") {
        Some(c) => descriptor(c, &format!("{at}.config"))?,
        None => return Err(bad(&format!("{at}.config"), "missing")),
    };
    Ok(Parsed {
        value: Manifest {
            media_type: string(o, "mediaType", at)?,
            artifact_type: string(o, "artifactType", at)?,
            config,
            layers: descriptors(o, "layers", at)?,
            subject: subject(o, at)?,
            annotations: string_map(o, "annotations", at)?,
        },
        dropped: unknown_fields(o, MANIFEST_FIELDS),
    })
}

pub fn index(bytes: &[u8], at: &str) -> Result<Parsed<Index>> {
    let v = json_value(bytes, at)?;
    let o = object(&v, at)?;
    Ok(Parsed {
        value: Index {
            media_type: string(o, "mediaType", at)?,
            artifact_type: string(o, "artifactType", at)?,
            manifests: descriptors(o, "manifests", at)?,
            subject: subject(o, at)?,
            annotations: string_map(o, "annotations", at)?,
        },
        dropped: unknown_fields(o, INDEX_FIELDS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_to_the_same_bytes() {
        let d = r#"{"mediaType":"application/vnd.in-toto+json","digest":"sha256:aa","size":3,"annotations":{"b":"2","a":"1"}}"#;
        let src = format!(
            r#"{{"schemaVersion":2,"mediaType":"m","artifactType":"t","config":{d},"layers":[{d}],"subject":{{"mediaType":"x","digest":"sha256:bb","size":1}}}}"#
        );
        let m = manifest(src.as_bytes(), "m").unwrap();
        assert!(m.dropped.is_empty());
        let want = crate::json::pretty(&src.replace(r#""b":"2","a":"1""#, r#""a":"1","b":"2""#));
        assert_eq!(String::from_utf8(m.value.to_bytes()).unwrap(), want);
    }

    #[test]
    fn errors_name_the_location() {
        let e = manifest(br#"{"config":{"digest":"sha256:a","size":-1}}"#, "blob x").unwrap_err();
        assert_eq!(e.message, "blob x.config.size: not a non-negative integer");
        let e = index(br#"{"manifests":[{"size":1}]}"#, "i").unwrap_err();
        assert_eq!(e.message, "i.manifests[0].digest: missing");
        let i = index(br#"{"schemaVersion":2,"manifests":[],"extra":1}"#, "i").unwrap();
        assert_eq!(i.dropped, vec!["extra".to_string()]);
    }
}
