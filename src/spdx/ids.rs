//! The SPDX value types with their own JSON encodings: element and document
//! ids (`SPDXRef-…`, `DocumentRef-…`), element references, and the
//! `"Type: name"` strings of creators, annotators, suppliers and originators.
//!
//! Their decoders work on the raw JSON text with the quotes trimmed (escapes
//! are not undone), and their encoders can fail; both as in the Go types.

use serde_json::value::RawValue;

use super::decode::{raw_text, Decoded, GoDecode, Invalid};
use super::encode::{EncodeError, Encoded, GoEncode, EMPTY_OUTPUT};
use crate::json;

const SPDX_REF: &str = "SPDXRef-";
const DOCUMENT_REF: &str = "DocumentRef-";

/// The raw text of a value with every leading and trailing `"` removed.
fn trimmed(raw: &RawValue) -> &str {
    raw_text(raw).trim_matches('"')
}

fn prefixed(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) {
        id.to_string()
    } else {
        format!("{prefix}{id}")
    }
}

fn without_prefix(prefix: &str, text: &str) -> Result<String, Invalid> {
    match text.strip_prefix(prefix) {
        Some(rest) if !rest.is_empty() => Ok(rest.to_string()),
        _ => Err(Invalid),
    }
}

/// `SPDXRef-<id>`; holds the id without the prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElementId(pub String);

impl GoDecode for ElementId {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        self.0 = without_prefix(SPDX_REF, trimmed(raw))?;
        Ok(())
    }
}

impl GoEncode for ElementId {
    fn encode(&self, out: &mut String) -> Encoded {
        json::write_string(out, &prefixed(SPDX_REF, &self.0));
        Ok(())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `DocumentRef-<id>`; holds the id without the prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentId(pub String);

impl GoDecode for DocumentId {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        self.0 = without_prefix(DOCUMENT_REF, trimmed(raw))?;
        Ok(())
    }
}

impl GoEncode for DocumentId {
    fn encode(&self, out: &mut String) -> Encoded {
        json::write_string(out, &prefixed(DOCUMENT_REF, &self.0));
        Ok(())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A reference to an element, possibly in another document, or the special
/// values `NONE` and `NOASSERTION`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocElementId {
    pub document: String,
    pub element: String,
    pub special: String,
}

impl DocElementId {
    /// The reference as SPDX writes it (`DocumentRef-a:SPDXRef-b`).
    pub fn render(&self) -> String {
        if !self.special.is_empty() {
            return self.special.clone();
        }
        let mut s = String::new();
        if !self.document.is_empty() {
            s.push_str(DOCUMENT_REF);
            s.push_str(&self.document);
            s.push(':');
        }
        s.push_str(SPDX_REF);
        s.push_str(&self.element);
        s
    }
}

impl GoDecode for DocElementId {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        let mut text = trimmed(raw);
        if text == "NONE" || text == "NOASSERTION" {
            self.special = text.to_string();
            return Ok(());
        }
        if text.starts_with(DOCUMENT_REF) {
            let (doc, rest) = match text.split_once(':') {
                Some((d, r)) => (d, Some(r)),
                None => (text, None),
            };
            self.document = without_prefix(DOCUMENT_REF, doc)?;
            match rest {
                Some(r) => text = r,
                None => return Ok(()),
            }
        }
        self.element = without_prefix(SPDX_REF, text)?;
        Ok(())
    }
}

impl GoEncode for DocElementId {
    fn encode(&self, out: &mut String) -> Encoded {
        let s = if !self.document.is_empty() && !self.element.is_empty() {
            format!(
                "{}:{}",
                prefixed(DOCUMENT_REF, &self.document),
                prefixed(SPDX_REF, &self.element)
            )
        } else if !self.element.is_empty() {
            prefixed(SPDX_REF, &self.element)
        } else if !self.special.is_empty() {
            self.special.clone()
        } else {
            return Err(EncodeError::marshaler(
                "common.DocElementID",
                "failed to marshal empty DocElementID",
            ));
        };
        json::write_string(out, &s);
        Ok(())
    }
    fn is_empty(&self) -> bool {
        false
    }
}

/// Splits `Type: name` at the first colon; the Go types refuse a value
/// without one.
fn split_typed(text: &str) -> Result<(&str, &str), Invalid> {
    text.split_once(':').ok_or(Invalid)
}

/// A `"Type: name"` value: creators and annotators. `go_type` names the Go
/// type in encoding errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typed<const KIND: u8> {
    pub kind: String,
    pub name: String,
}

/// `creationInfo.creators[]` (`common.Creator`).
pub type Creator = Typed<0>;
/// `annotations[].annotator` (`common.Annotator`).
pub type Annotator = Typed<1>;

impl<const KIND: u8> Typed<KIND> {
    const GO_TYPE: &'static str = if KIND == 0 {
        "common.Creator"
    } else {
        "common.Annotator"
    };

    pub fn new(kind: &str, name: &str) -> Self {
        Typed {
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }
}

impl<const KIND: u8> GoDecode for Typed<KIND> {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        let (kind, name) = split_typed(trimmed(raw))?;
        self.kind = kind.trim().to_string();
        self.name = name.trim().to_string();
        Ok(())
    }
}

impl<const KIND: u8> GoEncode for Typed<KIND> {
    fn encode(&self, out: &mut String) -> Encoded {
        if self.name.is_empty() {
            return Err(EncodeError::marshaler(Self::GO_TYPE, EMPTY_OUTPUT));
        }
        json::write_string(out, &format!("{}: {}", self.kind, self.name));
        Ok(())
    }
    fn is_empty(&self) -> bool {
        false
    }
}

/// A package supplier or originator: `NOASSERTION` or `"Type: name"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent<const KIND: u8> {
    pub kind: String,
    pub name: String,
}

/// `packages[].supplier` (`common.Supplier`).
pub type Supplier = Agent<0>;
/// `packages[].originator` (`common.Originator`).
pub type Originator = Agent<1>;

impl<const KIND: u8> GoDecode for Agent<KIND> {
    fn decode(&mut self, raw: &RawValue) -> Decoded {
        let text = trimmed(raw);
        if text == "NOASSERTION" {
            self.name = text.to_string();
            return Ok(());
        }
        let (kind, name) = split_typed(text)?;
        if KIND == 0 {
            self.kind = kind.trim().to_string();
            self.name = name.trim().to_string();
        } else {
            // The originator keeps its type as written and trims only the
            // blanks after the colon.
            self.kind = kind.to_string();
            self.name = name.trim_start_matches([' ', '\t']).to_string();
        }
        Ok(())
    }
}

impl<const KIND: u8> GoEncode for Agent<KIND> {
    fn encode(&self, out: &mut String) -> Encoded {
        if self.name == "NOASSERTION" {
            json::write_string(out, &self.name);
        } else if !self.kind.is_empty() && !self.name.is_empty() {
            json::write_string(out, &format!("{}: {}", self.kind, self.name));
        } else {
            let (go_type, what, field, kind_field) = if KIND == 0 {
                ("*common.Supplier", "Supplier", "Supplier", "SupplierType")
            } else {
                (
                    "*common.Originator",
                    "Originator",
                    "Originator",
                    "OriginatorType",
                )
            };
            return Err(EncodeError::marshaler(
                go_type,
                &format!(
                    "failed to marshal invalid {what}: {{{field}:{} {kind_field}:{}}}",
                    self.name, self.kind
                ),
            ));
        }
        Ok(())
    }
    fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    fn enc<T: GoEncode>(v: &T) -> Result<String, EncodeError> {
        let mut s = String::new();
        v.encode(&mut s).map(|_| s)
    }

    #[test]
    fn element_ids_keep_escapes_as_text() {
        let mut id = ElementId::default();
        id.decode(&raw(r#""SPDXRef-a\u003cb""#)).unwrap();
        assert_eq!(id.0, r"a\u003cb");
        assert_eq!(enc(&id).unwrap(), r#""SPDXRef-a\\u003cb""#);
        assert_eq!(id.decode(&raw(r#""File-1""#)), Err(Invalid));
        assert_eq!(id.decode(&raw(r#""SPDXRef-""#)), Err(Invalid));
        assert_eq!(id.decode(&raw("null")), Err(Invalid));
    }

    #[test]
    fn element_references() {
        let mut r = DocElementId::default();
        r.decode(&raw(r#""DocumentRef-ext:SPDXRef-pkg""#)).unwrap();
        assert_eq!((r.document.as_str(), r.element.as_str()), ("ext", "pkg"));
        assert_eq!(enc(&r).unwrap(), r#""DocumentRef-ext:SPDXRef-pkg""#);
        let mut only_doc = DocElementId::default();
        only_doc.decode(&raw(r#""DocumentRef-ext""#)).unwrap();
        assert_eq!(
            enc(&only_doc).unwrap_err().0,
            "json: error calling MarshalJSON for type common.DocElementID: failed to marshal empty DocElementID"
        );
        let mut none = DocElementId::default();
        none.decode(&raw(r#""NOASSERTION""#)).unwrap();
        assert_eq!(enc(&none).unwrap(), r#""NOASSERTION""#);
    }

    #[test]
    fn creators_split_at_the_first_colon_and_trim() {
        let mut c = Creator::default();
        c.decode(&raw(r#""Tool:  syft-1.0: x ""#)).unwrap();
        assert_eq!(enc(&c).unwrap(), r#""Tool: syft-1.0: x""#);
        assert_eq!(c.decode(&raw(r#""no colon""#)), Err(Invalid));
        c.decode(&raw(r#""Tool:""#)).unwrap();
        assert_eq!(
            enc(&c).unwrap_err().0,
            "json: error calling MarshalJSON for type common.Creator: unexpected end of JSON input"
        );
    }

    #[test]
    fn suppliers_and_originators() {
        let mut s = Supplier::default();
        s.decode(&raw(r#""NOASSERTION""#)).unwrap();
        assert_eq!(enc(&s).unwrap(), r#""NOASSERTION""#);
        let mut o = Originator::default();
        o.decode(&raw(r#""Person :  Jane ""#)).unwrap();
        assert_eq!(enc(&o).unwrap(), r#""Person : Jane ""#);
        s.decode(&raw(r#""Organization:""#)).unwrap();
        assert!(enc(&s).is_err());
    }
}
