//! `oxport export` and the export half of `oxport self-image`: a build
//! result sent to a server (a running one, or an embedded one started for
//! this export), its output written where `--output` says.
//!
//! The output goes through a [`Destination`], so a failed export leaves
//! nothing behind; the response map goes to `--metadata-file` last.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use tracing::debug;

use super::summary::{self, Written};
use crate::casefile::{self, Case};
use crate::client::output::{parse_output, OutputSpec};
use crate::client::progress::ProgressView;
use crate::client::{Answerer, Client};
use crate::destination::{write_atomically, Destination};
use crate::model::{ExportRequest, ExportResponse};
use crate::options::ExportOptions;
use crate::progress::Progress;
use crate::server::Embedded;

/// Where an export goes and what it reports.
#[derive(Debug, Clone, Default)]
pub struct ExportTarget {
    /// `--output`: buildx-style CSV (type, dest, attributes).
    pub output: Option<String>,
    /// `--metadata-file`: the response map as a JSON object.
    pub metadata_file: Option<PathBuf>,
    /// `--addr`: a running server; `None` starts an embedded one.
    pub addr: Option<String>,
    /// The embedded server's signing keys.
    pub keyring: crate::sign::Keyring,
}

/// Exports the build result stored as `case.json` at `result`.
pub async fn export_file(result: PathBuf, target: ExportTarget) -> Result<(), String> {
    let case = casefile::load(&result).map_err(|e| e.message)?;
    export_case(case, target).await
}

/// Exports a loaded build result as `--output` says.
pub async fn export_case(case: Case, target: ExportTarget) -> Result<(), String> {
    let spec = target
        .output
        .as_deref()
        .map(parse_output)
        .transpose()?
        .unwrap_or_default();
    let dest_name = spec.dest.clone();
    let req = request_with_output(&case.request, spec);
    // Checked before the export, so a mistyped path costs no export.
    if let Some(path) = &target.metadata_file {
        crate::destination::existing_parent(path)
            .map_err(|e| format!("--metadata-file {}: {e}", path.display()))?;
    }
    // The options as the server's own parser reads them, for what the CLI
    // does around the export (a directory or a tar; pushed or not). Invalid
    // ones are left for the server to report, with the error it gives.
    let opts = ExportOptions::parse(&req.exporter, &req.attrs, req.compatibility_version).ok();
    let mut dest = open_destination(&req, opts.as_ref(), dest_name)?;

    let embedded = match target.addr {
        Some(_) => None,
        None => Some(
            Embedded::start_with(crate::server::ServeOptions {
                keyring: target.keyring.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?,
        ),
    };
    let addr = target.addr.unwrap_or_else(|| {
        embedded
            .as_ref()
            .map(|e| e.addr().to_string())
            .unwrap_or_default()
    });
    // A server of its own reads the user's Docker config itself; a running
    // server is given the user's credentials per request instead, so it
    // never pushes with credentials of its own on the user's behalf.
    let answerer = embedded
        .is_none()
        .then(crate::client::docker_config_answerer);
    let response = run_export(&addr, &case, &req, &mut dest, answerer.as_deref()).await;
    if let Some(server) = embedded {
        if tokio::time::timeout(Duration::from_secs(10), server.stop())
            .await
            .is_err()
        {
            tracing::warn!(target: "oxport::cli", "the embedded server did not stop in time");
        }
    }
    // On error `dest` is dropped here, which removes the temporary output.
    let response = response?;
    let written = written(opts.as_ref(), &dest);
    dest.finish()
        .map_err(|e| format!("cannot finish the output: {e}"))?;
    if let Some(path) = target.metadata_file {
        let json = serde_json::to_vec_pretty(&response).map_err(|e| e.to_string())?;
        write_atomically(&path, &json)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    eprintln!("{}", summary::line(&req, &response, written));
    Ok(())
}

/// What the summary line says was written, by destination.
fn written(opts: Option<&ExportOptions>, dest: &Destination) -> Written {
    match dest {
        Destination::Discard => Written::Image {
            pushed: opts.is_some_and(|o| o.push),
        },
        Destination::Stdout(_) => Written::Stdout,
        Destination::File { dest, .. } => Written::File(dest.display().to_string()),
        Destination::Dir { dest, .. } => Written::Layout(dest.display().to_string()),
    }
}

/// The stored request with `--output`'s exporter type and attributes over it.
fn request_with_output(stored: &ExportRequest, spec: OutputSpec) -> ExportRequest {
    let mut req = stored.clone();
    if let Some(t) = spec.exporter {
        req.exporter = t;
    }
    req.attrs.extend(spec.attrs);
    req
}

/// The destination of `req`'s output: none for `type=image`, else `dest`
/// (stdout for `-`, or when it is not a terminal and no dest is given); a
/// directory with `tar=false`.
fn open_destination(
    req: &ExportRequest,
    opts: Option<&ExportOptions>,
    dest: Option<String>,
) -> Result<Destination, String> {
    if req.exporter == "image" {
        return Ok(Destination::Discard);
    }
    let as_dir = opts.is_some_and(|o| !o.tar);
    let dest = match dest.filter(|d| !d.is_empty()) {
        Some(d) => d,
        None if std::io::stdout().is_terminal() => {
            return Err(format!(
                "dest file is required for {} exporter. refusing to write to console",
                req.exporter
            ))
        }
        None => "-".to_string(),
    };
    Destination::create(&dest, as_dir).map_err(|e| format!("cannot write {dest}: {e}"))
}

/// Uploads the blobs the server lacks, then runs the export into `dest`,
/// showing progress on stderr.
async fn run_export(
    addr: &str,
    case: &Case,
    req: &ExportRequest,
    dest: &mut Destination,
    answerer: Option<&Answerer>,
) -> Result<ExportResponse, String> {
    let mut client = Client::connect(addr).await.map_err(|e| e.to_string())?;
    client
        .upload_missing(&case.layer_blobs())
        .await
        .map_err(|e| e.to_string())?;
    let mut view = ProgressView::stderr();
    let mut progress = |p: &Progress| view.event(p);
    let response = client
        .export_answering(req, dest, &mut progress, answerer)
        .await;
    view.finish();
    let response = response.map_err(|e| e.to_string())?;
    debug!(
        target: "oxport::cli",
        digest = response.get("containerimage.digest").map(String::as_str).unwrap_or(""),
        "export done"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_attributes_go_over_the_stored_request() {
        let mut stored = ExportRequest {
            exporter: "oci".into(),
            ..Default::default()
        };
        stored.attrs.insert("name".into(), "a".into());
        let spec = parse_output("type=docker,dest=x.tar,name=b,tar=false").unwrap();
        let req = request_with_output(&stored, spec);
        assert_eq!(req.exporter, "docker");
        assert_eq!(req.attrs["name"], "b");
        assert_eq!(req.attrs["tar"], "false");
    }

    #[test]
    fn destinations_follow_the_exporter_and_tar() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = ExportRequest {
            exporter: "image".into(),
            ..Default::default()
        };
        let opts = |req: &ExportRequest| {
            ExportOptions::parse(&req.exporter, &req.attrs, req.compatibility_version).unwrap()
        };
        assert!(matches!(
            open_destination(&req, Some(&opts(&req)), None),
            Ok(Destination::Discard)
        ));
        req.exporter = "oci".into();
        let file = dir.path().join("out.tar").display().to_string();
        assert!(matches!(
            open_destination(&req, Some(&opts(&req)), Some(file)),
            Ok(Destination::File { .. })
        ));
        req.attrs.insert("tar".into(), "false".into());
        let layout = dir.path().join("layout").display().to_string();
        assert!(matches!(
            open_destination(&req, Some(&opts(&req)), Some(layout)),
            Ok(Destination::Dir { .. })
        ));
    }
}
