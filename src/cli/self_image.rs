//! `oxport self-image`: the running binary (or another) packaged as a build
//! result and exported like any other.

use std::path::PathBuf;

use tracing::info;

use crate::selfimage::{self, Params};

use super::export::{export_case, ExportTarget};

/// The flags of `self-image` that say what goes into the image.
#[derive(Debug, Clone, Default)]
pub struct SelfImageFlags {
    pub binary: Option<PathBuf>,
    pub version: Option<String>,
    pub revision: Option<String>,
    pub source: Option<String>,
    pub source_date_epoch: Option<i64>,
}

/// The image's parameters: defaults filled in from the running binary,
/// the crate version and `$SOURCE_DATE_EPOCH` (else 0).
pub fn params(flags: SelfImageFlags) -> Result<Params, String> {
    let binary = match flags.binary {
        Some(b) => b,
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let epoch = match flags.source_date_epoch {
        Some(e) => e,
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("invalid SOURCE_DATE_EPOCH {v:?}"))?,
            Err(_) => 0,
        },
    };
    Ok(Params {
        binary,
        version: flags
            .version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        revision: flags.revision,
        source: flags.source,
        epoch,
        platform: selfimage::host_platform(),
    })
}

/// Builds the image's build result in a temporary directory and exports it.
pub async fn self_image(params: Params, target: ExportTarget) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("oxport-self-image-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let case = selfimage::build(&params, dir.path()).map_err(|e| e.message)?;
    info!(target: "oxport::cli", binary = %params.binary.display(), platform = %params.platform, "self-image assembled");
    export_case(case, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_defaults() {
        let p = params(SelfImageFlags {
            binary: Some("some-binary".into()),
            version: Some("9.9".into()),
            source_date_epoch: Some(5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.binary, PathBuf::from("some-binary"));
        assert_eq!((p.version.as_str(), p.epoch), ("9.9", 5));
    }
}
