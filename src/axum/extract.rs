//! Extractors whose rejections are contract errors, typed: nothing here reads a framework's
//! rejection text.

use std::convert::Infallible;

use ::axum::{
    extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, OriginalUri, Request},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{request::Parts, HeaderMap, StatusCode};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    auth::Principal,
    deserialize::{self, location},
    dialect::ErrorFormat,
    error::{ApiError, ErrorCode},
    media::MediaType,
    normalize::data_error_at,
};

/// The caller the auth layer authenticated. A request without one (no auth layer in front of
/// the route) is refused `unauthorized`; extract `Option<Principal>` on routes open to all.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// How the request's errors are answered, for a handler that renders one by hand. The path is
/// the one the client asked for, also inside a nested router.
impl<S: Send + Sync> FromRequestParts<S> for ErrorFormat {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0);
        Ok(ErrorFormat::from_parts(&parts.method, uri, &parts.headers))
    }
}

/// A JSON body (and a JSON response), like `axum::Json`, with the contract's errors:
///
/// | request | error |
/// | --- | --- |
/// | `Content-Type` not `application/json` nor `application/*+json` | `unsupported_media_type` (415) |
/// | not well-formed JSON | `invalid_json` (400) |
/// | well-formed, not a `T` | `validation_errors` (400), the field named by its serde path |
/// | over axum's body limit | `payload_too_large` (413) |
///
/// ```
/// use serde::Deserialize;
/// use tower_api_errors::{axum::Json, ApiError};
///
/// #[derive(Deserialize, serde::Serialize)]
/// struct Webhook { url: String }
///
/// async fn create(Json(hook): Json<Webhook>) -> Result<Json<Webhook>, ApiError> {
///     Ok(Json(hook))
/// }
/// let _ = axum::Router::<()>::new().route("/v1/webhooks", axum::routing::post(create));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        let body = body_bytes(request, state).await?;
        deserialize::from_json(StatusCode::BAD_REQUEST, &body).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        super::response::json(&self.0)
    }
}

/// A query string, like `axum::extract::Query`, refused as `validation_errors` (400) with the
/// parameter named, and the refused value quoted in the coded dialect when it is short and
/// printable: `page_size: The value 'X' is not valid for 'page_size'.`
///
/// ```
/// use serde::Deserialize;
/// use tower_api_errors::{axum::Query, ApiError};
///
/// #[derive(Deserialize)]
/// struct Page { page: u32, page_size: u32 }
///
/// async fn courses(Query(page): Query<Page>) -> Result<String, ApiError> {
///     Ok(format!("page {} of {}", page.page, page.page_size))
/// }
/// let _ = axum::Router::<()>::new().route("/v1/customer/courses", axum::routing::get(courses));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                data_error_at(
                    StatusCode::BAD_REQUEST,
                    &location(error.path()),
                    &error.inner().to_string(),
                    Some(query),
                )
            })
    }
}

/// `unsupported_media_type` unless the body is declared JSON (`application/json`,
/// `application/*+json`, parameters ignored).
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if MediaType::of(headers) == MediaType::Json {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::UnsupportedMediaType))
    }
}

/// The whole body; a rejection keeps only its status (413 over axum's body limit, 400 for a
/// body that could not be read), never its text.
pub(super) async fn body_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| ApiError::from_status(rejection.status()))
}
