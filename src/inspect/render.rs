//! The inspect report as terminal text or as JSON for scripts. The JSON
//! field order is fixed (written through [`json::Object`]), so its bytes are
//! stable from run to run.

use std::fmt::Write as _;

use super::referrers::Referrer;
use super::signatures::Signature;
use super::{Attestation, Image, Report, Root};
use crate::json::{self, Object};
use crate::oci::Descriptor;

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn platform(d: &Descriptor) -> String {
    d.platform
        .as_ref()
        .map(|p| p.id())
        .unwrap_or_else(|| "-".into())
}

fn attestation_text(out: &mut String, a: &Attestation, pad: &str) {
    let form = a.form.map_or("unreadable", |f| f.as_str());
    let _ = writeln!(
        out,
        "{pad}attestation {} ({} bytes, {form} form, subject {})",
        a.descriptor.digest,
        a.descriptor.size,
        if a.subject.is_empty() {
            "-"
        } else {
            &a.subject
        }
    );
    for s in &a.statements {
        let _ = writeln!(out, "{pad}  {}  {}", s.predicate_type, s.digest);
        for (name, digests) in &s.subjects {
            let _ = writeln!(out, "{pad}    subject {name} {}", digests.join(","));
        }
    }
}

fn image_text(out: &mut String, i: &Image, pad: &str) {
    let _ = writeln!(
        out,
        "{pad}{} {} ({} bytes, {})",
        platform(&i.descriptor),
        i.descriptor.digest,
        i.descriptor.size,
        plural(i.layers, "layer")
    );
    for a in &i.attestations {
        attestation_text(out, a, &format!("{pad}  "));
    }
    referrers_text(out, &i.referrers, &format!("{pad}  "));
}

fn referrers_text(out: &mut String, referrers: &[Referrer], pad: &str) {
    for r in referrers {
        let kind = if r.descriptor.artifact_type.is_empty() {
            "-"
        } else {
            &r.descriptor.artifact_type
        };
        let _ = writeln!(
            out,
            "{pad}referrer {} ({kind}, {}, via {})",
            r.descriptor.digest,
            if r.in_index {
                "in the index"
            } else {
                "detached"
            },
            r.via
        );
    }
}

fn root_text(out: &mut String, r: &Root) {
    let _ = writeln!(
        out,
        "{} {} ({}, {} bytes)",
        r.location, r.descriptor.digest, r.descriptor.media_type, r.descriptor.size
    );
    if !r.names.is_empty() {
        let _ = writeln!(out, "  names: {}", r.names.join(", "));
    }
    referrers_text(out, &r.referrers, "  ");
    for i in &r.images {
        image_text(out, i, "  ");
    }
    for a in &r.unattached {
        attestation_text(out, a, "  ");
    }
}

impl Report {
    /// Readable text: one block per root, then referrers, then problems.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.source);
        for r in &self.roots {
            root_text(&mut out, r);
        }
        if !self.referrers.is_empty() {
            out.push_str("referrers:\n");
            for a in &self.referrers {
                attestation_text(&mut out, a, "  ");
            }
        }
        if !self.signatures.is_empty() {
            out.push_str("signatures:\n");
            for s in &self.signatures {
                let _ = writeln!(
                    out,
                    "  {} of {} ({}): {}",
                    s.descriptor.digest,
                    if s.subject.is_empty() {
                        "-"
                    } else {
                        &s.subject
                    },
                    s.predicate_type,
                    check_text(&s.check)
                );
            }
        }
        if self.problems.is_empty() {
            out.push_str("problems: none");
        } else {
            let _ = write!(out, "problems: {}", self.problems.len());
            for p in &self.problems {
                let _ = write!(out, "\n  {}: {}", p.location, p.message);
            }
        }
        out
    }

    /// Stable JSON (two-space indent).
    pub fn to_json(&self) -> String {
        let problems = self.problems.iter().map(|p| {
            Object::new()
                .str("location", &p.location)
                .str("message", &p.message)
                .finish()
        });
        let mut o = Object::new();
        o.str("source", &self.source)
            .raw("roots", &json::array(self.roots.iter().map(root_json)))
            .raw(
                "referrers",
                &json::array(self.referrers.iter().map(attestation_json)),
            );
        // Only when there are any, so unsigned images read as before.
        if !self.signatures.is_empty() {
            o.raw(
                "signatures",
                &json::array(self.signatures.iter().map(signature_json)),
            );
        }
        json::pretty(&o.raw("problems", &json::array(problems)).finish())
    }
}

fn check_text(check: &Option<Result<(), String>>) -> String {
    match check {
        None => "not checked (no --key)".into(),
        Some(Ok(())) => "verified".into(),
        Some(Err(e)) => format!("NOT VERIFIED: {e}"),
    }
}

fn signature_json(s: &Signature) -> String {
    let mut o = Object::new();
    descriptor_fields(&mut o, &s.location, &s.descriptor);
    o.str("subject", &s.subject)
        .str("predicateType", &s.predicate_type);
    match &s.check {
        None => o.raw("verified", "null"),
        Some(Ok(())) => o.bool("verified", true),
        Some(Err(e)) => o.bool("verified", false).str("error", e),
    };
    o.finish()
}

fn descriptor_fields(o: &mut Object, location: &str, d: &Descriptor) {
    o.str("location", location)
        .str("mediaType", &d.media_type)
        .str("digest", &d.digest)
        .int("size", d.size as i64);
}

fn root_json(r: &Root) -> String {
    let mut o = Object::new();
    descriptor_fields(&mut o, &r.location, &r.descriptor);
    o.raw(
        "names",
        &json::array(r.names.iter().map(|n| json::string(n))),
    )
    .raw("manifests", &json::array(r.images.iter().map(image_json)))
    .raw(
        "unattached",
        &json::array(r.unattached.iter().map(attestation_json)),
    )
    .raw("referrers", &referrers_json(&r.referrers))
    .finish()
}

fn referrers_json(referrers: &[Referrer]) -> String {
    json::array(referrers.iter().map(|r| {
        Object::new()
            .str("mediaType", &r.descriptor.media_type)
            .str("digest", &r.descriptor.digest)
            .int("size", r.descriptor.size as i64)
            .str("artifactType", &r.descriptor.artifact_type)
            .str("via", &r.via)
            .bool("inIndex", r.in_index)
            .finish()
    }))
}

fn image_json(i: &Image) -> String {
    let mut o = Object::new();
    descriptor_fields(&mut o, &i.location, &i.descriptor);
    match &i.descriptor.platform {
        Some(p) => o.str("platform", &p.id()),
        None => o.raw("platform", "null"),
    };
    o.int("layers", i.layers as i64)
        .raw(
            "attestations",
            &json::array(i.attestations.iter().map(attestation_json)),
        )
        .raw("referrers", &referrers_json(&i.referrers))
        .finish()
}

fn attestation_json(a: &Attestation) -> String {
    let statements = a.statements.iter().map(|s| {
        let subjects = s.subjects.iter().map(|(name, digests)| {
            Object::new()
                .str("name", name)
                .raw("digest", &json::string_array(digests))
                .finish()
        });
        Object::new()
            .str("digest", &s.digest)
            .str("predicateType", &s.predicate_type)
            .raw("subjects", &json::array(subjects))
            .finish()
    });
    let mut o = Object::new();
    descriptor_fields(&mut o, &a.location, &a.descriptor);
    match a.form {
        Some(f) => o.str("form", f.as_str()),
        None => o.raw("form", "null"),
    };
    o.str("subject", &a.subject)
        .raw("statements", &json::array(statements))
        .finish()
}
