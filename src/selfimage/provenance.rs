//! The SLSA v1 provenance predicate of a self-built image.
//!
//! What it vouches for: which binary (by digest) went into the image, which
//! crate version it claims to be, from which source revision when one was
//! given, and that `oxport self-image` assembled it. Times are the pinned
//! epoch, so two builds of the same binary give the same statement.

use serde_json::{json, Value};

use super::Params;

pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// The build type: this command's own recipe, versioned with the crate.
pub const BUILD_TYPE: &str = "urn:oxport:self-image:v1";

pub fn predicate(p: &Params, binary_sha256: &str, time: &str) -> Value {
    let mut deps = vec![json!({
        "uri": format!("pkg:cargo/{}@{}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")),
        "digest": {"sha256": binary_sha256},
        "name": "oxport binary",
    })];
    if let Some(rev) = &p.revision {
        let uri = p
            .source
            .as_deref()
            .map(|s| format!("git+{s}"))
            .unwrap_or_else(|| "git".to_string());
        deps.push(json!({"uri": uri, "digest": {"gitCommit": rev}}));
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "platform": p.platform,
                "version": p.version,
                "entrypoint": format!("/{}", super::layer::BINARY_PATH),
            },
            "internalParameters": {
                "sourceDateEpoch": p.epoch.to_string(),
            },
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": "urn:oxport:self-image",
                "version": {"oxport": env!("CARGO_PKG_VERSION")},
            },
            "metadata": {
                "invocationId": format!("self-image-{}", &binary_sha256[..16.min(binary_sha256.len())]),
                "startedOn": time,
                "finishedOn": time,
            },
        },
    })
}
