//! Entry points for fuzzing the parsers that read untrusted input. The
//! libFuzzer targets in `fuzz/` and the smoke test in `tests/` call these, so
//! both exercise the same code. Each must return (with an error or not) for
//! any input; a panic or a hang is a bug.

use std::io::Read;
use std::path::Path;

use crate::blob::BlobSource;
use crate::export::{self, ExportEnv};

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
            opts.finalize(data.len().is_multiple_of(2));
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
        registry: Default::default(),
        keyring: &crate::sign::keyring::NONE,
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

/// The layout-directory reader behind convert and inspect: the input, read as
/// a tar, is laid out as a directory (regular files only, names kept inside
/// it), then inspected and planned in both forms.
pub fn layout(data: &[u8], scratch: &Path) {
    let Ok(dir) = tempfile::tempdir_in(scratch) else {
        return;
    };
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        return;
    };
    for entry in entries.take(256) {
        let Ok(mut entry) = entry else { break };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let inside = name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
        if !inside {
            continue;
        }
        let path = dir.path().join(&name);
        let mut bytes = Vec::new();
        if (&mut entry).take(1 << 20).read_to_end(&mut bytes).is_err() {
            break;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, &bytes);
    }
    if let Ok(src) = crate::image::layout::LayoutSource::open(dir.path(), None) {
        let _ = crate::inspect::inspect(&src, "oci:fuzz");
        for form in [crate::convert::Form::Artifact, crate::convert::Form::Legacy] {
            let _ = crate::convert::plan(&src, form, None);
        }
    }
}

/// The parsers of what a registry answers: authentication challenges,
/// `Retry-After`, error bodies, manifests and indexes, referrers lists and
/// fallback-tag indexes.
pub fn registry_responses(data: &[u8]) {
    use crate::registry::{auth, error, referrers, retry};
    let text = String::from_utf8_lossy(data);
    let _ = auth::parse_challenge(&text);
    let _ = retry::parse_retry_after(&text);
    let _ = error::body_detail(data);
    let _ = crate::image::parse::manifest(data, "manifest");
    let _ = crate::image::parse::index(data, "index");
    let _ = referrers::listed_digests(data);
    let _ = referrers::merge(Some(data), &[]);
    let desc = crate::oci::Descriptor::of(crate::oci::MT_OCI_MANIFEST, data);
    let _ = referrers::referrer_descriptor(&desc, data);
}
