//! `oxport self-image`: oxport's own container image, built by oxport.
//!
//! The build result is made here the way a builder would hand it over: one
//! platform ref with one layer (the binary at `/usr/local/bin/oxport`), the
//! image config as `containerimage.config`, and two attestations generated
//! by this "builder" (origin daemon): an SPDX SBOM of the crate's locked
//! dependencies and a SLSA v1 provenance. The result then goes through the
//! same export path as any other (`oxport export`), in the artifact form.
//!
//! - [`layer`]: the layer blob (USTAR tar, gzip).
//! - [`sbom`]: the SPDX document from `Cargo.lock`.
//! - [`provenance`]: the SLSA v1 predicate.

pub mod layer;
pub mod provenance;
pub mod runtime;
pub mod sbom;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::casefile::Case;
use crate::error::{ExportError, Result};
use crate::model::{
    Attestation, AttestationContent, AttestationKind, BuildResult, ExportRequest, Layer, Origin,
};
use crate::timefmt::Time;

/// The uid:gid the image runs as (the conventional unprivileged "nonroot").
pub const USER: &str = "65532:65532";

/// What to build.
#[derive(Debug, Clone)]
pub struct Params {
    /// The oxport binary to package.
    pub binary: PathBuf,
    /// The image version (label and default tag).
    pub version: String,
    /// The source revision (a VCS commit), when known.
    pub revision: Option<String>,
    /// The source repository URL, when known.
    pub source: Option<String>,
    /// Unix time every timestamp is pinned to, so rebuilds are identical.
    pub epoch: i64,
    /// `os/arch`, e.g. `linux/amd64`.
    pub platform: String,
}

/// The platform of the running binary, in OCI terms.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

/// Builds the build result, writing the layer blob into `dir`.
pub fn build(p: &Params, dir: &Path) -> Result<Case> {
    let blob_path = dir.join("layer.tar.gz");
    let io_err = |what: &str, e: std::io::Error| ExportError::from(e).context(what);
    let libs = runtime::files(&p.binary).map_err(|e| io_err("self-image runtime files", e))?;
    let blob =
        layer::write(&p.binary, &libs, &blob_path).map_err(|e| io_err("self-image layer", e))?;
    let binary_sha = blob
        .files
        .iter()
        .find(|(path, _)| path == layer::BINARY_PATH)
        .map(|(_, sha)| sha.clone())
        .unwrap_or_default();
    let created = Time::from_unix(p.epoch).format();
    let (os, arch) = p.platform.split_once('/').unwrap_or(("linux", "amd64"));

    let mut labels = serde_json::Map::new();
    let mut label = |k: &str, v: &str| {
        labels.insert(format!("org.opencontainers.image.{k}"), json!(v));
    };
    label("title", "oxport");
    label("description", env!("CARGO_PKG_DESCRIPTION"));
    label("version", &p.version);
    label("licenses", env!("CARGO_PKG_LICENSE"));
    label("created", &created);
    if let Some(rev) = &p.revision {
        label("revision", rev);
    }
    if let Some(src) = &p.source {
        label("source", src);
    }
    let config = json!({
        "architecture": arch,
        "os": os,
        "created": created,
        "config": {
            "User": USER,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": [format!("/{}", layer::BINARY_PATH)],
            "Cmd": ["serve", "--listen", "unix:///run/oxport/oxport.sock", "--state", "/var/lib/oxport"],
            "WorkingDir": "/",
            "Labels": labels,
            "StopSignal": "SIGTERM",
        },
        "rootfs": {"type": "layers", "diff_ids": [blob.diff_id]},
        "history": [{
            "created": created,
            "created_by": format!("COPY oxport /{}", layer::BINARY_PATH),
            "comment": "oxport.self-image.v0",
        }],
    });
    let platforms =
        json!({"Platforms": [{"ID": p.platform, "Platform": {"architecture": arch, "os": os}}]});

    let packages = sbom::parse_lock(sbom::CARGO_LOCK).map_err(ExportError::internal)?;
    let mut spdx = sbom::document(&packages, env!("CARGO_PKG_NAME"), &binary_sha, &created);
    sbom::add_files(&mut spdx, &blob.files);
    let prov = provenance::predicate(p, &binary_sha, &created);
    let attestation =
        |path: &str, content: serde_json::Value, predicate: &str, reason: &str| Attestation {
            kind: AttestationKind::InToto,
            path: path.to_string(),
            content: AttestationContent::InToto(content.to_string().into_bytes()),
            predicate_type: predicate.to_string(),
            subjects: Vec::new(),
            metadata: BTreeMap::from([("reason".to_string(), reason.to_string())]),
            origin: Origin::Daemon,
        };
    let attestations = vec![
        attestation("/sbom.spdx.json", spdx, "https://spdx.dev/Document", "sbom"),
        attestation(
            "/provenance.json",
            prov,
            provenance::PREDICATE_TYPE,
            "provenance",
        ),
    ];

    let layer = Layer {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
        digest: blob.digest.clone(),
        size: blob.size,
        diff_id: blob.diff_id.clone(),
        annotations: BTreeMap::new(),
        created_by: format!("COPY oxport /{}", layer::BINARY_PATH),
        created: created.clone(),
    };
    let metadata = BTreeMap::from([
        (
            "refs.platforms".to_string(),
            platforms.to_string().into_bytes(),
        ),
        (
            format!("containerimage.config/{}", p.platform),
            config.to_string().into_bytes(),
        ),
    ]);
    let attrs = BTreeMap::from([
        ("name".to_string(), format!("oxport:{}", p.version)),
        ("oci-artifact".to_string(), "true".to_string()),
        ("source-date-epoch".to_string(), p.epoch.to_string()),
    ]);
    Ok(Case {
        request: ExportRequest {
            exporter: "oci".to_string(),
            attrs,
            compatibility_version: 0,
            result: BuildResult {
                refs: BTreeMap::from([(p.platform.clone(), vec![layer])]),
                metadata,
                attestations: BTreeMap::from([(p.platform.clone(), attestations)]),
                builder_version: String::new(),
            },
        },
        blobs: BTreeMap::from([(blob.digest, blob_path)]),
    })
}
