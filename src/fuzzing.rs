//! Entry points for fuzzing the parsers that read untrusted input. The
//! libFuzzer targets in `fuzz/` and the smoke test in `tests/` call these, so
//! both exercise the same code. Each must return (with an error or not) for
//! any input; a panic or a hang is a bug.

use std::io::Read;
use std::path::Path;

use crate::export::{self, BlobSource, ExportEnv};

/// A blob source with no blobs: exports of fuzzed results stop at the first layer.
struct NoBlobs;

impl BlobSource for NoBlobs {
    fn open(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            digest.to_string(),
        ))
    }
}

/// The `--output` CSV parser, then the attribute parser on what it gives.
pub fn attributes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = crate::client::output::parse_output(&text) {
        let exporter = spec.exporter.as_deref().unwrap_or("oci");
        if let Ok(mut opts) = crate::options::ExportOptions::parse(exporter, &spec.attrs, 0) {
            opts.finalize(data.len() % 2 == 0);
            let _ = opts.check_extensions();
            let _ = opts.effective();
        }
    }
}

/// The build-result readers: `case.json`, and the protobuf request, each
/// followed by an export that has no blobs to read.
pub fn build_result(data: &[u8], scratch: &Path) {
    let env = ExportEnv {
        blobs: &NoBlobs,
        scratch,
        limits: Default::default(),
    };
    if let Ok(case) = crate::casefile::parse(data, scratch) {
        let proto = crate::wire::request_to_proto(&case.request);
        let back = crate::wire::request_from_proto(proto);
        assert!(back.is_ok(), "a read case must survive the wire");
        let _ = export::export(&case.request, &env, &mut std::io::sink(), &mut |_| {});
    }
    if let Ok(req) = <crate::proto::ExportRequest as prost::Message>::decode(data) {
        if let Ok(req) = crate::wire::request_from_proto(req) {
            let _ = export::export(&req, &env, &mut std::io::sink(), &mut |_| {});
        }
    }
}

/// The archive reader behind convert and inspect.
pub fn archive(data: &[u8], scratch: &Path) {
    let path = scratch.join("fuzz.tar");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(src) = crate::image::archive::ArchiveSource::open(&path) {
        let _ = crate::inspect::inspect(&src, "oci-archive:fuzz.tar");
        for form in [crate::convert::Form::Artifact, crate::convert::Form::Legacy] {
            let _ = crate::convert::plan(&src, form, None);
        }
    }
    let _ = std::fs::remove_file(&path);
}
