//! Reads a build result from its on-disk form: a `case.json` plus blob and
//! attestation files beside it (the format of `tests/conformance/FORMAT.md`).
//!
//! The file is walked field by field rather than deserialised in one go, so
//! that every error names the field path it is about, with the same paths the
//! gRPC validation uses (`refs[""][0].digest`). Fields that only describe a
//! fixture (`description`, `buildkit`, `notes`, `expect`) are ignored.
//!
//! `case.json` is untrusted: every file it names (layer blobs, attestation
//! contents) must lie inside its directory once `..` and symbolic links are
//! resolved, and must be a regular file (a directory for a bundle) of
//! bounded size, read through [`crate::untrusted`]. A layer blob must hold
//! exactly the layer's `size`. Errors name the field and the file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::digest::parse_digest;
use crate::error::{ErrorKind, ExportError, Result};
use crate::model::{
    Attestation, AttestationContent, AttestationKind, BuildResult, ExportRequest, Layer, Origin,
    Subject, SubjectKind,
};
use crate::untrusted;
use crate::wire::{attestation_path, check_file_name, ref_path};

/// The largest `case.json`.
pub const MAX_CASE_JSON: u64 = 64 << 20;
/// The largest attestation content file (an in-toto statement, or one file
/// of a bundle): the default largest gRPC message.
pub const MAX_CONTENT_FILE: u64 = 256 << 20;

/// A loaded build result and where its layer blobs are on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub request: ExportRequest,
    /// Layer digest -> blob file (the first path named for that digest).
    pub blobs: BTreeMap<String, PathBuf>,
}

impl Case {
    /// Every layer as (digest, size, blob file), once per digest, in
    /// ref then layer order.
    pub fn layer_blobs(&self) -> Vec<(String, u64, PathBuf)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for layers in self.request.result.refs.values() {
            for l in layers {
                if seen.insert(l.digest.clone()) {
                    if let Some(path) = self.blobs.get(&l.digest) {
                        out.push((l.digest.clone(), l.size, path.clone()));
                    }
                }
            }
        }
        out
    }
}

/// Loads `case.json`; relative paths in it are resolved against its directory.
pub fn load(path: &Path) -> Result<Case> {
    let bytes = untrusted::read_capped(path, MAX_CASE_JSON)
        .map_err(|e| ExportError::new(io_kind(&e), format!("cannot read build result: {e}")))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&bytes, base)
}

/// Parses `case.json` bytes; relative paths are resolved against `base`,
/// and every file they name must lie inside it.
pub fn parse(json: &[u8], base: &Path) -> Result<Case> {
    let root: Value = serde_json::from_slice(json)
        .map_err(|e| ExportError::invalid("", format!("invalid case.json: {e}")))?;
    let base = &fs::canonicalize(base).map_err(|e| {
        ExportError::new(
            io_kind(&e),
            format!("cannot resolve the case directory {}: {e}", base.display()),
        )
    })?;
    let root = as_object("", &root)?;
    let mut blobs = BTreeMap::new();

    let exporter = opt_str(root, "", "exporter")?.unwrap_or_default();
    let builder_version = opt_str(root, "", "builderVersion")?.unwrap_or_default();
    let attrs = string_map(root.get("attrs"), "attrs")?;
    let compatibility_version = match root.get("compatibilityVersion") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| bad("compatibilityVersion", "want an integer"))?,
    };
    let metadata = string_map(root.get("metadata"), "metadata")?
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();

    let mut refs = BTreeMap::new();
    if let Some(v) = non_null(root.get("refs")) {
        for (key, layers) in as_object("refs", v)? {
            let field = format!("refs[{key:?}]");
            let mut chain = Vec::new();
            for (i, l) in as_array(&field, layers)?.iter().enumerate() {
                chain.push(layer(&ref_path(key, i), l, base, &mut blobs)?);
            }
            refs.insert(key.clone(), chain);
        }
    }

    let mut attestations = BTreeMap::new();
    if let Some(v) = non_null(root.get("attestations")) {
        for (key, list) in as_object("attestations", v)? {
            let field = format!("attestations[{key:?}]");
            let mut atts = Vec::new();
            for (i, a) in as_array(&field, list)?.iter().enumerate() {
                atts.push(attestation(&attestation_path(key, i), a, base)?);
            }
            attestations.insert(key.clone(), atts);
        }
    }

    Ok(Case {
        request: ExportRequest {
            exporter,
            attrs,
            compatibility_version,
            result: BuildResult {
                refs,
                metadata,
                attestations,
                builder_version,
            },
        },
        blobs,
    })
}

fn layer(
    path: &str,
    v: &Value,
    base: &Path,
    blobs: &mut BTreeMap<String, PathBuf>,
) -> Result<Layer> {
    let o = as_object(path, v)?;
    let digest = req_str(o, path, "digest")?;
    parse_digest(&format!("{path}.digest"), &digest)?;
    let diff_id = req_str(o, path, "diffID")?;
    parse_digest(&format!("{path}.diffID"), &diff_id)?;
    let size = match o.get("size") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad(&format!("{path}.size"), "want a non-negative integer"))?,
        None => return Err(bad(&format!("{path}.size"), "missing")),
    };
    let blob = req_str(o, path, "blob")?;
    let blob_field = format!("{path}.blob");
    let blob_path = case_file(&blob_field, base, &blob)?;
    let (_, stored) =
        untrusted::open_regular(&blob_path).map_err(|e| file_error(&blob_field, e))?;
    if stored != size {
        return Err(bad(
            &blob_field,
            &format!(
                "blob file {} holds {stored} bytes, but the layer's size is {size}; give the blob's exact size",
                blob_path.display()
            ),
        ));
    }
    blobs.entry(digest.clone()).or_insert(blob_path);
    Ok(Layer {
        media_type: opt_str(o, path, "mediaType")?.unwrap_or_default(),
        digest,
        size,
        diff_id,
        annotations: string_map(o.get("annotations"), &format!("{path}.annotations"))?,
        created_by: opt_str(o, path, "createdBy")?.unwrap_or_default(),
        created: opt_str(o, path, "created")?.unwrap_or_default(),
    })
}

fn attestation(path: &str, v: &Value, base: &Path) -> Result<Attestation> {
    let o = as_object(path, v)?;
    let kind = match req_str(o, path, "kind")?.as_str() {
        "InToto" => AttestationKind::InToto,
        "Bundle" => AttestationKind::Bundle,
        other => {
            return Err(bad(
                &format!("{path}.kind"),
                &format!("unknown attestation kind {other:?}: want \"InToto\" or \"Bundle\""),
            ))
        }
    };
    let content_field = format!("{path}.content");
    let content_path =
        opt_str(o, path, "content")?.ok_or_else(|| bad(&content_field, "missing"))?;
    let content = match kind {
        AttestationKind::InToto => {
            let file = case_file(&content_field, base, &content_path)?;
            AttestationContent::InToto(read_file(&content_field, &file)?)
        }
        AttestationKind::Bundle => {
            if !content_path.ends_with('/') {
                return Err(bad(
                    &content_field,
                    "a Bundle's content is a directory path ending in \"/\"",
                ));
            }
            let dir = case_file(&content_field, base, &content_path)?;
            AttestationContent::Bundle(read_bundle(&content_field, base, &dir)?)
        }
    };
    let subjects = match non_null(o.get("subjects")) {
        None => Vec::new(),
        Some(v) => {
            let field = format!("{path}.subjects");
            as_array(&field, v)?
                .iter()
                .enumerate()
                .map(|(i, s)| subject(&format!("{field}[{i}]"), s))
                .collect::<Result<Vec<_>>>()?
        }
    };
    let origin = match opt_str(o, path, "origin")?.as_deref() {
        None | Some("") | Some("frontend") => Origin::Frontend,
        Some("daemon") => Origin::Daemon,
        Some(other) => {
            return Err(bad(
                &format!("{path}.origin"),
                &format!("unknown origin {other:?}: want \"frontend\" or \"daemon\""),
            ))
        }
    };
    Ok(Attestation {
        kind,
        path: opt_str(o, path, "path")?.unwrap_or_default(),
        content,
        predicate_type: opt_str(o, path, "predicateType")?.unwrap_or_default(),
        subjects,
        metadata: string_map(o.get("metadata"), &format!("{path}.metadata"))?,
        origin,
    })
}

fn subject(path: &str, v: &Value) -> Result<Subject> {
    let o = as_object(path, v)?;
    let kind = match req_str(o, path, "kind")?.as_str() {
        "Self" => SubjectKind::SelfImage,
        "Raw" => SubjectKind::Raw,
        other => {
            return Err(bad(
                &format!("{path}.kind"),
                &format!("unknown subject kind {other:?}: want \"Self\" or \"Raw\""),
            ))
        }
    };
    let digest = match non_null(o.get("digest")) {
        None => Vec::new(),
        Some(v) => {
            let field = format!("{path}.digest");
            as_array(&field, v)?
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    d.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(&format!("{field}[{i}]"), "want a string"))
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(Subject {
        kind,
        name: opt_str(o, path, "name")?.unwrap_or_default(),
        digest,
    })
}

/// The files of a bundle directory, in file-name order; subdirectories
/// are skipped, links are followed within the case directory `base`.
fn read_bundle(field: &str, base: &Path, dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        ExportError::new(io_kind(&e), format!("cannot read {}: {e}", dir.display()))
            .with_field(field)
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ExportError::from(e).with_field(field))?;
        let path = untrusted::inside(base, &entry.path()).map_err(|e| file_error(field, e))?;
        if path.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| bad(field, &format!("bundle file name {n:?} is not UTF-8")))?;
        check_file_name(field, &name)?;
        let bytes = read_file(field, &path)?;
        files.push((name, bytes));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// `name` (from the field `field`) resolved inside the case directory `base`.
fn case_file(field: &str, base: &Path, name: &str) -> Result<PathBuf> {
    untrusted::inside(base, &base.join(name)).map_err(|e| file_error(field, e))
}

/// A regular file of the case, read whole up to [`MAX_CONTENT_FILE`].
fn read_file(field: &str, path: &Path) -> Result<Vec<u8>> {
    untrusted::read_capped(path, MAX_CONTENT_FILE).map_err(|e| file_error(field, e))
}

fn file_error(field: &str, e: std::io::Error) -> ExportError {
    ExportError::new(io_kind(&e), format!("{field}: {e}")).with_field(field)
}

// ---------------------------------------------------------------- JSON helpers

fn bad(field: &str, msg: &str) -> ExportError {
    let shown = if field.is_empty() { "case.json" } else { field };
    ExportError::invalid(field, format!("{shown}: {msg}"))
}

fn non_null(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn as_object<'a>(field: &str, v: &'a Value) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| bad(field, "want an object"))
}

fn as_array<'a>(field: &str, v: &'a Value) -> Result<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| bad(field, "want an array"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn opt_str(o: &Map<String, Value>, path: &str, key: &str) -> Result<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(&join(path, key), "want a string")),
    }
}

fn req_str(o: &Map<String, Value>, path: &str, key: &str) -> Result<String> {
    opt_str(o, path, key)?.ok_or_else(|| bad(&join(path, key), "missing"))
}

fn string_map(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>> {
    let Some(v) = non_null(v) else {
        return Ok(BTreeMap::new());
    };
    as_object(field, v)?
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(bad(&format!("{field}[{k:?}]"), "want a string")),
        })
        .collect()
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::InvalidArgument,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    /// Writes a case directory with one layer, one InToto and one Bundle.
    fn write_case(dir: &Path, case: &Value) {
        fs::create_dir_all(dir.join("blobs")).unwrap();
        fs::create_dir_all(dir.join("files/bundle")).unwrap();
        fs::write(dir.join("blobs/layer"), b"layer bytes").unwrap();
        fs::write(dir.join("files/att.json"), b"{\"x\":1}").unwrap();
        fs::write(dir.join("files/bundle/b.json"), b"{\"b\":2}").unwrap();
        fs::write(dir.join("files/bundle/a.json"), b"{\"a\":1}").unwrap();
        fs::write(
            dir.join("case.json"),
            serde_json::to_vec_pretty(case).unwrap(),
        )
        .unwrap();
    }

    fn sample() -> Value {
        serde_json::json!({
            "description": "ignored",
            "buildkit": "ignored",
            "exporter": "oci",
            "attrs": {"oci-artifact": "true"},
            "compatibilityVersion": 20,
            "metadata": {"containerimage.config": "{\"os\":\"linux\"}"},
            "refs": {"linux/amd64": [{
                "blob": "blobs/layer",
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest_of(b"layer bytes"),
                "size": 11,
                "diffID": format!("sha256:{}", "d".repeat(64)),
                "annotations": {},
                "createdBy": "mkfile /greeting",
                "created": "2026-11-28T00:31:36.515224204Z"
            }]},
            "attestations": {"linux/amd64": [
                {"kind": "InToto", "path": "/att.json", "content": "files/att.json",
                 "predicateType": "https://example.com/p",
                 "subjects": [{"kind": "Self"}, {"kind": "Raw", "name": "", "digest": ["sha256:00"]}],
                 "metadata": {"reason": "sbom"}, "origin": "daemon"},
                {"kind": "Bundle", "path": "/bundle", "content": "files/bundle/",
                 "predicateType": "", "subjects": []}
            ]},
            "notes": ["ignored"],
            "expect": {"error": "ignored"}
        })
    }

    #[test]
    fn loads_every_field() {
        let dir = tempfile::tempdir().unwrap();
        write_case(dir.path(), &sample());
        let case = load(&dir.path().join("case.json")).unwrap();
        let req = &case.request;
        assert_eq!(req.exporter, "oci");
        assert_eq!(req.compatibility_version, 20);
        assert_eq!(req.attrs["oci-artifact"], "true");
        assert_eq!(
            req.result.metadata["containerimage.config"],
            b"{\"os\":\"linux\"}"
        );
        let layer = &req.result.refs["linux/amd64"][0];
        assert_eq!(layer.size, 11);
        assert_eq!(layer.created_by, "mkfile /greeting");
        assert_eq!(case.blobs[&layer.digest], dir.path().join("blobs/layer"));
        assert_eq!(case.layer_blobs().len(), 1);
        let atts = &req.result.attestations["linux/amd64"];
        assert_eq!(
            atts[0].content,
            AttestationContent::InToto(b"{\"x\":1}".to_vec())
        );
        assert_eq!(atts[0].origin, Origin::Daemon);
        assert_eq!(atts[0].subjects[1].kind, SubjectKind::Raw);
        assert_eq!(atts[0].subjects[1].digest, vec!["sha256:00".to_string()]);
        assert_eq!(atts[0].metadata["reason"], "sbom");
        assert_eq!(atts[1].origin, Origin::Frontend);
        assert_eq!(
            atts[1].content,
            AttestationContent::Bundle(vec![
                ("a.json".into(), b"{\"a\":1}".to_vec()),
                ("b.json".into(), b"{\"b\":2}".to_vec()),
            ])
        );
        // Lossless through the wire.
        let wire = crate::wire::request_to_proto(req);
        assert_eq!(&crate::wire::request_from_proto(wire).unwrap(), req);
    }

    #[test]
    fn errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c["refs"]["linux/amd64"][0]["digest"] = "sha256:nope".into()),
                r#"refs["linux/amd64"][0].digest"#,
            ),
            (
                Box::new(|c| c["refs"]["linux/amd64"][0]["blob"] = "blobs/absent".into()),
                r#"refs["linux/amd64"][0].blob"#,
            ),
            (
                Box::new(|c| c["refs"]["linux/amd64"][0]["size"] = (-1).into()),
                r#"refs["linux/amd64"][0].size"#,
            ),
            (
                Box::new(|c| {
                    c["attestations"]["linux/amd64"][1]["content"] = "files/bundle".into()
                }),
                r#"attestations["linux/amd64"][1].content"#,
            ),
            (
                Box::new(|c| {
                    c["attestations"]["linux/amd64"][0]["subjects"][0]["kind"] = "Me".into()
                }),
                r#"attestations["linux/amd64"][0].subjects[0].kind"#,
            ),
            (
                Box::new(|c| c["attrs"]["name"] = 3.into()),
                r#"attrs["name"]"#,
            ),
            (
                Box::new(|c| c["compatibilityVersion"] = "30".into()),
                "compatibilityVersion",
            ),
        ];
        for (mutate, field) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut c = sample();
            mutate(&mut c);
            write_case(dir.path(), &c);
            let err = load(&dir.path().join("case.json")).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{}", err.message);
        }
    }

    #[test]
    fn missing_case_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("case.json")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
}
