//! Limits on what one request may bring, and on how much work the server
//! takes on at once.
//!
//! The export core reads its share through `ExportEnv::limits`; the server
//! applies the rest (message size, uploads, deadline, concurrency). The
//! defaults are generous for real builds and small enough that one client
//! cannot exhaust the machine. Every error that reports a passed limit names
//! the request field and the `oxport serve` flag that sets the limit.

use std::time::Duration;

use crate::error::{ErrorKind, ExportError, Result};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// serde_json refuses deeper documents itself, so a larger limit has no effect.
pub const JSON_DEPTH_CEILING: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest gRPC message, either way (`--max-message-size`).
    pub max_message_size: usize,
    /// The declared size of one uploaded blob (`--max-blob-size`).
    pub max_blob_size: u64,
    /// Bytes one upload stream (WriteBlob or Convert) may carry (`--max-upload-bytes`).
    pub max_upload_bytes: u64,
    /// Attestations attached to one platform (`--max-attestations`).
    pub max_attestations_per_platform: usize,
    /// One in-toto statement, as written (`--max-statement-size`).
    pub max_statement_size: usize,
    /// Platforms (refs) in one build result (`--max-platforms`).
    pub max_platforms: usize,
    /// Layers of all refs of one build result together (`--max-layers`).
    pub max_layers: usize,
    /// Digests in one `MissingBlobs` request (`--max-request-digests`).
    pub max_request_digests: usize,
    /// One annotation, key plus value (`--max-annotation-size`).
    pub max_annotation_size: usize,
    /// Nesting of configs, platform lists and predicates (`--max-json-depth`).
    pub max_json_depth: usize,
    /// How long one request may take, upload or export (`--request-timeout`).
    pub request_timeout: Duration,
    /// How long an upload stream may go without a message (`--stream-idle-timeout`).
    pub stream_idle_timeout: Duration,
    /// How long a partial upload nothing writes to is kept for a resume (`--upload-expiry`).
    pub upload_expiry: Duration,
    /// Requests handled at once; more are refused at once (`--max-concurrent-requests`).
    pub max_concurrent_requests: usize,
    /// Connections open at once; more wait to be accepted (`--max-connections`).
    pub max_connections: usize,
    /// Requests (HTTP/2 streams) one connection may have open (`--max-streams-per-connection`).
    pub max_streams_per_connection: usize,
    /// Exports and conversions running at once (`--max-exports`; 0: one per CPU).
    pub max_exports: usize,
    /// Exports waiting for a slot; more are refused at once (`--export-queue`).
    pub export_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: (64 * MIB) as usize,
            max_blob_size: 64 * GIB,
            max_upload_bytes: 64 * GIB,
            max_attestations_per_platform: 64,
            max_statement_size: (40 * MIB) as usize,
            max_platforms: 64,
            max_layers: 8192,
            max_request_digests: 8192,
            max_annotation_size: 64 << 10,
            max_json_depth: 64,
            request_timeout: Duration::from_secs(3600),
            stream_idle_timeout: Duration::from_secs(60),
            upload_expiry: Duration::from_secs(24 * 3600),
            max_concurrent_requests: 256,
            max_connections: 512,
            max_streams_per_connection: 64,
            max_exports: 0,
            export_queue: 128,
        }
    }
}

impl Limits {
    /// Exports running at once, with 0 meaning one per CPU.
    pub fn export_slots(&self) -> usize {
        match self.max_exports {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// A RESOURCE_EXHAUSTED error about `field` that names the limit's flag.
pub fn exceeded(field: impl Into<String>, what: String, limit: u64, flag: &str) -> ExportError {
    ExportError::new(
        ErrorKind::ResourceExhausted,
        format!("{what} exceeds the limit of {limit} (--{flag})"),
    )
    .with_field(field)
}

/// The nesting depth of a JSON text (arrays and objects), found without
/// parsing it; brackets inside strings do not count.
pub fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Refuses a JSON text nested deeper than the limit; errors name `field`.
pub fn check_json_depth(field: &str, text: &[u8], limits: &Limits) -> Result<()> {
    let depth = json_depth(text);
    if depth > limits.max_json_depth {
        return Err(exceeded(
            field,
            format!("JSON nested {depth} levels deep"),
            limits.max_json_depth as u64,
            "max-json-depth",
        ));
    }
    Ok(())
}

/// Parses sizes like `512`, `64KiB`, `40MiB`, `2GiB` (also `k`, `M`, `G`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: want a number with an optional unit"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Parses durations like `500ms`, `30s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: want e.g. 30s, 5m or 500ms"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(br#"{"a":[1,{"b":2}]}"#), 3);
        assert_eq!(json_depth(br#"{"a":"[[[[\"[["}"#), 1);
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        let err = check_json_depth("x", deep.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ResourceExhausted);
        assert_eq!(err.field.as_deref(), Some("x"));
        assert!(err.message.contains("--max-json-depth"), "{}", err.message);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("40MiB"), Ok(40 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("9"), Ok(Duration::from_secs(9)));
        assert!(parse_duration("soon").is_err());
    }
}
