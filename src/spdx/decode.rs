//! Decoding JSON into the SPDX types the way Go's `encoding/json` does.
//!
//! The rules that matter for the bytes BuildKit writes back:
//! - a key matches a field by its exact name, else case-insensitively, and a
//!   later duplicate key decodes over the earlier one;
//! - unknown keys are dropped;
//! - `null` leaves a string, number, bool or struct as it was, and sets a
//!   pointer or slice to nil (which encodes as `null` unless `omitempty`);
//! - a value decodes into what the field already holds (a struct keeps the
//!   fields the value does not name, a slice reuses its elements);
//! - a value of the wrong JSON type is an error, and any error means the
//!   document is not decoded at all;
//! - the types with their own `UnmarshalJSON` receive the raw JSON text of the
//!   value (escapes and all), which is why [`raw_text`] exists.

use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Any decoding failure: the caller leaves the document as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

pub type Decoded = Result<(), Invalid>;

/// A value that decodes into itself, as Go decodes into an existing value.
pub trait GoDecode {
    fn decode(&mut self, raw: &RawValue) -> Decoded;
}

/// The JSON text of a value, without surrounding whitespace.
pub fn raw_text(raw: &RawValue) -> &str {
    raw.get().trim_matches(|c: char| c.is_ascii_whitespace())
}

pub fn is_null(raw: &RawValue) -> bool {
    raw_text(raw) == "null"
}

/// The members of a JSON object in document order, duplicates kept.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The elements of a JSON array.
struct Elements<'a>(Vec<&'a RawValue>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Elements<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Elements<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<&'de RawValue>()? {
                    out.push(v);
                }
                Ok(Elements(out))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// Go's case folding of field names, close enough for JSON keys: Unicode
/// lower case on both sides.
fn fold_eq(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Decodes an object's members into struct fields named by `keys`; `set`
/// receives the index of the matched key. `null` leaves the struct as it was.
pub fn fields<'a>(
    raw: &'a RawValue,
    keys: &[&str],
    mut set: impl FnMut(usize, &'a RawValue) -> Decoded,
) -> Decoded {
    if is_null(raw) {
        return Ok(());
    }
    let members: Members<'a> = serde_json::from_str(raw.get()).map_err(|_| Invalid)?;
    for (k, v) in members.0 {
        let i = keys
            .iter()
            .position(|n| *n == k)
            .or_else(|| keys.iter().position(|n| fold_eq(n, &k)));
        if let Some(i) = i {
            set(i, v)?;
        }
    }
    Ok(())
}

impl GoDecode for String {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        if is_null(raw) {
            return Ok(());
        }
        let text = raw_text(raw);
        if !text.starts_with('"') {
            return Err(Invalid);
        }
        *self = serde_json::from_str(text).map_err(|_| Invalid)?;
        Ok(())
    }
}

impl GoDecode for bool {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        match raw_text(raw) {
            "null" => {}
            "true" => *self = true,
            "false" => *self = false,
            _ => return Err(Invalid),
        }
        Ok(())
    }
}

/// Go's `int`: the literal must parse as a 64-bit integer (no fraction, no
/// exponent).
impl GoDecode for i64 {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        match raw_text(raw) {
            "null" => Ok(()),
            t => {
                *self = t.parse().map_err(|_| Invalid)?;
                Ok(())
            }
        }
    }
}

/// A Go pointer: `null` sets it to nil; a value decodes into the pointee,
/// allocated when nil.
impl<T: GoDecode + Default> GoDecode for Option<Box<T>> {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        if is_null(raw) {
            *self = None;
            return Ok(());
        }
        self.get_or_insert_with(Default::default).decode(raw)
    }
}

/// A Go slice (`None` is nil): `null` sets it to nil; an array decodes
/// element by element into the existing elements, then truncates.
impl<T: GoDecode + Default> GoDecode for Option<Vec<T>> {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        if is_null(raw) {
            *self = None;
            return Ok(());
        }
        let elements: Elements<'_> = serde_json::from_str(raw.get()).map_err(|_| Invalid)?;
        let v = self.get_or_insert_with(Vec::new);
        for (i, e) in elements.0.iter().enumerate() {
            if i == v.len() {
                v.push(T::default());
            }
            v[i].decode(e)?;
        }
        v.truncate(elements.0.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn strings_keep_their_value_on_null_and_refuse_other_types() {
        let mut s = "x".to_string();
        s.decode(&raw("null")).unwrap();
        assert_eq!(s, "x");
        s.decode(&raw(r#""a\u003cb""#)).unwrap();
        assert_eq!(s, "a<b");
        assert_eq!(s.decode(&raw("5")), Err(Invalid));
    }

    #[test]
    fn ints_are_go_ints() {
        let mut n = 0i64;
        n.decode(&raw("-12")).unwrap();
        assert_eq!(n, -12);
        assert_eq!(n.decode(&raw("1.0")), Err(Invalid));
        assert_eq!(n.decode(&raw("1e3")), Err(Invalid));
    }

    #[test]
    fn slices_distinguish_nil_from_empty() {
        let mut v: Option<Vec<String>> = Some(vec!["a".into()]);
        v.decode(&raw("null")).unwrap();
        assert_eq!(v, None);
        v.decode(&raw("[]")).unwrap();
        assert_eq!(v, Some(vec![]));
        v.decode(&raw(r#"["x","y"]"#)).unwrap();
        v.decode(&raw(r#"["z"]"#)).unwrap();
        assert_eq!(v, Some(vec!["z".to_string()]));
    }

    #[test]
    fn keys_match_exactly_first_then_folded_and_later_duplicates_win() {
        let mut got = Vec::new();
        let text = raw(r#"{"Name":"a","name":"b","other":1,"NAME":"c"}"#);
        fields(&text, &["name"], |i, v| {
            got.push((i, v.get().to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            [
                (0, r#""a""#.to_string()),
                (0, r#""b""#.to_string()),
                (0, r#""c""#.to_string())
            ]
        );
    }
}
