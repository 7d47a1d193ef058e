//! In-toto statements and attestation manifests (legacy and artifact form).

use std::collections::BTreeMap;

use serde_json::Value;

use super::sbom::{self, LayerFiles};
use crate::error::{ExportError, Result};
use crate::json::{self, Object};
use crate::model::{
    Attestation, AttestationContent, AttestationKind, Origin, Subject, SubjectKind,
};
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

/// One in-toto attestation after bundles are expanded (BuildKit's
/// `attestation.Unbundle`): a bundle contributes one per statement file, with
/// the statement's subjects (none means the default ones) and its predicate
/// re-encoded as Go re-encodes an `interface{}`.
struct Unbundled<'a> {
    field: String,
    path: String,
    predicate_type: String,
    subjects: Vec<Subject>,
    metadata: &'a BTreeMap<String, String>,
    /// The predicate bytes (raw for in-toto attestations; may be empty).
    content: Vec<u8>,
}

fn unbundle<'a>(
    atts: &[&'a Attestation],
    field: &str,
    max_size: usize,
) -> Result<Vec<Unbundled<'a>>> {
    let mut out = Vec::new();
    for (i, a) in atts.iter().enumerate() {
        let field = format!("{field}[{i}]");
        match (&a.kind, &a.content) {
            (AttestationKind::InToto, AttestationContent::InToto(content)) => out.push(Unbundled {
                field,
                path: a.path.clone(),
                predicate_type: a.predicate_type.clone(),
                subjects: a.subjects.clone(),
                metadata: &a.metadata,
                content: content.clone(),
            }),
            (AttestationKind::Bundle, AttestationContent::Bundle(files)) => {
                let mut files: Vec<&(String, Vec<u8>)> = files.iter().collect();
                files.sort_by(|x, y| x.0.cmp(&y.0));
                for (name, bytes) in files {
                    let field = format!("{field}.bundle[{name:?}]");
                    let entry = bundle_entry(bytes, &a.predicate_type, max_size)
                        .map_err(|e| e.with_field(field.clone()))?;
                    out.push(Unbundled {
                        field,
                        path: sbom::join(&a.path, name),
                        predicate_type: entry.predicate_type,
                        subjects: entry.subjects,
                        metadata: &a.metadata,
                        content: entry.predicate.into_bytes(),
                    });
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
    // The core SBOM first, the rest in order.
    let (mut first, rest): (Vec<_>, Vec<_>) = out
        .into_iter()
        .partition(|u| sbom::sorts_first(&u.path, u.metadata));
    first.extend(rest);
    Ok(first)
}

/// True when a platform's attestations hold a core SPDX SBOM, so its
/// layers' entry names are needed (see `assemble::sbom`).
pub fn wants_layer_files(atts: &[&Attestation]) -> bool {
    atts.iter().any(|a| match &a.content {
        AttestationContent::InToto(_) => {
            sbom::is_core_spdx(&a.predicate_type, &a.path, &a.metadata)
        }
        AttestationContent::Bundle(files) => files.iter().any(|(name, bytes)| {
            let path = sbom::join(&a.path, name);
            if !sbom::is_core_spdx(sbom::PREDICATE_SPDX, &path, &a.metadata) {
                return false;
            }
            let pt = if a.predicate_type.is_empty() {
                serde_json::from_slice::<Value>(bytes)
                    .ok()
                    .and_then(|v| v.get("predicateType")?.as_str().map(str::to_string))
                    .unwrap_or_default()
            } else {
                a.predicate_type.clone()
            };
            sbom::is_core_spdx(&pt, &path, &a.metadata)
        }),
    })
}

/// The image a platform's statements are about, and what the SBOM
/// supplement needs.
pub struct StatementContext<'a> {
    pub names: &'a [Reference],
    pub platform: &'a Platform,
    pub manifest: &'a Descriptor,
    /// The platform's layer entry names; `None` when it has no layers (no
    /// ref: BuildKit then leaves the SBOM alone).
    pub layer_files: Option<&'a LayerFiles>,
    pub builder_version: &'a str,
}

/// The statements of one platform: the frontend's order with bundles
/// expanded in file-name order, the core SBOM first and supplemented.
pub fn statements(
    atts: &[&Attestation],
    cx: &StatementContext<'_>,
    field: &str,
    max_size: usize,
) -> Result<Vec<Statement>> {
    let self_digest = digest_map(std::slice::from_ref(&cx.manifest.digest));
    let mut out = Vec::new();
    for mut u in unbundle(atts, field, max_size)? {
        if let Some(files) = cx.layer_files {
            if sbom::is_core_spdx(&u.predicate_type, &u.path, u.metadata) {
                if let Some(bytes) = sbom::supplement(&u.content, files, cx.builder_version)
                    .map_err(|e| ExportError::invalid(format!("{}.content", u.field), e))?
                {
                    u.content = bytes;
                }
            }
        }
        let predicate = predicate_json(&u)?;
        let subjects = statement_subjects(&u.subjects, cx, &self_digest);
        push(
            &mut out,
            &u.predicate_type,
            statement_bytes(&u.predicate_type, &subjects, &predicate),
            &u.field,
            max_size,
        )?;
    }
    Ok(out)
}

/// The predicate as it goes into the statement: compacted, `null` when empty.
fn predicate_json(u: &Unbundled<'_>) -> Result<String> {
    if u.content.is_empty() {
        return Ok("null".to_string());
    }
    let text = std::str::from_utf8(&u.content)
        .ok()
        .filter(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
        .ok_or_else(|| {
            ExportError::invalid(
                format!("{}.content", u.field),
                format!("attestation {} is not valid JSON", u.path),
            )
        })?;
    Ok(json::compact_raw(text))
}

/// Subjects as BuildKit writes them: no subject means one `Self`; `Self`
/// expands to each image name's purl (then its own name) with the image
/// manifest digest; `Raw` passes through (an empty name becomes `_`).
fn statement_subjects(
    given: &[Subject],
    cx: &StatementContext<'_>,
    self_digest: &str,
) -> Vec<String> {
    let self_only = [Subject {
        kind: SubjectKind::SelfImage,
        name: String::new(),
        digest: Vec::new(),
    }];
    let given = if given.is_empty() {
        &self_only[..]
    } else {
        given
    };
    let mut subjects = Vec::new();
    for s in given {
        match s.kind {
            SubjectKind::SelfImage => {
                for n in cx.names {
                    subjects.push(subject(&n.purl(Some(cx.platform)), self_digest));
                    if !s.name.is_empty() {
                        subjects.push(subject(&s.name, self_digest));
                    }
                }
            }
            SubjectKind::Raw => subjects.push(subject(&s.name, &digest_map(&s.digest))),
        }
    }
    subjects
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

/// One statement file of a bundle, decoded as BuildKit decodes it.
struct BundleEntry {
    predicate_type: String,
    /// `Raw` subjects, in the statement's order.
    subjects: Vec<Subject>,
    /// The predicate re-encoded as Go re-encodes an `interface{}`.
    predicate: String,
}

fn bundle_entry(bytes: &[u8], required: &str, max_size: usize) -> Result<BundleEntry> {
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
            let digest: Vec<String> = match s.get("digest") {
                Some(Value::Object(d)) => d
                    .iter()
                    .map(|(alg, hex)| format!("{alg}:{}", hex.as_str().unwrap_or_default()))
                    .collect(),
                _ => Vec::new(),
            };
            subjects.push(Subject {
                kind: SubjectKind::Raw,
                name: name.to_string(),
                digest,
            });
        }
    }
    Ok(BundleEntry {
        predicate_type: pt,
        subjects,
        predicate: obj.get("predicate").map_or("null".into(), go_value),
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
mod tests;
