//! `oxport sign`: signatures attached to an image that already exists, in a
//! registry (`docker://`) or an OCI layout directory (`oci:DIR`), as an
//! export with `oxport.sign` attaches them: the root (and with `recursive`
//! each platform manifest) signed with cosign's `sign/v1` statement, and
//! each attestation statement signed as it is, for the platform manifest it
//! is about.
//!
//! What to sign comes from the inspection of the image, which checks every
//! blob first: an image with problems is refused rather than signed.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::{ErrorKind, ExportError, Result};
use crate::image::remote::{NewReferrer, RegistrySource, RemoteOptions};
use crate::image::{self, ImageRef};
use crate::inspect::{self, Report};
use crate::oci::Descriptor;
use crate::sign::artifacts::{self, Attachment};
use crate::sign::Signer;

/// The largest statement read for signing (the server's default limit).
const MAX_STATEMENT: u64 = 40 << 20;

/// What was attached where.
#[derive(Debug, Default)]
pub struct Attached {
    /// (signed digest, predicate type, signature manifest digest).
    pub signatures: Vec<(String, String, String)>,
    /// Fallback tags written (registries without the referrers API).
    pub fallback_tags: Vec<String>,
}

/// Signs the image at `src` with `signer`; each platform manifest too when
/// `recursive`.
pub fn run(
    src: &ImageRef,
    signer: &dyn Signer,
    recursive: bool,
    opts: &RemoteOptions,
) -> Result<Attached> {
    let created = now();
    match src {
        ImageRef::Registry(r) => {
            let remote = RegistrySource::open(r, opts)?;
            let report = inspect::inspect_registry(&remote, &src.to_string())?;
            let made = attachments(&report, &remote, signer, recursive, &created)?;
            let attached = summary(&made);
            let tags = remote.put_referrers(made.into_iter().map(new_referrer).collect())?;
            Ok(Attached {
                fallback_tags: tags,
                ..attached
            })
        }
        ImageRef::Layout { dir, .. } => {
            let store = image::open(src, opts)?;
            let report = inspect::inspect(&*store, &src.to_string())?;
            let made = attachments(&report, &*store, signer, recursive, &created)?;
            drop(store);
            let attached = summary(&made);
            add_to_layout(dir, &made)?;
            Ok(attached)
        }
        ImageRef::Archive(_) => Err(ExportError::invalid(
            "image",
            format!("{src}: sign a registry image (docker://) or a layout directory (oci:DIR); unpack the archive into a layout first"),
        )),
    }
}

fn summary(made: &[Attachment]) -> Attached {
    Attached {
        signatures: made
            .iter()
            .map(|a| {
                (
                    a.subject.clone(),
                    a.predicate_type.clone(),
                    a.descriptor.digest.clone(),
                )
            })
            .collect(),
        fallback_tags: Vec::new(),
    }
}

fn new_referrer(a: Attachment) -> NewReferrer {
    NewReferrer {
        descriptor: a.descriptor,
        manifest: a.manifest,
        blobs: a.blobs,
        subject: a.subject,
    }
}

/// The signatures of every root, statement and (when `recursive`) platform
/// manifest the inspection found.
fn attachments(
    report: &Report,
    src: &dyn image::Image,
    signer: &dyn Signer,
    recursive: bool,
    created: &str,
) -> Result<Vec<Attachment>> {
    if let Some(p) = report.problems.first() {
        return Err(ExportError::new(
            ErrorKind::FailedPrecondition,
            format!(
                "{}: not signed: {} problem(s), the first at {}: {} (see oxport inspect)",
                report.source,
                report.problems.len(),
                p.location,
                p.message
            ),
        ));
    }
    let sign = |statement: &[u8], pt: &str, subject: &Descriptor| {
        let subject = Descriptor::new(&subject.media_type, subject.digest.clone(), subject.size);
        artifacts::bundle_referrer(signer, statement, pt, &subject, Some(created)).map_err(|e| {
            ExportError::new(
                ErrorKind::Internal,
                format!("signing {}: {e}", subject.digest),
            )
        })
    };
    let mut out = Vec::new();
    let mut images: HashMap<&str, &Descriptor> = HashMap::new();
    let mut attestations = Vec::new();
    for root in &report.roots {
        out.push(sign(
            &artifacts::image_statement(&root.descriptor.digest),
            artifacts::SIGN_PREDICATE_TYPE,
            &root.descriptor,
        )?);
        for img in &root.images {
            images.insert(&img.descriptor.digest, &img.descriptor);
            if recursive && img.descriptor.digest != root.descriptor.digest {
                out.push(sign(
                    &artifacts::image_statement(&img.descriptor.digest),
                    artifacts::SIGN_PREDICATE_TYPE,
                    &img.descriptor,
                )?);
            }
            attestations.extend(&img.attestations);
        }
        attestations.extend(&root.unattached);
    }
    attestations.extend(&report.referrers);
    for att in attestations {
        let Some(image) = images.get(att.subject.as_str()) else {
            continue;
        };
        for st in &att.statements {
            let mut bytes = Vec::new();
            src.open_blob(&st.digest)?
                .take(MAX_STATEMENT)
                .read_to_end(&mut bytes)
                .map_err(|e| ExportError::from(e).context(&st.digest))?;
            out.push(sign(&bytes, &st.predicate_type, image)?);
        }
    }
    Ok(out)
}

/// Writes the attachments' blobs into the layout at `dir` and lists their
/// manifests in its `index.json` (rewritten whole, atomically, last).
fn add_to_layout(dir: &Path, made: &[Attachment]) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    let put = |d: &Descriptor, bytes: &[u8]| -> Result<()> {
        let path = blobs.join(crate::oci::digest_hex(&d.digest));
        if !path.exists() {
            crate::destination::write_atomically(&path, bytes)
                .map_err(|e| ExportError::from(e).context(&path.display().to_string()))?;
        }
        Ok(())
    };
    for a in made {
        for (d, b) in &a.blobs {
            put(d, b)?;
        }
        put(&a.descriptor, &a.manifest)?;
    }
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&index_path)
            .map_err(|e| ExportError::from(e).context(&index_path.display().to_string()))?,
    )
    .map_err(|e| ExportError::invalid("index.json", format!("{}: {e}", index_path.display())))?;
    let entries = index
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| ExportError::invalid("index.json", "no manifests array"))?;
    for a in made {
        entries.push(serde_json::json!({
            "mediaType": a.descriptor.media_type,
            "digest": a.descriptor.digest,
            "size": a.descriptor.size,
            "artifactType": a.descriptor.artifact_type,
        }));
    }
    let bytes = serde_json::to_vec(&index).expect("index.json serializes");
    crate::destination::write_atomically(&index_path, &bytes)
        .map_err(|e| ExportError::from(e).context(&index_path.display().to_string()))
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::timefmt::Time::from_unix(secs).format_seconds()
}
