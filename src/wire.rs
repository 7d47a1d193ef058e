//! Protobuf <-> model conversion for `oxport.exporter.v1`.
//!
//! Conversion to the wire never fails; conversion from it checks what the
//! model cannot express (enum values, digest syntax, sizes) and names the
//! offending field with the same paths as `case.json`, for example
//! `refs["linux/amd64"][0].digest`. Everything else is left to the export core,
//! which owns BuildKit's error texts.

use std::collections::BTreeMap;

use crate::digest::parse_digest;
use crate::error::{ExportError, Result};
use crate::model::{
    Attestation, AttestationContent, AttestationKind, BuildResult, ExportRequest, Layer, Origin,
    Subject, SubjectKind,
};
use crate::progress::Progress;
use crate::proto;

/// Largest output chunk or upload chunk sent in one message.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Largest message either side accepts. An export request carries the
/// attestation contents inline, and one statement may be up to 40 MiB.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// HTTP/2 flow-control windows and frame size for both ends. The defaults
/// (1-2 MiB windows, 16 KiB frames) stall a 1 MiB message mid-way waiting
/// for a window update; these keep several chunks in flight.
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 32 << 20;
pub const MAX_FRAME_SIZE: u32 = 1 << 20;

/// `refs["<key>"][<i>]`, quoting the key like Go's `%q`.
pub fn ref_path(key: &str, index: usize) -> String {
    format!("refs[{key:?}][{index}]")
}

/// `attestations["<key>"][<i>]`.
pub fn attestation_path(key: &str, index: usize) -> String {
    format!("attestations[{key:?}][{index}]")
}

// ---------------------------------------------------------------- to the wire

pub fn request_to_proto(req: &ExportRequest) -> proto::ExportRequest {
    proto::ExportRequest {
        exporter: req.exporter.clone(),
        attrs: to_hash(&req.attrs),
        compatibility_version: req.compatibility_version,
        result: Some(result_to_proto(&req.result)),
        // This client has the user's own Docker config behind the server it
        // starts, or none; it does not answer credential requests.
        registry_auth: false,
    }
}

pub fn result_to_proto(res: &BuildResult) -> proto::BuildResult {
    proto::BuildResult {
        refs: res
            .refs
            .iter()
            .map(|(k, layers)| {
                let layers = layers.iter().map(layer_to_proto).collect();
                (k.clone(), proto::LayerChain { layers })
            })
            .collect(),
        metadata: res
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        attestations: res
            .attestations
            .iter()
            .map(|(k, atts)| {
                let attestations = atts.iter().map(attestation_to_proto).collect();
                (k.clone(), proto::AttestationList { attestations })
            })
            .collect(),
        builder_version: res.builder_version.clone(),
    }
}

fn layer_to_proto(l: &Layer) -> proto::Layer {
    proto::Layer {
        media_type: l.media_type.clone(),
        digest: l.digest.clone(),
        size: l.size as i64,
        diff_id: l.diff_id.clone(),
        annotations: to_hash(&l.annotations),
        created_by: l.created_by.clone(),
        created: l.created.clone(),
    }
}

fn attestation_to_proto(a: &Attestation) -> proto::Attestation {
    use proto::attestation::{Kind, Origin as POrigin};
    let (content, bundle) = match &a.content {
        AttestationContent::InToto(bytes) => (bytes.clone(), Vec::new()),
        AttestationContent::Bundle(files) => (
            Vec::new(),
            files
                .iter()
                .map(|(name, content)| proto::BundleFile {
                    name: name.clone(),
                    content: content.clone(),
                })
                .collect(),
        ),
    };
    // The kind is sent as the model says; a kind that disagrees with the
    // content is refused on the way back in.
    let kind = match a.kind {
        AttestationKind::InToto => Kind::InToto,
        AttestationKind::Bundle => Kind::Bundle,
    };
    proto::Attestation {
        kind: kind as i32,
        path: a.path.clone(),
        content,
        bundle,
        predicate_type: a.predicate_type.clone(),
        subjects: a.subjects.iter().map(subject_to_proto).collect(),
        metadata: to_hash(&a.metadata),
        origin: match a.origin {
            Origin::Frontend => POrigin::Frontend,
            Origin::Daemon => POrigin::Daemon,
        } as i32,
    }
}

fn subject_to_proto(s: &Subject) -> proto::Subject {
    use proto::subject::Kind;
    proto::Subject {
        kind: match s.kind {
            SubjectKind::SelfImage => Kind::Self_,
            SubjectKind::Raw => Kind::Raw,
        } as i32,
        name: s.name.clone(),
        digest: s.digest.clone(),
    }
}

pub fn progress_to_proto(p: &Progress) -> proto::Progress {
    use proto::progress::Kind;
    let (digest, kind, done, total) = match p {
        Progress::Writing {
            digest,
            done,
            total,
        } => (digest, Kind::Writing, *done, *total),
        Progress::Skipped { digest, total } => (digest, Kind::Skipped, 0, *total),
        Progress::Mounted { digest, total } => (digest, Kind::Mounted, 0, *total),
        Progress::Done { digest, total } => (digest, Kind::Done, *total, *total),
    };
    proto::Progress {
        digest: digest.clone(),
        kind: kind as i32,
        done: done as i64,
        total: total as i64,
    }
}

// ---------------------------------------------------------------- from the wire

pub fn request_from_proto(req: proto::ExportRequest) -> Result<ExportRequest> {
    Ok(ExportRequest {
        exporter: req.exporter,
        attrs: req.attrs.into_iter().collect(),
        compatibility_version: req.compatibility_version,
        result: result_from_proto(req.result.unwrap_or_default())?,
    })
}

pub fn result_from_proto(res: proto::BuildResult) -> Result<BuildResult> {
    let mut refs = BTreeMap::new();
    for (key, chain) in res.refs {
        let layers = chain
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| layer_from_proto(&ref_path(&key, i), l))
            .collect::<Result<Vec<_>>>()?;
        refs.insert(key, layers);
    }
    let mut attestations = BTreeMap::new();
    for (key, list) in res.attestations {
        let atts = list
            .attestations
            .into_iter()
            .enumerate()
            .map(|(i, a)| attestation_from_proto(&attestation_path(&key, i), a))
            .collect::<Result<Vec<_>>>()?;
        attestations.insert(key, atts);
    }
    Ok(BuildResult {
        refs,
        metadata: res.metadata.into_iter().collect(),
        attestations,
        builder_version: res.builder_version,
    })
}

fn layer_from_proto(path: &str, l: proto::Layer) -> Result<Layer> {
    parse_digest(&format!("{path}.digest"), &l.digest)?;
    parse_digest(&format!("{path}.diffID"), &l.diff_id)?;
    let size = non_negative(&format!("{path}.size"), l.size)?;
    Ok(Layer {
        media_type: l.media_type,
        digest: l.digest,
        size,
        diff_id: l.diff_id,
        annotations: l.annotations.into_iter().collect(),
        created_by: l.created_by,
        created: l.created,
    })
}

fn attestation_from_proto(path: &str, a: proto::Attestation) -> Result<Attestation> {
    use proto::attestation::{Kind, Origin as POrigin};
    let (kind, content) = match Kind::try_from(a.kind) {
        Ok(Kind::InToto) => {
            if !a.bundle.is_empty() {
                return Err(ExportError::invalid(
                    format!("{path}.bundle"),
                    "an IN_TOTO attestation carries its bytes in content, not bundle",
                ));
            }
            (
                AttestationKind::InToto,
                AttestationContent::InToto(a.content),
            )
        }
        Ok(Kind::Bundle) => {
            if !a.content.is_empty() {
                return Err(ExportError::invalid(
                    format!("{path}.content"),
                    "a BUNDLE attestation carries its files in bundle, not content",
                ));
            }
            let mut files = Vec::with_capacity(a.bundle.len());
            for (i, f) in a.bundle.into_iter().enumerate() {
                check_file_name(&format!("{path}.bundle[{i}].name"), &f.name)?;
                files.push((f.name, f.content));
            }
            (AttestationKind::Bundle, AttestationContent::Bundle(files))
        }
        _ => {
            return Err(ExportError::invalid(
                format!("{path}.kind"),
                format!(
                    "unknown attestation kind {}: want IN_TOTO or BUNDLE",
                    a.kind
                ),
            ))
        }
    };
    let origin = match POrigin::try_from(a.origin) {
        Ok(POrigin::Unspecified | POrigin::Frontend) => Origin::Frontend,
        Ok(POrigin::Daemon) => Origin::Daemon,
        Err(_) => {
            return Err(ExportError::invalid(
                format!("{path}.origin"),
                format!(
                    "unknown attestation origin {}: want FRONTEND or DAEMON",
                    a.origin
                ),
            ))
        }
    };
    let subjects = a
        .subjects
        .into_iter()
        .enumerate()
        .map(|(i, s)| subject_from_proto(&format!("{path}.subjects[{i}]"), s))
        .collect::<Result<Vec<_>>>()?;
    Ok(Attestation {
        kind,
        path: a.path,
        content,
        predicate_type: a.predicate_type,
        subjects,
        metadata: a.metadata.into_iter().collect(),
        origin,
    })
}

fn subject_from_proto(path: &str, s: proto::Subject) -> Result<Subject> {
    use proto::subject::Kind;
    let kind = match Kind::try_from(s.kind) {
        Ok(Kind::Self_) => SubjectKind::SelfImage,
        Ok(Kind::Raw) => SubjectKind::Raw,
        _ => {
            return Err(ExportError::invalid(
                format!("{path}.kind"),
                format!("unknown subject kind {}: want SELF or RAW", s.kind),
            ))
        }
    };
    Ok(Subject {
        kind,
        name: s.name,
        digest: s.digest,
    })
}

pub fn progress_from_proto(p: &proto::Progress) -> Option<Progress> {
    use proto::progress::Kind;
    let digest = p.digest.clone();
    let total = p.total.max(0) as u64;
    Some(match Kind::try_from(p.kind).ok()? {
        Kind::Writing => Progress::Writing {
            digest,
            done: p.done.max(0) as u64,
            total,
        },
        Kind::Skipped => Progress::Skipped { digest, total },
        Kind::Mounted => Progress::Mounted { digest, total },
        Kind::Done => Progress::Done { digest, total },
        Kind::Unspecified => return None,
    })
}

/// A bundle file name must be a plain name inside its directory.
pub fn check_file_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ExportError::invalid(
            field,
            format!("invalid bundle file name {name:?}"),
        ));
    }
    Ok(())
}

pub fn non_negative(field: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| ExportError::invalid(field, format!("negative value {v}")))
}

fn to_hash(m: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn sample() -> ExportRequest {
        let layer = Layer {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: d('a'),
            size: 118,
            diff_id: d('b'),
            annotations: [("k".to_string(), "v".to_string())].into(),
            created_by: "mkfile /greeting".into(),
            created: "2026-11-28T00:31:36.515224204Z".into(),
        };
        let intoto = Attestation {
            kind: AttestationKind::InToto,
            path: "/attestation.json".into(),
            content: AttestationContent::InToto(b"{\"a\":1}".to_vec()),
            predicate_type: "https://example.com/p".into(),
            subjects: vec![
                Subject {
                    kind: SubjectKind::SelfImage,
                    name: "n".into(),
                    digest: vec![],
                },
                Subject {
                    kind: SubjectKind::Raw,
                    name: String::new(),
                    digest: vec![d('c'), "sha512:00".into()],
                },
            ],
            metadata: [("reason".to_string(), "sbom".to_string())].into(),
            origin: Origin::Daemon,
        };
        let bundle = Attestation {
            kind: AttestationKind::Bundle,
            path: "/bundle".into(),
            content: AttestationContent::Bundle(vec![
                ("b.json".into(), b"{}".to_vec()),
                ("a.json".into(), Vec::new()),
            ]),
            predicate_type: String::new(),
            subjects: vec![],
            metadata: BTreeMap::new(),
            origin: Origin::Frontend,
        };
        ExportRequest {
            exporter: "oci".into(),
            attrs: [("oci-artifact".to_string(), "true".to_string())].into(),
            compatibility_version: 20,
            result: BuildResult {
                refs: [
                    (
                        "linux/amd64".to_string(),
                        vec![layer.clone(), layer.clone()],
                    ),
                    ("linux/arm64".to_string(), vec![]),
                ]
                .into(),
                metadata: [("refs.platforms".to_string(), b"{\"x\":\"\xff\"}".to_vec())].into(),
                attestations: [("linux/amd64".to_string(), vec![intoto, bundle])].into(),
                builder_version: "v0.32.2".into(),
            },
        }
    }

    #[test]
    fn model_proto_model_round_trips() {
        let req = sample();
        let wire = request_to_proto(&req);
        let bytes = prost::Message::encode_to_vec(&wire);
        let decoded: proto::ExportRequest = prost::Message::decode(&bytes[..]).unwrap();
        assert_eq!(request_from_proto(decoded).unwrap(), req);
    }

    #[test]
    fn bad_digest_names_the_field_path() {
        let mut wire = request_to_proto(&sample());
        let chain = wire
            .result
            .as_mut()
            .unwrap()
            .refs
            .get_mut("linux/amd64")
            .unwrap();
        chain.layers[1].digest = "sha256:XYZ".into();
        let err = request_from_proto(wire).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert_eq!(
            err.field.as_deref(),
            Some(r#"refs["linux/amd64"][1].digest"#)
        );
    }

    #[test]
    fn bad_enums_and_sizes_name_the_field_path() {
        let mut wire = request_to_proto(&sample());
        wire.result
            .as_mut()
            .unwrap()
            .attestations
            .get_mut("linux/amd64")
            .unwrap()
            .attestations[0]
            .subjects[1]
            .kind = 0;
        let err = request_from_proto(wire).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some(r#"attestations["linux/amd64"][0].subjects[1].kind"#)
        );

        let mut wire = request_to_proto(&sample());
        wire.result
            .as_mut()
            .unwrap()
            .attestations
            .get_mut("linux/amd64")
            .unwrap()
            .attestations[1]
            .kind = 7;
        let err = request_from_proto(wire).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some(r#"attestations["linux/amd64"][1].kind"#)
        );

        let mut wire = request_to_proto(&sample());
        wire.result
            .as_mut()
            .unwrap()
            .refs
            .get_mut("linux/amd64")
            .unwrap()
            .layers[0]
            .size = -1;
        let err = request_from_proto(wire).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(r#"refs["linux/amd64"][0].size"#));
    }

    #[test]
    fn progress_round_trips() {
        let all = [
            Progress::Writing {
                digest: d('a'),
                done: 5,
                total: 10,
            },
            Progress::Skipped {
                digest: d('b'),
                total: 3,
            },
            Progress::Mounted {
                digest: d('c'),
                total: 4,
            },
            Progress::Done {
                digest: d('d'),
                total: 9,
            },
        ];
        for p in all {
            assert_eq!(progress_from_proto(&progress_to_proto(&p)), Some(p));
        }
    }
}
