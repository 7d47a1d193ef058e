//! Parsing the digests a request names.
//!
//! Why a module of its own: the wire, `case.json` and the content store all
//! check request digests the same way and name the field on failure; none of
//! them should need another to do it.

use crate::error::{ExportError, Result};

/// Checks that `digest` is `sha256:` followed by 64 lowercase hex digits and
/// returns the hex part. Errors name `field`.
pub fn parse_digest<'a>(field: &str, digest: &'a str) -> Result<&'a str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        ExportError::invalid(
            field,
            format!("invalid digest {digest:?}: want sha256:<64 lowercase hex digits>"),
        )
    })?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(ExportError::invalid(
            field,
            format!("invalid digest {digest:?}: want sha256:<64 lowercase hex digits>"),
        ));
    }
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::oci::digest_of;

    #[test]
    fn parse_digest_names_the_field() {
        let good = digest_of(b"x");
        assert!(parse_digest("d", &good).is_ok());
        for bad in [
            "sha256:ABC",
            "sha512:00",
            &good.to_uppercase(),
            &good[..70],
            "",
        ] {
            let err = parse_digest("refs[\"\"][0].digest", bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
            assert_eq!(err.field.as_deref(), Some("refs[\"\"][0].digest"));
        }
    }
}
