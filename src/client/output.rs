//! The `--output` option and the destination it names.
//!
//! `--output` uses buildx's syntax: one CSV record (Go `encoding/csv` rules,
//! so `"name=a:1,b:2"` in quotes keeps its comma) of `key=value` fields.
//! `type` picks the exporter, `dest` the destination (`-` is stdout), and
//! every other key is an exporter attribute.
//!
//! The destination it names is [`crate::destination::Destination`].

use std::collections::BTreeMap;

/// A parsed `--output`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputSpec {
    pub exporter: Option<String>,
    pub dest: Option<String>,
    pub attrs: BTreeMap<String, String>,
}

/// Parses `type=oci,dest=out.tar,oci-artifact=true`.
pub fn parse_output(spec: &str) -> Result<OutputSpec, String> {
    let mut out = OutputSpec::default();
    for (n, field) in csv_fields(spec)?.into_iter().enumerate() {
        let hint = "fields are KEY=VALUE, separated by commas, e.g. type=oci,dest=out.tar";
        let Some((key, value)) = field.split_once('=') else {
            return Err(if field.trim().is_empty() {
                format!("--output {spec:?}: field {} is empty; {hint}", n + 1)
            } else {
                format!("--output {spec:?}: field {field:?} has no '='; {hint}")
            });
        };
        if key.trim().is_empty() {
            return Err(format!(
                "--output {spec:?}: field {field:?} has an empty key; {hint}"
            ));
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "type" => out.exporter = Some(value.to_string()),
            "dest" => out.dest = Some(value.to_string()),
            _ => {
                out.attrs.insert(key.to_string(), value.to_string());
            }
        }
    }
    Ok(out)
}

/// Splits one CSV record the way Go's `encoding/csv` reads it: fields may be
/// quoted, a doubled quote inside quotes is a literal quote.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("invalid output {s:?}: unterminated quote")),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "invalid output {s:?}: extraneous {c:?} after a quoted field"
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(format!("invalid output {s:?}: bare quote in a field"))
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_csv() {
        let o = parse_output(r#"type=oci,dest=out.tar,"name=a:1,b:2",oci-artifact=true"#).unwrap();
        assert_eq!(o.exporter.as_deref(), Some("oci"));
        assert_eq!(o.dest.as_deref(), Some("out.tar"));
        assert_eq!(o.attrs["name"], "a:1,b:2");
        assert_eq!(o.attrs["oci-artifact"], "true");
        let o = parse_output(r#""annotation.k=say ""hi""",tar=false"#).unwrap();
        assert_eq!(o.attrs["annotation.k"], r#"say "hi""#);
        assert_eq!(o.attrs["tar"], "false");
        assert_eq!(parse_output("dest=").unwrap().dest.as_deref(), Some(""));
        assert!(parse_output("novalue").is_err());
        assert!(parse_output(r#""open=1"#).is_err());
        assert!(parse_output(r#"a="b""#).is_err());
    }
}
