//! tonic integration (feature `tonic`): a handler's [`ApiError`] is a [`tonic::Status`].
//!
//! - `From<ApiError> for Status`: the contract's gRPC status, the contract code as the message
//!   (`too_many_items`), and the standard rich error details, written with tonic's own
//!   `tonic-types`: a `google.rpc.ErrorInfo` whose reason is the code (and whose metadata holds
//!   `_idx` when the error names an item), and a `google.rpc.BadRequest` with one field
//!   violation per field error (`field` the attribute, `reason` the validation code,
//!   `description` the message or the code). Any client that reads rich errors
//!   (`tonic_types::StatusExt`) sees them; the layers' own gRPC answers carry the same bytes
//!   ([`crate::grpc::status_details`]).
//! - [`RequestExt::principal`]: the caller the auth layer authenticated.
//!
//! ```
//! use tonic::Status;
//! use tonic_types::StatusExt;
//! use tower_api_errors::{ApiError, ErrorCode, FieldError};
//!
//! fn create(email: &str) -> Result<(), ApiError> {
//!     if email.is_empty() {
//!         return Err(ApiError::new(ErrorCode::ValidationErrors)
//!             .with_field_error(FieldError::new("email", "required")));
//!     }
//!     Ok(())
//! }
//!
//! let status = Status::from(create("").unwrap_err());
//! assert_eq!(status.code(), tonic::Code::InvalidArgument);
//! assert_eq!(status.message(), "validation_errors");
//! let bad_request = status.get_details_bad_request().unwrap();
//! assert_eq!(bad_request.field_violations[0].field, "email");
//! assert_eq!(bad_request.field_violations[0].reason, "required");
//! assert_eq!(status.get_details_error_info().unwrap().reason, "validation_errors");
//! ```

use std::collections::HashMap;

use ::tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::{auth::Principal, error::ApiError};

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = Code::from_i32(i32::from(error.grpc_status().code()));
        let name = error.code().as_str().to_owned();
        let metadata: HashMap<String, String> = error
            .index()
            .map(|index| ("_idx".to_owned(), index.to_string()))
            .into_iter()
            .collect();
        let mut details = ErrorDetails::with_error_info(name.clone(), "", metadata);
        if !error.validation_errors().is_empty() {
            let violations: Vec<FieldViolation> = error
                .validation_errors()
                .iter()
                .map(|field| {
                    let mut violation = FieldViolation::new(
                        field.field(),
                        field.message().unwrap_or(field.error()),
                    );
                    violation.reason = field.error().to_owned();
                    violation
                })
                .collect();
            details.set_bad_request(violations);
        }
        Status::with_error_details(code, name, details)
    }
}

/// The caller of a tonic method, as the auth layer found it.
///
/// ```
/// use tower_api_errors::{auth::Principal, tonic::RequestExt};
///
/// let mut request = tonic::Request::new(());
/// assert!(request.principal().is_none());
/// request.extensions_mut().insert(Principal::new("acct_123"));
/// assert_eq!(request.principal().unwrap().account_id(), "acct_123");
/// ```
pub trait RequestExt {
    /// The authenticated caller; `None` when no auth layer is in front of the service.
    fn principal(&self) -> Option<&Principal>;
}

impl<T> RequestExt for ::tonic::Request<T> {
    fn principal(&self) -> Option<&Principal> {
        self.extensions().get::<Principal>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{grpc, ErrorCode, FieldError};

    /// The core writes the details by hand; they must be the bytes tonic-types writes.
    #[test]
    fn the_cores_details_are_tonic_types_details() {
        let errors = [
            ApiError::too_many_items(),
            ApiError::server_error(),
            ApiError::new(ErrorCode::ObjectNotFound).with_index(3),
            ApiError::new(ErrorCode::ValidationErrors)
                .with_index(1)
                .with_field_error(FieldError::new("email", "required"))
                .with_field_error(
                    FieldError::new("address.city", "invalid_type")
                        .with_message("address.city: The value has the wrong type."),
                ),
            ApiError::new(ErrorCode::custom("caf\u{e9}", http::StatusCode::CONFLICT)),
        ];
        for error in errors {
            let status = Status::from(error.clone());
            assert_eq!(status.details(), grpc::status_details(&error), "{error:?}");
            assert_eq!(status.message(), error.code().as_str());
            assert_eq!(status.code() as i32, i32::from(error.grpc_status().code()));
        }
    }
}
