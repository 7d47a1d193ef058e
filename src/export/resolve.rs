//! Step 1 of an export: the request within its limits, the exporter's
//! options parsed, and the result's shape checked against the exporter.
//!
//! Nothing here reads metadata or blobs; a request that fails here costs
//! nothing.

use std::collections::BTreeMap;

use crate::error::{ExportError, Result};
use crate::limits::Limits;
use crate::model::ExportRequest;
use crate::options::{ExportOptions, ExporterType};

use super::input::check_limits;

/// Checks an exporter type, attributes and compatibility version; returns
/// the effective options as key=value strings.
pub fn resolve_options(
    exporter: &str,
    attrs: &BTreeMap<String, String>,
    compatibility_version: i32,
) -> Result<BTreeMap<String, String>> {
    Ok(ExportOptions::parse(exporter, attrs, compatibility_version)?.effective())
}

/// The parsed options of a request that is within `limits` and has refs the
/// exporter can write.
pub(super) fn resolve(req: &ExportRequest, limits: &Limits) -> Result<ExportOptions> {
    check_limits(req, limits)?;
    let opts = ExportOptions::parse(&req.exporter, &req.attrs, req.compatibility_version)?;
    let result = &req.result;
    if result.refs.is_empty() {
        return Err(ExportError::invalid(
            "refs",
            "build result has no refs to export",
        ));
    }
    if opts.exporter == ExporterType::Docker && result.is_map() {
        return Err(ExportError::conflict(
            "refs",
            "docker exporter does not currently support exporting manifest lists",
        ));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::export::fixtures::{request, PLATFORM_MAP, SINGLE};

    #[test]
    fn options_come_back_parsed() {
        let req = request("oci", &[("compression", "zstd")], SINGLE);
        let opts = resolve(&req, &Limits::default()).unwrap();
        assert_eq!(opts.exporter, ExporterType::Oci);
        assert_eq!(opts.compression, crate::options::Compression::Zstd);
    }

    #[test]
    fn a_result_without_refs_is_refused() {
        let req = request("oci", &[], &[]);
        let err = resolve(&req, &Limits::default()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("refs"));
        assert!(err.message.contains("no refs"), "{err}");
    }

    #[test]
    fn docker_refuses_a_platform_map() {
        let req = request("docker", &[], PLATFORM_MAP);
        let err = resolve(&req, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::FailedPrecondition);
        assert!(resolve(&request("docker", &[], SINGLE), &Limits::default()).is_ok());
    }

    #[test]
    fn limits_are_checked_first() {
        let req = request("no-such-exporter", &[], PLATFORM_MAP);
        let limits = Limits {
            max_platforms: 1,
            ..Limits::default()
        };
        let err = resolve(&req, &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ResourceExhausted);
    }
}
