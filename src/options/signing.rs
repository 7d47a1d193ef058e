//! The signing attributes: which key (`oxport.sign`) and in which forms
//! (`oxport.sign-format`) an export's signatures are attached.

use crate::error::{ExportError, Result};

/// Where signatures go: what cosign verifies by default, its older tags, or
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignFormat {
    /// Sigstore bundles attached as referrers (cosign v3's default).
    #[default]
    Bundle,
    /// cosign's tag scheme only: `sha256-<hex>.sig` and `.att`.
    Legacy,
    /// Both, for registries read by old and new verifiers.
    Both,
}

impl SignFormat {
    pub fn parse(key: &str, v: &str) -> Result<Self> {
        match v {
            "bundle" | "" => Ok(SignFormat::Bundle),
            "legacy" => Ok(SignFormat::Legacy),
            "both" => Ok(SignFormat::Both),
            other => Err(ExportError::invalid(
                key,
                format!(
                    "invalid value {other} specified for {key}: expected bundle, legacy or both"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignFormat::Bundle => "bundle",
            SignFormat::Legacy => "legacy",
            SignFormat::Both => "both",
        }
    }

    /// Sigstore bundles as referrers.
    pub fn bundles(self) -> bool {
        self != SignFormat::Legacy
    }

    /// cosign's `.sig` and `.att` tags.
    pub fn tags(self) -> bool {
        self != SignFormat::Bundle
    }
}
