//! A typed bulk body: each item deserialized on its own, a failing one already an item error.

use std::{fmt, ops::Range, vec};

use ::axum::extract::{FromRequest, Request};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::extract::{body_bytes, require_json};
use crate::{
    batch_limit::BulkItems,
    bulk::ItemError,
    deserialize,
    error::{ApiError, ErrorCode, FieldError},
};

/// The items of a bulk JSON body, each a `T` or the [`ItemError`] that fails it alone.
///
/// Each item is deserialized from the span the batch limit layer found ([`BulkItems`] in the
/// request extensions), so the body is not parsed a second time; without that layer the
/// extractor reads and splits the body itself, with the same outcome. A failing item is an
/// item error with its `_idx` and one field error: `field` is the serde path below the item
/// (`email`, `address.city`; `object` for the item as a whole) and `error` a stable code
/// (`required`, `unknown_field`, `invalid_type`, `invalid_value`, `duplicate_field`).
///
/// A single JSON value where an array is expected is one item (see
/// [`BulkJsonConfig::single_value`] to refuse it on a route); an empty body is no item. The
/// whole request fails, as an [`ApiError`], when the body is not JSON (`unsupported_media_type`),
/// is not well-formed JSON, an item included (`invalid_json`), or is over axum's body limit
/// (`payload_too_large`). Whether a body is JSON is the batch layer's call where it ran (its
/// [`OtherBodies`](crate::batch_limit::OtherBodies) rule: by default, a body it counted as JSON
/// is JSON, whatever its label, and a gRPC body never is); without it, the body must be
/// declared `application/json` or `application/*+json`, as for [`Json`](super::Json).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use tower_api_errors::{axum::BulkJson, bulk::BulkWrite};
///
/// #[derive(Deserialize, Serialize)]
/// struct Webhook { url: String }
///
/// async fn create(webhooks: BulkJson<Webhook>) -> BulkWrite<Webhook> {
///     let mut results = BulkWrite::with_capacity(webhooks.len());
///     for item in webhooks {
///         match item {
///             Ok(hook) => results.push_ok(hook),
///             Err(error) => results.push_item_error(error),
///         };
///     }
///     results
/// }
/// let _ = axum::Router::<()>::new().route("/v1/webhooks", axum::routing::post(create));
/// ```
pub struct BulkJson<T> {
    items: Vec<Result<T, ItemError>>,
    single: bool,
}

impl<T> BulkJson<T> {
    /// How many items the body held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the body held no item (`[]`).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the body was a single value rather than an array.
    pub fn is_single(&self) -> bool {
        self.single
    }

    /// The items, in request order.
    pub fn items(&self) -> &[Result<T, ItemError>] {
        &self.items
    }

    /// The items, in request order.
    pub fn into_items(self) -> Vec<Result<T, ItemError>> {
        self.items
    }
}

impl<T> IntoIterator for BulkJson<T> {
    type Item = Result<T, ItemError>;
    type IntoIter = vec::IntoIter<Result<T, ItemError>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for BulkJson<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkJson")
            .field("items", &self.items)
            .field("single", &self.single)
            .finish()
    }
}

/// How [`BulkJson`] reads the bodies of a route, set as a request extension (for instance with
/// `Router::route_layer(axum::Extension(config))`); without one, the defaults.
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use tower_api_errors::axum::{BulkJson, BulkJsonConfig};
///
/// async fn replace(items: BulkJson<serde_json::Value>) -> String {
///     items.len().to_string()
/// }
/// // This route takes arrays only: a single object is refused as the wrong type.
/// let _ = Router::<()>::new()
///     .route("/v1/webhooks/replace", post(replace))
///     .route_layer(Extension(BulkJsonConfig::new().single_value(false)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkJsonConfig {
    single_value: bool,
}

impl Default for BulkJsonConfig {
    fn default() -> Self {
        BulkJsonConfig { single_value: true }
    }
}

impl BulkJsonConfig {
    /// The defaults: a single value is one item.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a body that is a single value (not an array) is taken as one item (the
    /// default), or refused as `validation_errors` with `{"field": "object", "error":
    /// "invalid_type"}` (400).
    #[must_use]
    pub fn single_value(mut self, accept: bool) -> Self {
        self.single_value = accept;
        self
    }
}

impl<T, S> FromRequest<S> for BulkJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let config = request
            .extensions()
            .get::<BulkJsonConfig>()
            .copied()
            .unwrap_or_default();
        let found = request.extensions().get::<BulkItems>().cloned();
        let (body, spans) = match found {
            Some(items) => {
                // The batch layer counted the body as JSON under its own media-type rule
                // (`OtherBodies`), the one the stack is configured with; only a gRPC body's
                // items are protobuf.
                if crate::grpc::is_grpc(request.headers()) {
                    return Err(ApiError::new(ErrorCode::UnsupportedMediaType));
                }
                let spans = items.spans().to_vec();
                (items.body().clone(), spans)
            }
            None => {
                let json = require_json(request.headers());
                let body = body_bytes(request, state).await?;
                // No body is no item, as for the batch limit layer, whatever its label.
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(BulkJson {
                        items: Vec::new(),
                        single: false,
                    });
                }
                json?;
                let spans = split(&body)?;
                (body, spans)
            }
        };
        let single = is_single(&body, &spans);
        if single && !config.single_value {
            return Err(ApiError::new(ErrorCode::ValidationErrors)
                .with_field_error(FieldError::object("invalid_type")));
        }
        let items = spans
            .into_iter()
            .enumerate()
            .map(|(index, span)| deserialize::item(index, &body[span]))
            .collect::<Result<_, _>>()?;
        Ok(BulkJson { items, single })
    }
}

/// One span covering the whole (trimmed) body: a single value, not an array, whose elements
/// always lie strictly inside its brackets.
fn is_single(body: &[u8], spans: &[Range<usize>]) -> bool {
    match spans {
        [span] => {
            let blank = |bytes: &[u8]| bytes.iter().all(u8::is_ascii_whitespace);
            blank(&body[..span.start]) && blank(&body[span.end..])
        }
        _ => false,
    }
}

/// The item spans of a body no batch layer has read: the elements of a top-level array, or
/// the whole value. A body that is not well-formed JSON fails the request.
fn split(body: &[u8]) -> Result<Vec<Range<usize>>, ApiError> {
    let invalid = |error: serde_json::Error| {
        crate::normalize::deserialize_error(StatusCode::BAD_REQUEST, "", &error, None)
    };
    let start = body.as_ptr() as usize;
    let span = |raw: &RawValue| {
        let at = raw.get().as_ptr() as usize - start;
        at..at + raw.get().len()
    };
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(invalid)?;
        Ok(items.into_iter().map(span).collect())
    } else {
        let item: &RawValue = serde_json::from_slice(body).map_err(invalid)?;
        Ok(vec![span(item)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_split_like_the_batch_layer_counts_them() {
        let body = br#" [ {"a": 1} , 2 ,"x"] "#;
        let spans = split(body).unwrap();
        let items: Vec<&[u8]> = spans.iter().map(|span| &body[span.clone()]).collect();
        assert_eq!(items, [&br#"{"a": 1}"#[..], b"2", br#""x""#]);
        assert!(!is_single(body, &spans));

        let body = b" {\"a\": [1]}\n";
        let spans = split(body).unwrap();
        assert_eq!(&body[spans[0].clone()], br#"{"a": [1]}"#);
        assert!(is_single(body, &spans));

        assert!(!is_single(b"[[1]]", &split(b"[[1]]").unwrap()));
        assert!(split(b"[{},").is_err());
        assert!(split(b"{} {}").is_err());
    }
}
