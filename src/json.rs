//! JSON bytes compatible with Go's `encoding/json`, because digests depend on
//! every byte BuildKit writes.
//!
//! Go writes struct fields in declaration order, sorts map keys, escapes
//! `<`, `>`, `&`, U+2028 and U+2029, and `MarshalIndent` is `Marshal`
//! followed by `Indent`. This module offers the same three steps: an object
//! builder that keeps insertion order, [`compact_raw`] for values that pass
//! through as `json.RawMessage`, and [`indent`].

use std::collections::BTreeMap;

/// Appends `s` as a Go-encoded JSON string (with the HTML-safe escapes).
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A Go-encoded JSON string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// A JSON object written field by field, in the order given (Go struct order).
#[derive(Debug)]
pub struct Object {
    buf: String,
    empty: bool,
}

impl Default for Object {
    fn default() -> Self {
        Self::new()
    }
}

impl Object {
    pub fn new() -> Self {
        Object {
            buf: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        write_string(&mut self.buf, k);
        self.buf.push(':');
    }

    /// A field whose value is already JSON text.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        write_string(&mut self.buf, v);
        self
    }

    /// A string field with Go's `omitempty`.
    pub fn str_opt(&mut self, k: &str, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.str(k, v);
        }
        self
    }

    pub fn int(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k);
        self.buf.push_str(&v.to_string());
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// A `map[string]string` field with `omitempty`: sorted keys, omitted when empty.
    pub fn map_opt(&mut self, k: &str, m: &BTreeMap<String, String>) -> &mut Self {
        if !m.is_empty() {
            self.raw(k, &string_map(m));
        }
        self
    }

    pub fn finish(&mut self) -> String {
        let mut s = std::mem::take(&mut self.buf);
        s.push('}');
        s
    }
}

/// A `map[string]string` as Go writes it: keys sorted by bytes.
pub fn string_map(m: &BTreeMap<String, String>) -> String {
    let mut o = Object::new();
    for (k, v) in m {
        o.str(k, v);
    }
    o.finish()
}

/// A JSON array of values that are already JSON text.
pub fn array<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item.as_ref());
    }
    out.push(']');
    out
}

/// A `[]string`: `null` when nil (Go), else the array.
pub fn string_array(items: &[String]) -> String {
    array(items.iter().map(|s| string(s)))
}

/// What Go's `json.Marshal` does to a `json.RawMessage`: whitespace outside
/// strings removed, `<`, `>`, `&`, U+2028 and U+2029 escaped, everything else
/// (key order, number spelling, existing escapes) kept. The input must be
/// valid JSON.
pub fn compact_raw(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in src.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => continue,
                '"' => in_string = true,
                _ => {}
            }
        }
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `json.Indent(dst, src, "", indent)` over compact JSON.
pub fn indent(src: &str, unit: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(unit);
        }
    };
    for c in src.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                need_indent = true;
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `json.MarshalIndent(v, "", "  ")` given `json.Marshal(v)`.
pub fn pretty(compact: &str) -> String {
    indent(compact, "  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_go() {
        assert_eq!(string("a<b>&\"\\"), r#""a\u003cb\u003e\u0026\"\\""#);
        assert_eq!(string("\n\t\r\u{8}\u{c}\u{1}"), r#""\n\t\r\b\f\u0001""#);
        assert_eq!(string("héllo ✓\u{2028}"), "\"héllo ✓\\u2028\"");
    }

    #[test]
    fn compact_keeps_order_numbers_and_escapes() {
        let src = "{ \"z\": 1.50, \"a\" : [true, null],\n \"h\": \"<&> \\u2713 \\\" x\" }";
        assert_eq!(
            compact_raw(src),
            r#"{"z":1.50,"a":[true,null],"h":"\u003c\u0026\u003e \u2713 \" x"}"#
        );
    }

    #[test]
    fn indent_matches_go() {
        let src = r#"{"a":[],"b":{},"c":[1,{"d":"x, y: z"}],"e":{"f":null}}"#;
        let want = "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": \"x, y: z\"\n    }\n  ],\n  \"e\": {\n    \"f\": null\n  }\n}";
        assert_eq!(pretty(src), want);
    }

    #[test]
    fn objects_keep_field_order_and_sort_maps() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        let s = Object::new()
            .int("z", 2)
            .str_opt("empty", "")
            .map_opt("m", &m)
            .bool("t", true)
            .finish();
        assert_eq!(s, r#"{"z":2,"m":{"a":"1","b":"2"},"t":true}"#);
    }
}
