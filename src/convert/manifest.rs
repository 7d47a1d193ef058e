//! One attestation manifest moved between the legacy and the artifact form.
//! The manifest is rebuilt through the exporter's own builder
//! ([`attest::manifest_for_layers`]), so a conversion writes exactly the
//! bytes an export in the target form writes.

use crate::assemble::attest::{self, ATTESTATION_MANIFEST_TYPE, REFERENCE_TYPE_ANNOTATION};
use crate::error::{ExportError, Result};
use crate::oci::{self, Descriptor, Manifest};

/// The two forms of an attestation manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A fake image config, no subject (BuildKit's `oci-artifact=false`).
    Legacy,
    /// The empty config, `artifactType` and `subject` (OCI 1.1).
    Artifact,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Legacy => "legacy",
            Form::Artifact => "artifact",
        }
    }
}

impl std::str::FromStr for Form {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy" => Ok(Form::Legacy),
            "artifact" => Ok(Form::Artifact),
            _ => Err(format!("unknown form {s:?}: use artifact or legacy")),
        }
    }
}

/// True when an index entry says it is an attestation manifest.
pub fn is_attestation_entry(d: &Descriptor) -> bool {
    d.annotations
        .get(REFERENCE_TYPE_ANNOTATION)
        .is_some_and(|t| t == ATTESTATION_MANIFEST_TYPE)
}

/// The form a manifest is in, judged by what the artifact form adds.
pub fn form_of(m: &Manifest) -> Form {
    if m.artifact_type == oci::ARTIFACT_TYPE_ATTESTATION
        || m.config.media_type == oci::MT_OCI_EMPTY
        || m.subject.is_some()
    {
        Form::Artifact
    } else {
        Form::Legacy
    }
}

/// The manifest in the other form: its bytes and its config blob.
pub struct Rewritten {
    pub bytes: Vec<u8>,
    pub config: (Descriptor, Vec<u8>),
}

/// Rewrites `m` into `to`; `None` when it is already in that form.
/// `subject` is the image manifest the attestation is about; the artifact
/// form needs it.
pub fn rewrite(
    m: &Manifest,
    to: Form,
    subject: Option<&Descriptor>,
    at: &str,
) -> Result<Option<Rewritten>> {
    if form_of(m) == to {
        return Ok(None);
    }
    let subject = match (to, subject) {
        (Form::Artifact, None) => {
            return Err(ExportError::invalid(
                at,
                format!("{at}: the image this attestation manifest is about is not in the image"),
            ))
        }
        (_, s) => s.cloned().unwrap_or_default(),
    };
    let (mut new, config) =
        attest::manifest_for_layers(m.layers.clone(), &subject, to == Form::Artifact);
    // What the forms do not own is kept.
    new.media_type = m.media_type.clone();
    new.annotations = m.annotations.clone();
    Ok(Some(Rewritten {
        bytes: new.to_bytes(),
        config,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip() {
        let mut layer = Descriptor::of(oci::MT_IN_TOTO, b"{}");
        layer
            .annotations
            .insert(attest::PREDICATE_TYPE_ANNOTATION.into(), "p".into());
        let subject = Descriptor::of(oci::MT_OCI_MANIFEST, b"image");
        let (legacy, _) = attest::manifest_for_layers(vec![layer], &subject, false);
        assert_eq!(form_of(&legacy), Form::Legacy);
        assert!(rewrite(&legacy, Form::Legacy, None, "x").unwrap().is_none());
        assert!(rewrite(&legacy, Form::Artifact, None, "x").is_err());
        let art = rewrite(&legacy, Form::Artifact, Some(&subject), "x")
            .unwrap()
            .unwrap();
        assert_eq!(art.config.1, oci::EMPTY_JSON);
        let parsed = crate::image::parse::manifest(&art.bytes, "x")
            .unwrap()
            .value;
        assert_eq!(form_of(&parsed), Form::Artifact);
        let back = rewrite(&parsed, Form::Legacy, None, "x").unwrap().unwrap();
        assert_eq!(back.bytes, legacy.to_bytes());
    }
}
