//! Exporter attributes -> export options: one key table, one parser.
//!
//! Keys, defaults, parsing and error texts follow BuildKit's `image`, `oci`
//! and `docker` exporters. Attributes that are not known options are kept in
//! [`ExportOptions::extra_metadata`]: BuildKit copies them into the result
//! metadata, which is how `containerimage.config` can arrive as an attribute.

use std::collections::BTreeMap;

use crate::annotations::{self, AnnotationSet};
use crate::error::{ErrorKind, ExportError, Result};

mod signing;
pub use signing::SignFormat;

/// The current compatibility version: what 0 means.
pub const CURRENT_COMPATIBILITY_VERSION: i32 = 30;

/// Every attribute key the exporters know (annotation keys are parsed apart).
pub mod keys {
    pub const NAME: &str = "name";
    pub const OCI_MEDIATYPES: &str = "oci-mediatypes";
    pub const OCI_ARTIFACT: &str = "oci-artifact";
    pub const COMPRESSION: &str = "compression";
    pub const COMPRESSION_LEVEL: &str = "compression-level";
    pub const FORCE_COMPRESSION: &str = "force-compression";
    pub const SOURCE_DATE_EPOCH: &str = "source-date-epoch";
    pub const REWRITE_TIMESTAMP: &str = "rewrite-timestamp";
    pub const ATTESTATION_INLINE: &str = "attestation-inline";
    pub const PREFER_NONDIST_LAYERS: &str = "prefer-nondist-layers";
    pub const TAR: &str = "tar";
    pub const PUSH: &str = "push";
    pub const PUSH_BY_DIGEST: &str = "push-by-digest";
    pub const REGISTRY_INSECURE: &str = "registry.insecure";
    pub const INSECURE: &str = "insecure";
    pub const NAME_CANONICAL: &str = "name-canonical";
    pub const STORE: &str = "store";
    pub const UNPACK: &str = "unpack";
    pub const DANGLING_NAME_PREFIX: &str = "dangling-name-prefix";
    pub const BUILDINFO: &str = "buildinfo";
    pub const BUILDINFO_ATTRS: &str = "buildinfo-attrs";
    /// oxport: keep attestation manifests in the image index (default true).
    pub const ATTESTATIONS_IN_INDEX: &str = "attestations-in-index";
    /// oxport: when to maintain the referrers fallback tag (`auto`, `always`, `never`).
    pub const REFERRERS_FALLBACK: &str = "referrers-fallback";
    /// oxport: sign the image and its attestations with the server's key of this name.
    pub const SIGN: &str = "oxport.sign";
    /// oxport: where signatures go (`bundle`, `legacy` tags or `both`).
    pub const SIGN_FORMAT: &str = "oxport.sign-format";
    /// oxport: also sign each platform manifest under an index (cosign's `--recursive`).
    pub const SIGN_RECURSIVE: &str = "oxport.sign-recursive";
}

/// When a push maintains the referrers fallback tag index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersFallback {
    /// Only when the registry lacks the referrers API.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterType {
    Oci,
    Docker,
    Image,
}

impl ExporterType {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "oci" => Ok(ExporterType::Oci),
            "docker" => Ok(ExporterType::Docker),
            "image" => Ok(ExporterType::Image),
            other => Err(ExportError::invalid(
                "exporter",
                format!("unsupported exporter type {other:?}: expected oci, docker or image"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExporterType::Oci => "oci",
            ExporterType::Docker => "docker",
            ExporterType::Image => "image",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The export options after parsing; defaults that depend on the build
/// result are resolved by [`ExportOptions::finalize`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    pub exporter: ExporterType,
    pub compatibility_version: i32,
    /// The raw `name` attribute (comma separated; `*` means metadata `image.name`).
    pub name: String,
    /// `None` until finalized when not given.
    pub oci_types: Option<bool>,
    /// `None` when not given.
    pub oci_artifact: Option<bool>,
    pub compression: Compression,
    pub compression_level: Option<i64>,
    pub force_compression: bool,
    /// Seconds since the Unix epoch, from the attribute only.
    pub epoch: Option<i64>,
    pub rewrite_timestamp: bool,
    /// Keep inline-only attestations (BuildKit's `attestation-inline`).
    pub force_inline_attestations: bool,
    pub tar: bool,
    pub push: bool,
    pub push_by_digest: bool,
    pub insecure: bool,
    pub name_canonical: bool,
    /// Attestation manifests are listed in the image index (artifact form may opt out).
    pub attestations_in_index: bool,
    pub referrers_fallback: ReferrersFallback,
    /// The name of the server's key to sign with (`oxport.sign`).
    pub sign: Option<String>,
    /// Where the signatures go (`oxport.sign-format`); `None` when not given.
    pub sign_format: Option<SignFormat>,
    /// Also sign each platform manifest (`oxport.sign-recursive`); `None`
    /// when not given.
    pub sign_recursive: Option<bool>,
    pub annotations: AnnotationSet,
    /// Unknown attributes: copied into the result metadata.
    pub extra_metadata: BTreeMap<String, String>,
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn bool_attr(key: &str, v: &str) -> Result<bool> {
    parse_go_bool(v).ok_or_else(|| {
        ExportError::invalid(
            key,
            format!(
                "non-bool value specified for {key}: strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(v)
            ),
        )
    })
}

/// Go's `%q` for the strings that appear in error texts.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseInt(v, 10, 64)` with its error text.
pub fn parse_go_int(v: &str) -> std::result::Result<i64, String> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(v)
        ));
    }
    v.parse::<i64>().map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(v)
        )
    })
}

/// BuildKit's epoch parser (`invalid <key>: <err>`, wrapped once more).
pub fn parse_epoch(key: &str, v: &str) -> std::result::Result<Option<i64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    parse_go_int(v)
        .map(Some)
        .map_err(|e| format!("invalid {key}: {e}: {e}"))
}

impl ExportOptions {
    /// Parses the attributes of one exporter instance.
    pub fn parse(
        exporter: &str,
        attrs: &BTreeMap<String, String>,
        compatibility_version: i32,
    ) -> Result<Self> {
        let exporter = ExporterType::parse(exporter)?;
        let compatibility_version = if compatibility_version == 0 {
            CURRENT_COMPATIBILITY_VERSION
        } else {
            compatibility_version
        };
        let (annotations, rest) = annotations::parse(attrs)?;

        let mut o = ExportOptions {
            exporter,
            compatibility_version,
            name: String::new(),
            oci_types: None,
            oci_artifact: None,
            compression: Compression::Gzip,
            compression_level: None,
            force_compression: false,
            epoch: None,
            rewrite_timestamp: false,
            force_inline_attestations: exporter == ExporterType::Image,
            tar: true,
            push: false,
            push_by_digest: false,
            insecure: false,
            name_canonical: false,
            attestations_in_index: true,
            referrers_fallback: ReferrersFallback::Auto,
            sign: None,
            sign_format: None,
            sign_recursive: None,
            annotations,
            extra_metadata: BTreeMap::new(),
        };

        if let Some(v) = rest.get(keys::SOURCE_DATE_EPOCH) {
            o.epoch = parse_epoch(keys::SOURCE_DATE_EPOCH, v)
                .map_err(|e| ExportError::invalid(keys::SOURCE_DATE_EPOCH, e))?;
        }

        let mut estargz = false;
        if let Some(v) = rest.get(keys::COMPRESSION) {
            o.compression = match v.as_str() {
                "uncompressed" => Compression::Uncompressed,
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                "estargz" => {
                    estargz = true;
                    Compression::Gzip
                }
                other => {
                    return Err(ExportError::invalid(
                        keys::COMPRESSION,
                        format!("unsupported compression type {other}"),
                    ))
                }
            };
        }
        if let Some(v) = rest.get(keys::FORCE_COMPRESSION) {
            o.force_compression = if v.is_empty() {
                true
            } else {
                parse_go_bool(v).ok_or_else(|| {
                    ExportError::invalid(
                        keys::FORCE_COMPRESSION,
                        format!(
                            "non-bool value {v} specified for {}: strconv.ParseBool: parsing {}: invalid syntax",
                            keys::FORCE_COMPRESSION,
                            go_quote(v)
                        ),
                    )
                })?
            };
        }
        if let Some(v) = rest.get(keys::COMPRESSION_LEVEL) {
            o.compression_level = Some(parse_go_int(v).map_err(|e| {
                ExportError::invalid(
                    keys::COMPRESSION_LEVEL,
                    format!(
                        "non-integer value {v} specified for {}: {e}",
                        keys::COMPRESSION_LEVEL
                    ),
                )
            })?);
        }

        for (k, v) in &rest {
            match k.as_str() {
                keys::SOURCE_DATE_EPOCH
                | keys::COMPRESSION
                | keys::FORCE_COMPRESSION
                | keys::COMPRESSION_LEVEL => {}
                keys::NAME => o.name = v.clone(),
                keys::OCI_MEDIATYPES => o.oci_types = Some(bool_attr(k, v)?),
                keys::OCI_ARTIFACT => o.oci_artifact = Some(bool_attr(k, v)?),
                keys::ATTESTATION_INLINE => o.force_inline_attestations = bool_attr(k, v)?,
                keys::PREFER_NONDIST_LAYERS => {
                    bool_attr(k, v)?;
                }
                keys::REWRITE_TIMESTAMP => o.rewrite_timestamp = bool_attr(k, v)?,
                keys::TAR if exporter != ExporterType::Image => {
                    o.tar = v.is_empty() || bool_attr(k, v)?
                }
                keys::PUSH if exporter == ExporterType::Image => {
                    o.push = v.is_empty() || bool_attr(k, v)?
                }
                keys::PUSH_BY_DIGEST if exporter == ExporterType::Image => {
                    o.push_by_digest = v.is_empty() || bool_attr(k, v)?
                }
                keys::REGISTRY_INSECURE | keys::INSECURE if exporter == ExporterType::Image => {
                    o.insecure = v.is_empty() || bool_attr(k, v)?
                }
                keys::NAME_CANONICAL if exporter == ExporterType::Image => {
                    o.name_canonical = v.is_empty() || bool_attr(k, v)?
                }
                keys::STORE | keys::UNPACK if exporter == ExporterType::Image => {
                    if !v.is_empty() {
                        bool_attr(k, v)?;
                    }
                }
                keys::DANGLING_NAME_PREFIX if exporter == ExporterType::Image => {}
                keys::ATTESTATIONS_IN_INDEX => o.attestations_in_index = bool_attr(k, v)?,
                keys::REFERRERS_FALLBACK => {
                    o.referrers_fallback = match v.as_str() {
                        "auto" | "" => ReferrersFallback::Auto,
                        "always" => ReferrersFallback::Always,
                        "never" => ReferrersFallback::Never,
                        other => {
                            return Err(ExportError::invalid(
                                k.as_str(),
                                format!(
                                    "invalid value {other} specified for {k}: expected auto, always or never"
                                ),
                            ))
                        }
                    }
                }
                keys::SIGN => {
                    if v.is_empty() {
                        return Err(ExportError::invalid(
                            k.as_str(),
                            format!("{k} needs the name of one of the server's signing keys"),
                        ));
                    }
                    o.sign = Some(v.clone());
                }
                keys::SIGN_FORMAT => o.sign_format = Some(SignFormat::parse(k, v)?),
                keys::SIGN_RECURSIVE => {
                    o.sign_recursive = Some(v.is_empty() || bool_attr(k, v)?)
                }
                keys::BUILDINFO | keys::BUILDINFO_ATTRS => {}
                _ => {
                    o.extra_metadata.insert(k.clone(), v.clone());
                }
            }
        }

        if o.sign.is_none() {
            let given = [
                (
                    o.sign_format.is_some(),
                    keys::SIGN_FORMAT,
                    "where signatures go",
                ),
                (
                    o.sign_recursive.is_some(),
                    keys::SIGN_RECURSIVE,
                    "what is signed",
                ),
            ];
            if let Some((_, key, what)) = given.into_iter().find(|g| g.0) {
                return Err(ExportError::invalid(
                    key,
                    format!(
                        "{key} says {what}, but no key was named: add {}=NAME",
                        keys::SIGN
                    ),
                ));
            }
        }
        // BuildKit validates only when oci-mediatypes was given.
        if o.oci_types == Some(false) {
            if estargz {
                return Err(ExportError::conflict(
                    keys::COMPRESSION,
                    "exporter option \"compression=estargz\" conflicts with \"oci-mediatypes=false\"",
                ));
            }
            if o.oci_artifact == Some(true) {
                return Err(ExportError::conflict(
                    keys::OCI_ARTIFACT,
                    "exporter option \"oci-artifact=true\" conflicts with \"oci-mediatypes=false\"",
                ));
            }
        }
        if estargz {
            return Err(ExportError::new(
                ErrorKind::InvalidArgument,
                "compression type estargz is not supported by this exporter: use gzip or zstd",
            )
            .with_field(keys::COMPRESSION));
        }
        if exporter == ExporterType::Oci {
            o.oci_types.get_or_insert(true);
        }
        Ok(o)
    }

    /// Resolves the defaults that depend on the build result.
    pub fn finalize(&mut self, has_attestations: bool) {
        let v = self.compatibility_version;
        let oci = *self
            .oci_types
            .get_or_insert(v >= CURRENT_COMPATIBILITY_VERSION || has_attestations);
        self.oci_artifact
            .get_or_insert(v >= CURRENT_COMPATIBILITY_VERSION && oci);
    }

    /// Checks the oxport-only options against the resolved defaults.
    pub fn check_extensions(&self) -> Result<()> {
        if !self.attestations_in_index && !self.oci_artifact() {
            return Err(ExportError::conflict(
                keys::ATTESTATIONS_IN_INDEX,
                "exporter option \"attestations-in-index=false\" requires \"oci-artifact=true\"",
            ));
        }
        Ok(())
    }

    /// Whether each platform manifest under an index is signed too (not
    /// unless `oxport.sign-recursive` says, as `cosign sign` signs).
    pub fn sign_recursive(&self) -> bool {
        self.sign_recursive.unwrap_or(false)
    }

    /// Where the signatures go (bundles unless `oxport.sign-format` says).
    pub fn sign_format(&self) -> SignFormat {
        self.sign_format.unwrap_or_default()
    }

    pub fn oci_types(&self) -> bool {
        self.oci_types.unwrap_or(true)
    }

    pub fn oci_artifact(&self) -> bool {
        self.oci_artifact.unwrap_or(false)
    }

    /// The effective options as key=value strings (ResolveOptions).
    pub fn effective(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("exporter", self.exporter.as_str().into());
        put(
            "compatibility-version",
            self.compatibility_version.to_string(),
        );
        put(keys::NAME, self.name.clone());
        if let Some(b) = self.oci_types {
            put(keys::OCI_MEDIATYPES, b.to_string());
        }
        if let Some(b) = self.oci_artifact {
            put(keys::OCI_ARTIFACT, b.to_string());
        }
        put(keys::COMPRESSION, self.compression.as_str().into());
        if let Some(l) = self.compression_level {
            put(keys::COMPRESSION_LEVEL, l.to_string());
        }
        put(keys::FORCE_COMPRESSION, self.force_compression.to_string());
        if let Some(e) = self.epoch {
            put(keys::SOURCE_DATE_EPOCH, e.to_string());
        }
        put(keys::REWRITE_TIMESTAMP, self.rewrite_timestamp.to_string());
        put(
            keys::ATTESTATION_INLINE,
            self.force_inline_attestations.to_string(),
        );
        if self.exporter == ExporterType::Image {
            put(keys::PUSH, self.push.to_string());
            put(keys::PUSH_BY_DIGEST, self.push_by_digest.to_string());
            put(keys::REGISTRY_INSECURE, self.insecure.to_string());
            put(keys::NAME_CANONICAL, self.name_canonical.to_string());
        } else {
            put(keys::TAR, self.tar.to_string());
        }
        put(
            keys::ATTESTATIONS_IN_INDEX,
            self.attestations_in_index.to_string(),
        );
        put(
            keys::REFERRERS_FALLBACK,
            match self.referrers_fallback {
                ReferrersFallback::Auto => "auto",
                ReferrersFallback::Always => "always",
                ReferrersFallback::Never => "never",
            }
            .into(),
        );
        if let Some(name) = &self.sign {
            put(keys::SIGN, name.clone());
            put(keys::SIGN_FORMAT, self.sign_format().as_str().into());
            put(keys::SIGN_RECURSIVE, self.sign_recursive().to_string());
        }
        m
    }
}

#[cfg(test)]
mod tests;
