//! Export errors as gRPC statuses.
//!
//! The status message is exactly the error's message (BuildKit's text), so a
//! client can match it. When the error names an attribute or a field, the
//! status also carries a `google.rpc.BadRequest` field violation.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ErrorKind, ExportError};

pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Internal => Code::Internal,
    }
}

pub fn to_status(e: &ExportError) -> Status {
    let code = code_of(e.kind);
    match &e.field {
        Some(field) => Status::with_error_details(
            code,
            e.message.clone(),
            ErrorDetails::with_bad_request_violation(field.clone(), e.message.clone()),
        ),
        None => Status::new(code, e.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_verbatim_and_field_is_a_violation() {
        let e = ExportError::invalid(
            "oci-artifact",
            "non-bool value specified for oci-artifact: strconv.ParseBool: parsing \"yes\": invalid syntax",
        );
        let s = to_status(&e);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), e.message);
        let br = s.get_details_bad_request().expect("bad request details");
        assert_eq!(br.field_violations[0].field, "oci-artifact");

        let s = to_status(&ExportError::internal("disk full"));
        assert_eq!(s.code(), Code::Internal);
        assert!(s.get_details_bad_request().is_none());
    }
}
