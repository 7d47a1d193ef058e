//! The library entry point: one export from request to output bytes.
//!
//! The server and the CLI both call [`export`]; it resolves the options,
//! assembles the image graph and writes it to the sink the attributes ask for.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{ExportError, Result};
use crate::model::{ExportRequest, ExportResponse};

/// Where layer blobs are read from (the server's content store, or a directory).
pub trait BlobSource: Send + Sync {
    /// Opens the blob with this digest (`sha256:<hex>`) for streaming.
    fn open(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>>;
}

/// A progress event of one blob written to the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Writing { digest: String, done: u64, total: u64 },
    Skipped { digest: String, total: u64 },
    Mounted { digest: String, total: u64 },
    Done { digest: String, total: u64 },
}

/// What an export may use besides the request.
pub struct ExportEnv<'a> {
    pub blobs: &'a dyn BlobSource,
    /// A directory for temporary files (re-compressed layers); on the same
    /// file system as any destination that is renamed into place.
    pub scratch: &'a Path,
}

/// Checks an exporter type, attributes and compatibility version; returns
/// the effective options as key=value strings.
pub fn resolve_options(
    exporter: &str,
    attrs: &BTreeMap<String, String>,
    compatibility_version: i32,
) -> Result<BTreeMap<String, String>> {
    let _ = (exporter, attrs, compatibility_version);
    Err(ExportError::internal("resolve_options: not built yet"))
}

/// Runs one export. `out` receives the output archive (an OCI layout as a
/// tar; empty for `type=image`). Returns the exporter response map.
pub fn export(
    req: &ExportRequest,
    env: &ExportEnv<'_>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportResponse> {
    let _ = (req, env, out, progress);
    Err(ExportError::internal("export: not built yet"))
}
