//! serde's errors as the contract's field errors, by type: the path of the failing value comes
//! from serde_path_to_error, never from a framework's rejection text.
//!
//! The validation codes are those of the normalize layer's table (`required`, `invalid_type`,
//! `invalid_value`, `unknown_field`, `duplicate_field`), so a typed extractor and the text
//! fallback for plain framework extractors give the same error for the same input.

use http::StatusCode;
#[cfg(feature = "axum")]
use serde::de::DeserializeOwned;

#[cfg(feature = "axum")]
use crate::{bulk::ItemError, error::ErrorCode};
use crate::{error::ApiError, error::FieldError, normalize::deserialize_error};

/// The path of a failing value as the contract writes it: `address.city`, `tags[1]`; empty at
/// the value itself (serde_path_to_error writes `.` there).
pub(crate) fn location(path: &serde_path_to_error::Path) -> String {
    if path.iter().next().is_none() {
        String::new()
    } else {
        path.to_string()
    }
}

/// The field error of an error response, or `object`/`invalid_json` for a syntax error.
fn first_field_error(error: ApiError) -> FieldError {
    error
        .validation_errors()
        .first()
        .cloned()
        .unwrap_or_else(|| FieldError::object(error.code().as_str().to_owned()))
}

/// The field error for a value serde_json refused: the field serde names (`missing field
/// `email`` → `email`, `required`) or `object`; a syntax error is `object`/`invalid_json`.
///
/// serde_json's error does not know where in the value it happened; deserialize with
/// serde_path_to_error (see the conversion below) to get the path.
///
/// ```
/// use tower_api_errors::FieldError;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct User { #[allow(dead_code)] email: String }
///
/// let error = serde_json::from_str::<User>("{}").unwrap_err();
/// let field = FieldError::from(&error);
/// assert_eq!((field.field(), field.error()), ("email", "required"));
/// ```
impl From<&serde_json::Error> for FieldError {
    fn from(error: &serde_json::Error) -> Self {
        first_field_error(deserialize_error(StatusCode::BAD_REQUEST, "", error, None))
    }
}

/// The field error for a value serde_json refused, at serde_path_to_error's path.
///
/// ```
/// use tower_api_errors::FieldError;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Address { #[allow(dead_code)] city: String }
/// #[derive(Debug, serde::Deserialize)]
/// struct User { #[allow(dead_code)] address: Address }
///
/// let mut json = serde_json::Deserializer::from_str(r#"{"address": {"city": 7}}"#);
/// let error = serde_path_to_error::deserialize::<_, User>(&mut json).unwrap_err();
/// let field = FieldError::from(&error);
/// assert_eq!((field.field(), field.error()), ("address.city", "invalid_type"));
/// ```
impl From<&serde_path_to_error::Error<serde_json::Error>> for FieldError {
    fn from(error: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        first_field_error(path_error(StatusCode::BAD_REQUEST, error, None))
    }
}

pub(crate) fn path_error(
    status: StatusCode,
    error: &serde_path_to_error::Error<serde_json::Error>,
    query: Option<&str>,
) -> ApiError {
    deserialize_error(status, &location(error.path()), error.inner(), query)
}

#[cfg(feature = "axum")]
/// Deserializes a whole JSON value, failing with the contract's error (`invalid_json`, or
/// `validation_errors` with the serde path of the failing field).
pub(crate) fn from_json<T: DeserializeOwned>(
    status: StatusCode,
    json: &[u8],
) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| path_error(status, &error, None))?;
    deserializer
        .end()
        .map_err(|error| deserialize_error(status, "", &error, None))?;
    Ok(value)
}

#[cfg(feature = "axum")]
/// Deserializes item `index` of a bulk body from its raw JSON: the value, or the item error
/// that fails it alone; an item that is not well-formed JSON fails the whole request
/// (`invalid_json`), as a malformed body does.
pub(crate) fn item<T: DeserializeOwned>(
    index: usize,
    json: &[u8],
) -> Result<Result<T, ItemError>, ApiError> {
    match from_json(StatusCode::BAD_REQUEST, json) {
        Ok(value) => Ok(Ok(value)),
        Err(error) if *error.code() == ErrorCode::ValidationErrors => Ok(Err(
            ItemError::validation(index, error.validation_errors().iter().cloned()),
        )),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Address {
        city: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct User {
        email: String,
        age: Option<u8>,
        address: Option<Address>,
    }

    #[cfg(feature = "axum")]
    fn fails(json: &str) -> (String, String) {
        match item::<User>(3, json.as_bytes()) {
            Ok(Ok(_)) => panic!("{json} deserialized"),
            Ok(Err(error)) => {
                assert_eq!(error.index(), 3);
                let [field] = error.validation_errors() else {
                    panic!("{error:?}")
                };
                (field.field().to_owned(), field.error().to_owned())
            }
            Err(error) => (String::new(), error.code().as_str().to_owned()),
        }
    }

    #[cfg(feature = "axum")]
    #[test]
    fn item_errors_name_the_serde_path_and_a_stable_code() {
        let cases = [
            (r#"{}"#, ("email", "required")),
            (r#"{"email": 1}"#, ("email", "invalid_type")),
            (r#"{"email": "a", "age": 300}"#, ("age", "invalid_value")),
            (r#"{"email": "a", "bogus": 1}"#, ("bogus", "unknown_field")),
            (
                r#"{"email": "a", "address": {}}"#,
                ("address.city", "required"),
            ),
            (
                r#"{"email": "a", "address": {"city": []}}"#,
                ("address.city", "invalid_type"),
            ),
            (r#"[1]"#, ("object", "invalid_type")),
            (
                r#"{"email": "a", "email": "b"}"#,
                ("email", "duplicate_field"),
            ),
        ];
        for (json, (field, code)) in cases {
            assert_eq!(fails(json), (field.to_owned(), code.to_owned()), "{json}");
        }
    }

    #[cfg(feature = "axum")]
    #[test]
    fn malformed_items_are_invalid_json() {
        assert_eq!(
            fails(r#"{"email": "#),
            (String::new(), "invalid_json".to_owned())
        );
        assert_eq!(
            fails(r#"{"email": "a"} x"#),
            (String::new(), "invalid_json".to_owned())
        );
    }

    #[test]
    fn plain_serde_json_errors_convert() {
        let error = serde_json::from_str::<User>(r#"{"email": "a", "bogus": 1}"#).unwrap_err();
        let field = FieldError::from(&error);
        assert_eq!((field.field(), field.error()), ("bogus", "unknown_field"));
        let error = serde_json::from_str::<User>("{").unwrap_err();
        assert_eq!(FieldError::from(&error), FieldError::object("invalid_json"));
    }
}
