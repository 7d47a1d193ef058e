//! In-toto statements and attestation manifests (legacy and artifact form).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{ExportError, Result};
use crate::json::{self, Object};
use crate::model::{Attestation, AttestationContent, AttestationKind, Origin, SubjectKind};
use crate::oci::{self, Descriptor, Manifest, Platform};
use crate::reference::Reference;

pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
pub const REFERENCE_DIGEST_ANNOTATION: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST_TYPE: &str = "attestation-manifest";

/// True for attestations the frontend marked inline-only.
pub fn is_inline_only(a: &Attestation) -> bool {
    a.metadata
        .get("inline-only")
        .is_some_and(|v| crate::options::parse_go_bool(v) == Some(true))
}

/// Refuses what only the builder may vouch for.
pub fn check_origin(a: &Attestation, field: &str) -> Result<()> {
    if a.origin == Origin::Frontend && a.predicate_type.starts_with("https://slsa.dev/provenance/")
    {
        return Err(ExportError::invalid(
            format!("{field}.origin"),
            "frontend may not set provenance attestations",
        ));
    }
    Ok(())
}

/// One statement blob with its predicate type.
#[derive(Debug, Clone)]
pub struct Statement {
    pub predicate_type: String,
    pub bytes: Vec<u8>,
}

fn digest_map(digests: &[String]) -> String {
    let m: BTreeMap<String, String> = digests
        .iter()
        .map(|d| match d.split_once(':') {
            Some((alg, hex)) => (alg.to_string(), hex.to_string()),
            None => (String::new(), d.clone()),
        })
        .collect();
    json::string_map(&m)
}

fn subject(name: &str, digest_json: &str) -> String {
    Object::new()
        .str("name", if name.is_empty() { "_" } else { name })
        .raw("digest", digest_json)
        .finish()
}

fn statement_bytes(predicate_type: &str, subjects: &[String], predicate: &str) -> Vec<u8> {
    Object::new()
        .str("_type", STATEMENT_V1)
        .str("predicateType", predicate_type)
        .raw("subject", &json::array(subjects))
        .raw("predicate", predicate)
        .finish()
        .into_bytes()
}

/// Go's float64 formatting in `encoding/json`.
fn go_number(n: &serde_json::Number) -> String {
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let abs = f.abs();
    if (1e-6..1e21).contains(&abs) {
        format!("{f}")
    } else {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    }
}

/// A generic value as Go re-marshals an `interface{}`: keys sorted, numbers as float64.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => json::string(s),
        Value::Array(a) => json::array(a.iter().map(go_value)),
        Value::Object(o) => {
            let sorted: BTreeMap<&String, &Value> = o.iter().collect();
            let mut out = Object::new();
            for (k, v) in sorted {
                out.raw(k, &go_value(v));
            }
            out.finish()
        }
    }
}

/// The statements of one platform, in the frontend's order, bundles expanded
/// in file-name order.
pub fn statements(
    atts: &[&Attestation],
    names: &[Reference],
    platform: &Platform,
    manifest: &Descriptor,
    field: &str,
    max_size: usize,
) -> Result<Vec<Statement>> {
    let self_digest = digest_map(std::slice::from_ref(&manifest.digest));
    let mut out = Vec::new();
    for (i, a) in atts.iter().enumerate() {
        let field = format!("{field}[{i}]");
        match (&a.kind, &a.content) {
            (AttestationKind::InToto, AttestationContent::InToto(content)) => {
                let predicate = if content.is_empty() {
                    "null".to_string()
                } else {
                    let text = std::str::from_utf8(content)
                        .ok()
                        .filter(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
                        .ok_or_else(|| {
                            ExportError::invalid(
                                format!("{field}.content"),
                                format!("attestation {} is not valid JSON", a.path),
                            )
                        })?;
                    json::compact_raw(text)
                };
                let mut subjects = Vec::new();
                let self_only = [crate::model::Subject {
                    kind: SubjectKind::SelfImage,
                    name: String::new(),
                    digest: Vec::new(),
                }];
                let given = if a.subjects.is_empty() {
                    &self_only[..]
                } else {
                    &a.subjects[..]
                };
                for s in given {
                    match s.kind {
                        SubjectKind::SelfImage => {
                            for n in names {
                                subjects.push(subject(&n.purl(Some(platform)), &self_digest));
                                if !s.name.is_empty() {
                                    subjects.push(subject(&s.name, &self_digest));
                                }
                            }
                        }
                        SubjectKind::Raw => subjects.push(subject(&s.name, &digest_map(&s.digest))),
                    }
                }
                push(
                    &mut out,
                    &a.predicate_type,
                    statement_bytes(&a.predicate_type, &subjects, &predicate),
                    &field,
                    max_size,
                )?;
            }
            (AttestationKind::Bundle, AttestationContent::Bundle(files)) => {
                let mut files: Vec<&(String, Vec<u8>)> = files.iter().collect();
                files.sort_by(|x, y| x.0.cmp(&y.0));
                for (name, bytes) in files {
                    let field = format!("{field}.bundle[{name:?}]");
                    let st = bundle_statement(bytes, &a.predicate_type, max_size)
                        .map_err(|e| e.with_field(field.clone()))?;
                    push(
                        &mut out,
                        &st.predicate_type.clone(),
                        st.bytes,
                        &field,
                        max_size,
                    )?;
                }
            }
            _ => {
                return Err(ExportError::invalid(
                    field,
                    "attestation kind does not match its content",
                ))
            }
        }
    }
    Ok(out)
}

fn push(
    out: &mut Vec<Statement>,
    pt: &str,
    bytes: Vec<u8>,
    field: &str,
    max_size: usize,
) -> Result<()> {
    check_size(bytes.len(), field, max_size)?;
    out.push(Statement {
        predicate_type: pt.to_string(),
        bytes,
    });
    Ok(())
}

fn check_size(len: usize, field: &str, max_size: usize) -> Result<()> {
    if len > max_size {
        return Err(crate::limits::exceeded(
            field,
            format!("attestation statement of {len} bytes"),
            max_size as u64,
            "max-statement-size",
        ));
    }
    Ok(())
}

/// One ready statement of a bundle, re-encoded as Go re-encodes it.
fn bundle_statement(bytes: &[u8], required: &str, max_size: usize) -> Result<Statement> {
    check_size(bytes.len(), "bundle", max_size)?;
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ExportError::invalid("bundle", format!("invalid in-toto statement: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(ExportError::invalid(
            "bundle",
            "invalid in-toto statement: not a JSON object",
        ));
    };
    let pt = obj
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !required.is_empty() && pt != required {
        return Err(ExportError::invalid(
            "bundle",
            format!("bundle entry {pt} does not match required predicate type {required}"),
        ));
    }
    let mut subjects = Vec::new();
    if let Some(Value::Array(subs)) = obj.get("subject") {
        for s in subs {
            let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
            let digests: Vec<String> = match s.get("digest") {
                Some(Value::Object(d)) => d
                    .iter()
                    .map(|(alg, hex)| format!("{alg}:{}", hex.as_str().unwrap_or_default()))
                    .collect(),
                _ => Vec::new(),
            };
            subjects.push(subject(name, &digest_map(&digests)));
        }
    }
    let predicate = obj.get("predicate").map_or("null".into(), go_value);
    Ok(Statement {
        bytes: statement_bytes(&pt, &subjects, &predicate),
        predicate_type: pt,
    })
}

/// The attestation manifest of one platform and the blobs it adds (config,
/// statements), plus its descriptor for the index.
pub struct AttestationManifest {
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
    pub descriptor: Descriptor,
    /// Blobs besides the manifest: the config (legacy) or `{}` (artifact), and the statements.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

pub fn attestation_manifest(
    statements: Vec<Statement>,
    subject: &Descriptor,
    artifact: bool,
) -> AttestationManifest {
    let mut blobs = Vec::new();
    let mut layers = Vec::new();
    for st in statements {
        let mut d = Descriptor::of(oci::MT_IN_TOTO, &st.bytes);
        d.annotations
            .insert(PREDICATE_TYPE_ANNOTATION.into(), st.predicate_type);
        layers.push(d.clone());
        blobs.push((d, st.bytes));
    }
    let (manifest, config) = manifest_for_layers(layers, subject, artifact);
    blobs.push(config);
    let bytes = manifest.to_bytes();
    let mut descriptor = Descriptor::of(oci::MT_OCI_MANIFEST, &bytes);
    descriptor
        .annotations
        .insert(REFERENCE_DIGEST_ANNOTATION.into(), subject.digest.clone());
    descriptor.annotations.insert(
        REFERENCE_TYPE_ANNOTATION.into(),
        ATTESTATION_MANIFEST_TYPE.into(),
    );
    descriptor.platform = Some(Platform::new("unknown", "unknown"));
    AttestationManifest {
        manifest,
        bytes,
        descriptor,
        blobs,
    }
}

/// The OCI empty descriptor as the artifact form's config, with its data.
pub fn empty_config() -> Descriptor {
    let mut cfg = Descriptor::of(oci::MT_OCI_EMPTY, oci::EMPTY_JSON);
    cfg.data = "e30=".into();
    cfg
}

/// The fake image config of the legacy form: its `diff_ids` are the
/// statement digests.
pub fn legacy_config(layers: &[Descriptor]) -> Vec<u8> {
    let ids: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
    Object::new()
        .str("architecture", "unknown")
        .str("os", "unknown")
        .raw("config", "{}")
        .raw(
            "rootfs",
            &Object::new()
                .str("type", "layers")
                .raw("diff_ids", &json::string_array(&ids))
                .finish(),
        )
        .finish()
        .into_bytes()
}

/// An attestation manifest over ready statement descriptors, in either form,
/// and its config blob (the fake config, or `{}`). `oxport convert` rebuilds
/// manifests through this too, so both paths give the same bytes.
pub fn manifest_for_layers(
    layers: Vec<Descriptor>,
    subject: &Descriptor,
    artifact: bool,
) -> (Manifest, (Descriptor, Vec<u8>)) {
    let mut manifest = Manifest {
        media_type: oci::MT_OCI_MANIFEST.into(),
        layers,
        ..Default::default()
    };
    let config = if artifact {
        let cfg = empty_config();
        manifest.artifact_type = oci::ARTIFACT_TYPE_ATTESTATION.into();
        manifest.config = cfg.clone();
        manifest.subject = Some(Descriptor::new(
            &subject.media_type,
            subject.digest.clone(),
            subject.size,
        ));
        (cfg, oci::EMPTY_JSON.to_vec())
    } else {
        let config = legacy_config(&manifest.layers);
        let cfg = Descriptor::of(oci::MT_OCI_CONFIG, &config);
        manifest.config = cfg.clone();
        (cfg, config)
    };
    (manifest, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_numbers() {
        let n = |s: &str| go_value(&serde_json::from_str(s).unwrap());
        assert_eq!(n("1.50"), "1.5");
        assert_eq!(n("1e3"), "1000");
        assert_eq!(n("1e21"), "1e+21");
        assert_eq!(n("0.0000001"), "1e-7");
        assert_eq!(n(r#"{"b":1,"a":"<"}"#), r#"{"a":"\u003c","b":1}"#);
    }

    #[test]
    fn bundle_predicate_type_must_match() {
        let st = br#"{"_type":"x","predicateType":"a","subject":[],"predicate":null}"#;
        assert_eq!(
            bundle_statement(st, "b", 1 << 20).unwrap_err().message,
            "bundle entry a does not match required predicate type b"
        );
        assert_eq!(
            String::from_utf8(bundle_statement(st, "", 1 << 20).unwrap().bytes).unwrap(),
            r#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"a","subject":[],"predicate":null}"#
        );
    }
}
