//! Typed builders for the bulk API's responses.
//!
//! A bulk write (POST/PUT/DELETE) answers with one entry per request object, in request order:
//! the success object, or an [`ItemError`] naming the item's index (`_idx`). A bulk read (GET)
//! answers with the objects found in `data` and one [`GetError`] per failed id in `error`.
//! Item errors fail one item only; errors that fail the whole request are [`ApiError`]s.
//!
//! ```
//! use serde::Serialize;
//! use tower_api_errors::{bulk::{BulkRead, BulkWrite, GetError}, ErrorCode, FieldError};
//!
//! #[derive(Serialize)]
//! struct Webhook { id: &'static str, url: &'static str }
//!
//! let mut results = BulkWrite::with_capacity(3);
//! results.push_ok(Webhook { id: "web_1", url: "https://example.com/hook" });
//! results.push_error(ErrorCode::ObjectNotFound);
//! results.push_validation_errors([FieldError::new("email", "must_be_unique")]);
//! assert_eq!(
//!     serde_json::to_value(&results).unwrap(),
//!     serde_json::json!([
//!         {"id": "web_1", "url": "https://example.com/hook"},
//!         {"error": "object_not_found", "_idx": 1},
//!         {"error": "validation_errors", "_idx": 2,
//!          "validation_errors": [{"field": "email", "error": "must_be_unique"}]}
//!     ])
//! );
//!
//! let mut read = BulkRead::<Webhook>::new();
//! read.push_error(GetError::object_not_found("acct_123", "web_123"));
//! assert_eq!(
//!     serde_json::to_value(&read).unwrap(),
//!     serde_json::json!({"data": [], "error": [
//!         {"error": "object_not_found", "account_id": "acct_123", "id": "web_123"}
//!     ]})
//! );
//! ```

use serde::{ser::SerializeMap, Serialize, Serializer};

use crate::error::{ApiError, ErrorCode, FieldError};

/// An item error of a bulk write: `{"error": "<code>", "_idx": <index>}`, with
/// `validation_errors` when the code is `validation_errors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    code: ErrorCode,
    index: usize,
    validation_errors: Vec<FieldError>,
}

impl ItemError {
    /// Item `index` failed with `code`.
    pub fn new(code: ErrorCode, index: usize) -> Self {
        ItemError {
            code,
            index,
            validation_errors: Vec::new(),
        }
    }

    /// Item `index` failed validation.
    pub fn validation(index: usize, errors: impl IntoIterator<Item = FieldError>) -> Self {
        ItemError {
            code: ErrorCode::ValidationErrors,
            index,
            validation_errors: errors.into_iter().collect(),
        }
    }

    /// The code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The index of the item in the request array.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The field-level failures (empty unless the code is `validation_errors`).
    pub fn validation_errors(&self) -> &[FieldError] {
        &self.validation_errors
    }
}

impl Serialize for ItemError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("error", &self.code)?;
        map.serialize_entry("_idx", &self.index)?;
        if self.code == ErrorCode::ValidationErrors {
            map.serialize_entry("validation_errors", &self.validation_errors)?;
        }
        map.end()
    }
}

/// One entry of a bulk write's response: the success object or an item error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemResult<T> {
    /// The item succeeded; its object.
    Ok(T),
    /// The item failed.
    Err(ItemError),
}

impl<T: Serialize> Serialize for ItemResult<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ItemResult::Ok(value) => value.serialize(serializer),
            ItemResult::Err(error) => error.serialize(serializer),
        }
    }
}

/// The response of a bulk write: one entry per request object, in request order.
///
/// Entries are pushed in request order, so an error's `_idx` is its position: the builder
/// fills it in and it cannot disagree with the array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkWrite<T> {
    results: Vec<ItemResult<T>>,
}

impl<T> Default for BulkWrite<T> {
    fn default() -> Self {
        BulkWrite {
            results: Vec::new(),
        }
    }
}

impl<T> BulkWrite<T> {
    /// An empty response.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty response with room for `items` entries.
    pub fn with_capacity(items: usize) -> Self {
        BulkWrite {
            results: Vec::with_capacity(items),
        }
    }

    /// The next item succeeded with `value`.
    pub fn push_ok(&mut self, value: T) -> &mut Self {
        self.results.push(ItemResult::Ok(value));
        self
    }

    /// The next item failed with `code`.
    pub fn push_error(&mut self, code: ErrorCode) -> &mut Self {
        let index = self.results.len();
        self.results
            .push(ItemResult::Err(ItemError::new(code, index)));
        self
    }

    /// The next item failed validation.
    pub fn push_validation_errors(
        &mut self,
        errors: impl IntoIterator<Item = FieldError>,
    ) -> &mut Self {
        let index = self.results.len();
        self.results
            .push(ItemResult::Err(ItemError::validation(index, errors)));
        self
    }

    /// The next item's outcome: its object, or the item error for a handler's `ApiError` (its
    /// code and field errors; the `_idx` is the item's position, whatever the error said).
    ///
    /// ```
    /// use tower_api_errors::{bulk::BulkWrite, ApiError, ErrorCode};
    ///
    /// let mut results = BulkWrite::new();
    /// results.push_result(Ok("web_1"));
    /// results.push_result(Err(ApiError::new(ErrorCode::ObjectNotFound)));
    /// assert_eq!(
    ///     serde_json::to_value(&results).unwrap(),
    ///     serde_json::json!(["web_1", {"error": "object_not_found", "_idx": 1}])
    /// );
    /// ```
    pub fn push_result(&mut self, result: Result<T, ApiError>) -> &mut Self {
        match result {
            Ok(value) => self.push_ok(value),
            Err(error) => {
                let index = self.results.len();
                self.results.push(ItemResult::Err(ItemError {
                    code: error.code().clone(),
                    index,
                    validation_errors: error.validation_errors().to_vec(),
                }));
                self
            }
        }
    }

    /// The next item failed with `error`, e.g. an item the typed bulk body (feature `axum`)
    /// could not deserialize; the `_idx` is the item's position.
    pub fn push_item_error(&mut self, error: ItemError) -> &mut Self {
        let index = self.results.len();
        self.results
            .push(ItemResult::Err(ItemError { index, ..error }));
        self
    }

    /// The entries so far.
    pub fn results(&self) -> &[ItemResult<T>] {
        &self.results
    }

    /// Whether every entry is a success.
    pub fn all_ok(&self) -> bool {
        self.results
            .iter()
            .all(|result| matches!(result, ItemResult::Ok(_)))
    }

    /// The entries.
    pub fn into_results(self) -> Vec<ItemResult<T>> {
        self.results
    }
}

impl<T: Serialize> Serialize for BulkWrite<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.results.serialize(serializer)
    }
}

/// An error of a bulk read: `{"error": "<code>", "account_id": "…", "id": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GetError {
    error: ErrorCode,
    account_id: String,
    id: String,
}

impl GetError {
    /// Id `id` of account `account_id` failed with `code`.
    pub fn new(code: ErrorCode, account_id: impl Into<String>, id: impl Into<String>) -> Self {
        GetError {
            error: code,
            account_id: account_id.into(),
            id: id.into(),
        }
    }

    /// `object_not_found` for `id`.
    pub fn object_not_found(account_id: impl Into<String>, id: impl Into<String>) -> Self {
        GetError::new(ErrorCode::ObjectNotFound, account_id, id)
    }

    /// The code.
    pub fn code(&self) -> &ErrorCode {
        &self.error
    }

    /// The account the id was looked up in.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The id that failed.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The response of a bulk read: `{"data": [...], "error": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BulkRead<T> {
    data: Vec<T>,
    error: Vec<GetError>,
}

impl<T> Default for BulkRead<T> {
    fn default() -> Self {
        BulkRead {
            data: Vec::new(),
            error: Vec::new(),
        }
    }
}

impl<T> BulkRead<T> {
    /// An empty response.
    pub fn new() -> Self {
        Self::default()
    }

    /// An object was found.
    pub fn push_found(&mut self, value: T) -> &mut Self {
        self.data.push(value);
        self
    }

    /// An id failed.
    pub fn push_error(&mut self, error: GetError) -> &mut Self {
        self.error.push(error);
        self
    }

    /// The objects found.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The ids that failed.
    pub fn errors(&self) -> &[GetError] {
        &self.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_item_errors_serialize_exactly() {
        assert_eq!(
            serde_json::to_value(GetError::object_not_found("acct_123", "web_123")).unwrap(),
            json!({"error":"object_not_found","account_id":"acct_123","id":"web_123"})
        );
        assert_eq!(
            serde_json::to_value(ItemError::new(ErrorCode::ObjectNotFound, 1)).unwrap(),
            json!({"error":"object_not_found","_idx":1})
        );
        assert_eq!(
            serde_json::to_value(ItemError::validation(
                2,
                [FieldError::new("email", "must_be_unique")]
            ))
            .unwrap(),
            json!({"error":"validation_errors","_idx":2,"validation_errors":[{"field":"email","error":"must_be_unique"}]})
        );
    }

    #[test]
    fn write_indexes_follow_request_order() {
        let mut write = BulkWrite::new();
        write
            .push_ok(json!({"id": "web_1"}))
            .push_error(ErrorCode::ObjectNotFound)
            .push_validation_errors([FieldError::object("must_be_object")]);
        assert!(!write.all_ok());
        assert_eq!(
            serde_json::to_value(&write).unwrap(),
            json!([{"id": "web_1"}, {"error":"object_not_found","_idx":1},
                {"error":"validation_errors","_idx":2,"validation_errors":[{"field":"object","error":"must_be_object"}]}])
        );
    }
}
