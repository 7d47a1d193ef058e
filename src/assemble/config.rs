//! The image config: the frontend's, or the default one, patched as
//! BuildKit patches it (rootfs from the exported layers, normalised history,
//! creation time, epoch clamping), with Go's JSON bytes.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{ExportError, Result};
use crate::json::{self, Object};
use crate::oci::Platform;
use crate::platform;
use crate::timefmt::Time;

/// The config BuildKit generates when the frontend gave none: always the
/// daemon's platform, which is linux/amd64.
pub const DEFAULT_CONFIG: &str = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":null}}"#;

/// What the config needs to know about one exported layer.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// Digest of the exported layer's uncompressed tar.
    pub diff_id: String,
    /// The layer's description (`createdBy`).
    pub created_by: String,
    /// The layer's creation time, when known.
    pub created: Option<Time>,
}

/// One history entry, with only the fields of OCI's `History`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub created: Option<Time>,
    pub created_by: String,
    pub author: String,
    pub comment: String,
    pub empty_layer: bool,
}

impl History {
    fn to_json(&self) -> String {
        let mut o = Object::new();
        if let Some(t) = &self.created {
            o.str("created", &t.format());
        }
        o.str_opt("created_by", &self.created_by)
            .str_opt("author", &self.author)
            .str_opt("comment", &self.comment);
        if self.empty_layer {
            o.bool("empty_layer", true);
        }
        o.finish()
    }
}

/// Go's `encoding/json` error text for a serde error, as far as it matters.
fn go_json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        format!("invalid JSON: {e}")
    }
}

/// Looks a field up the way Go does: exact name first, then case-insensitively.
fn go_field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .next_back()
    })
}

fn go_string(v: Option<&Value>, what: &str) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ExportError::invalid(
            "metadata",
            format!("json: cannot unmarshal non-string into Go struct field {what} of type string"),
        )),
    }
}

/// Reads `history` from a config (BuildKit's first parse of the config).
pub fn parse_history(config: &[u8]) -> Result<Vec<History>> {
    let wrap = |msg: String| {
        ExportError::invalid(
            "metadata",
            format!("failed to unmarshal history from config: {msg}"),
        )
    };
    let v: Value = serde_json::from_slice(config).map_err(|e| wrap(go_json_error(&e)))?;
    let Value::Object(obj) = v else {
        return Ok(Vec::new());
    };
    let Some(h) = go_field(&obj, "history") else {
        return Ok(Vec::new());
    };
    let entries = match h {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err(wrap("json: cannot unmarshal history into []History".into())),
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Value::Object(e) = e else {
            out.push(History::default());
            continue;
        };
        let created =
            match go_field(e, "created") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(Time::parse(s).ok_or_else(|| {
                    wrap(format!("parsing time {}: not RFC 3339", json::string(s)))
                })?),
                Some(_) => return Err(wrap("invalid history created time".into())),
            };
        let empty_layer = match go_field(e, "empty_layer") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(wrap("invalid history empty_layer".into())),
        };
        out.push(History {
            created,
            created_by: go_string(go_field(e, "created_by"), "History.created_by")
                .map_err(|e| wrap(e.message))?,
            author: go_string(go_field(e, "author"), "History.author")
                .map_err(|e| wrap(e.message))?,
            comment: go_string(go_field(e, "comment"), "History.comment")
                .map_err(|e| wrap(e.message))?,
            empty_layer,
        });
    }
    Ok(out)
}

/// BuildKit's history normalisation: one non-empty entry per layer, and a
/// time on every entry, filled in two passes.
pub fn normalize_history(mut history: Vec<History>, layers: &[LayerInfo]) -> Vec<History> {
    let non_empty = history.iter().filter(|h| !h.empty_layer).count();
    if non_empty > layers.len() {
        // Surplus entries become empty layers, from the bottom up.
        let mut l = 0;
        for h in history.iter_mut() {
            if l >= layers.len() {
                h.empty_layer = true;
            }
            if !h.empty_layer {
                l += 1;
            }
        }
    }
    if layers.len() > non_empty {
        for layer in &layers[non_empty..] {
            history.push(History {
                created: layer.created,
                created_by: if layer.created_by.is_empty() {
                    "created by buildkit".into()
                } else {
                    layer.created_by.clone()
                },
                comment: "buildkit.exporter.image.v0".into(),
                ..Default::default()
            });
        }
    }
    let mut layer_index = 0;
    for h in history.iter_mut() {
        if !h.empty_layer {
            if h.created.is_none() {
                h.created = layers.get(layer_index).and_then(|l| l.created);
            }
            layer_index += 1;
        }
    }
    // The first run of untimed entries takes the first time after it (or the
    // last time if none follows); later untimed entries take the nearest
    // earlier time.
    let mut created = None;
    let mut seen_untimed = false;
    for h in &history {
        if h.created.is_some() {
            created = h.created;
            if seen_untimed {
                break;
            }
        } else {
            seen_untimed = true;
        }
    }
    seen_untimed = false;
    for h in history.iter_mut() {
        if h.created.is_some() {
            if seen_untimed {
                created = h.created;
            }
        } else {
            seen_untimed = true;
            h.created = created;
        }
    }
    history
}

/// Clamps every history time later than the epoch (or missing) to it.
pub fn clamp_history(history: &mut [History], epoch: &Time) {
    for h in history {
        if h.created.as_ref().is_none_or(|t| t.is_after(epoch)) {
            h.created = Some(*epoch);
        }
    }
}

/// Rewrites the config: top-level keys sorted, values compacted, rootfs and
/// history replaced, `created` filled from history and clamped to the epoch.
pub fn patch(
    config: &[u8],
    diff_ids: &[String],
    history: &[History],
    epoch: Option<&Time>,
) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(config).map_err(|_| {
        ExportError::invalid("metadata", "invalid image config for export: not UTF-8")
    })?;
    let m: Option<BTreeMap<String, Box<RawValue>>> = serde_json::from_str(text).map_err(|e| {
        ExportError::invalid(
            "metadata",
            format!(
                "failed to parse image config for patch: {}",
                go_json_error(&e)
            ),
        )
    })?;
    let Some(raw) = m else {
        return Err(ExportError::invalid(
            "metadata",
            "invalid null image config for export",
        ));
    };
    let mut fields: BTreeMap<String, String> = raw
        .into_iter()
        .map(|(k, v)| (k, json::compact_raw(v.get())))
        .collect();

    let ids = if diff_ids.is_empty() {
        "null".to_string()
    } else {
        json::string_array(diff_ids)
    };
    fields.insert(
        "rootfs".into(),
        Object::new()
            .str("type", "layers")
            .raw("diff_ids", &ids)
            .finish(),
    );
    fields.insert(
        "history".into(),
        if history.is_empty() {
            "null".into()
        } else {
            json::array(history.iter().map(History::to_json))
        },
    );
    if !fields.contains_key("created") {
        let last = history.iter().rev().find_map(|h| h.created);
        fields.insert(
            "created".into(),
            last.map_or("null".into(), |t| json::string(&t.format())),
        );
    }
    if let Some(epoch) = epoch {
        let created: Option<Time> = serde_json::from_str::<Option<String>>(&fields["created"])
            .ok()
            .flatten()
            .and_then(|s| Time::parse(&s));
        if created.is_some_and(|c| c.is_after(epoch)) {
            fields.insert("created".into(), json::string(&epoch.format()));
        }
    }
    let mut o = Object::new();
    for (k, v) in &fields {
        o.raw(k, v);
    }
    Ok(o.finish().into_bytes())
}

/// The platform a config names (for a single non-map ref), or `None` when it
/// names neither os nor architecture.
pub fn config_platform(config: &[u8]) -> Result<Option<Platform>> {
    let v: Value = serde_json::from_slice(config).map_err(|e| {
        ExportError::invalid(
            "metadata",
            format!("invalid image config: {}", go_json_error(&e)),
        )
    })?;
    let Value::Object(obj) = v else {
        return Ok(None);
    };
    let os = go_string(go_field(&obj, "os"), "Image.os")?;
    let arch = go_string(go_field(&obj, "architecture"), "Image.architecture")?;
    let variant = go_string(go_field(&obj, "variant"), "Image.variant")?;
    if os.is_empty() && arch.is_empty() {
        return Ok(None);
    }
    if os.is_empty() || arch.is_empty() {
        return Err(ExportError::invalid(
            "metadata",
            "invalid image config: os and architecture must be specified together",
        ));
    }
    let (architecture, variant) = platform::normalize_arch(&arch, &variant);
    Ok(Some(Platform {
        architecture,
        os: os.to_ascii_lowercase(),
        variant,
        ..Default::default()
    }))
}

/// Checks a map result's config names its platform (BuildKit's patch check).
pub fn check_os_arch(config: &[u8]) -> Result<()> {
    let v: Value = serde_json::from_slice(config).map_err(|e| {
        ExportError::invalid(
            "metadata",
            format!("invalid image config for export: {}", go_json_error(&e)),
        )
    })?;
    let Value::Object(obj) = v else {
        return Err(ExportError::invalid(
            "metadata",
            "invalid null image config for export",
        ));
    };
    if go_string(go_field(&obj, "os"), "Image.os")?.is_empty() {
        return Err(ExportError::invalid(
            "metadata",
            "invalid image config for export: missing os",
        ));
    }
    if go_string(go_field(&obj, "architecture"), "Image.architecture")?.is_empty() {
        return Err(ExportError::invalid(
            "metadata",
            "invalid image config for export: missing architecture",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<Time> {
        Time::parse(s)
    }

    fn layer(created: &str) -> LayerInfo {
        LayerInfo {
            diff_id: "sha256:00".into(),
            created_by: "mkfile /x".into(),
            created: t(created),
        }
    }

    #[test]
    fn default_config_patch() {
        let h = normalize_history(Vec::new(), &[layer("2024-01-01T00:00:00Z")]);
        let out = patch(DEFAULT_CONFIG.as_bytes(), &["sha256:aa".into()], &h, None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"created":"2024-01-01T00:00:00Z","history":[{"created":"2024-01-01T00:00:00Z","created_by":"mkfile /x","comment":"buildkit.exporter.image.v0"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#
        );
    }

    #[test]
    fn history_fill_in_two_passes() {
        let entry = |c: Option<&str>, empty: bool| History {
            created: c.and_then(t),
            empty_layer: empty,
            ..Default::default()
        };
        let h = normalize_history(
            vec![
                entry(None, true),
                entry(Some("2023-01-01T00:00:00Z"), false),
                entry(None, true),
                entry(None, false),
                entry(None, true),
            ],
            &[layer("2020-01-01T00:00:00Z"), layer("2021-01-01T00:00:00Z")],
        );
        let got: Vec<String> = h.iter().map(|h| h.created.unwrap().format()).collect();
        assert_eq!(
            got,
            [
                "2023-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                "2021-01-01T00:00:00Z",
                "2021-01-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn truncated_config_error_text() {
        assert_eq!(
            parse_history(b"{\"history\": [").unwrap_err().message,
            "failed to unmarshal history from config: unexpected end of JSON input"
        );
    }

    #[test]
    fn platform_needs_both() {
        assert_eq!(
            config_platform(br#"{"os":"linux"}"#).unwrap_err().message,
            "invalid image config: os and architecture must be specified together"
        );
        assert_eq!(
            config_platform(br#"{"os":"linux","architecture":"arm64"}"#)
                .unwrap()
                .unwrap()
                .id(),
            "linux/arm64"
        );
    }
}
