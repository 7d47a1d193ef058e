//! Encoding the SPDX types as Go's `encoding/json` encodes them: fields in
//! declaration order, `omitempty` dropping empty strings, false, zero, nil
//! pointers and empty slices, nil slices and pointers written as `null`, and
//! strings with Go's HTML-safe escapes.

use crate::json;

/// A failed `MarshalJSON`, with Go's message
/// (`json: error calling MarshalJSON for type common.Creator: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl EncodeError {
    pub fn marshaler(go_type: &str, msg: &str) -> Self {
        EncodeError(format!(
            "json: error calling MarshalJSON for type {go_type}: {msg}"
        ))
    }
}

pub type Encoded = Result<(), EncodeError>;

/// What a `MarshalJSON` that returns no bytes makes Go's encoder say.
pub const EMPTY_OUTPUT: &str = "unexpected end of JSON input";

pub trait GoEncode {
    fn encode(&self, out: &mut String) -> Encoded;
    /// True where `omitempty` drops the field.
    fn is_empty(&self) -> bool;
}

impl GoEncode for String {
    fn encode(&self, out: &mut String) -> Encoded {
        json::write_string(out, self);
        Ok(())
    }
    fn is_empty(&self) -> bool {
        str::is_empty(self)
    }
}

impl GoEncode for bool {
    fn encode(&self, out: &mut String) -> Encoded {
        out.push_str(if *self { "true" } else { "false" });
        Ok(())
    }
    fn is_empty(&self) -> bool {
        !*self
    }
}

impl GoEncode for i64 {
    fn encode(&self, out: &mut String) -> Encoded {
        out.push_str(&self.to_string());
        Ok(())
    }
    fn is_empty(&self) -> bool {
        *self == 0
    }
}

impl<T: GoEncode> GoEncode for Option<Box<T>> {
    fn encode(&self, out: &mut String) -> Encoded {
        match self {
            None => {
                out.push_str("null");
                Ok(())
            }
            Some(v) => v.encode(out),
        }
    }
    fn is_empty(&self) -> bool {
        self.is_none()
    }
}

impl<T: GoEncode> GoEncode for Option<Vec<T>> {
    fn encode(&self, out: &mut String) -> Encoded {
        let Some(items) = self else {
            out.push_str("null");
            return Ok(());
        };
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            item.encode(out)?;
        }
        out.push(']');
        Ok(())
    }
    fn is_empty(&self) -> bool {
        self.as_ref().is_none_or(Vec::is_empty)
    }
}

/// An object being written field by field.
pub struct Fields<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Fields<'o> {
    pub fn new(out: &'o mut String) -> Self {
        out.push('{');
        Fields { out, first: true }
    }

    pub fn field<T: GoEncode>(&mut self, key: &str, v: &T, omitempty: bool) -> Encoded {
        if omitempty && v.is_empty() {
            return Ok(());
        }
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json::write_string(self.out, key);
        self.out.push(':');
        v.encode(self.out)
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<T: GoEncode>(v: &T) -> String {
        let mut s = String::new();
        v.encode(&mut s).unwrap();
        s
    }

    #[test]
    fn nil_and_empty_slices_differ() {
        assert_eq!(enc(&None::<Vec<String>>), "null");
        assert_eq!(enc(&Some(Vec::<String>::new())), "[]");
        assert!(Some(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn omitempty_drops_only_empty_values() {
        let mut s = String::new();
        let mut o = Fields::new(&mut s);
        o.field("a", &String::new(), true).unwrap();
        o.field("b", &String::new(), false).unwrap();
        o.field("c", &false, false).unwrap();
        o.field("d", &0i64, true).unwrap();
        o.field("e", &"<&>".to_string(), true).unwrap();
        o.end();
        assert_eq!(s, r#"{"b":"","c":false,"e":"\u003c\u0026\u003e"}"#);
    }
}
