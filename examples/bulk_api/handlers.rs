//! The demo's handlers. Whole-request errors are rendered with the request's `ErrorFormat`,
//! so a handler answers in the same dialect (and the same gRPC / problem-details rule) as the
//! layers around it.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{FromRequestParts, Path, RawQuery, State},
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde::Serialize;
use serde_json::Value;
use tower_api_errors::{
    auth::Principal,
    bulk::BulkWrite,
    dialect::{Bulk, Coded},
    ApiError, ErrorCode, ErrorFormat, FieldError,
};

use crate::store::{Course, Store};

pub type AppState = Arc<Store>;

/// How this request wants its errors written (captured from the request head).
pub struct Format(ErrorFormat);

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Format(ErrorFormat::for_parts(parts)))
    }
}

impl Format {
    fn bulk(&self, error: ApiError) -> Response {
        self.0.render(&Bulk, &error).into_response()
    }

    fn coded(&self, error: ApiError) -> Response {
        self.0.render(&Coded::new(), &error).into_response()
    }
}

/// `ids=web_1,web_2&ids=web_3`: comma-separated and repeated values both count.
pub fn ids_from_query(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "ids")
        .flat_map(|(_, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

pub async fn get_webhooks(
    State(store): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(query): RawQuery,
) -> Response {
    let ids = ids_from_query(query.as_deref());
    Json(store.get_webhooks(principal.account_id(), &ids)).into_response()
}

/// The items of a bulk body: a JSON array, or one object; an empty body has none. The batch
/// layer has refused too many items and what its counter sees as malformed, but it does not
/// validate everything a parser does (invalid UTF-8 inside a string, say): such a body is
/// `invalid_json` here, never an empty success.
fn items(body: &Bytes) -> Option<Vec<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new());
    }
    match serde_json::from_slice(body).ok()? {
        Value::Array(items) => Some(items),
        single => Some(vec![single]),
    }
}

/// A bulk write: the items of the body, applied by `apply` for the key's account, answered
/// with one entry per item.
fn bulk_write<T: Serialize>(
    principal: &Principal,
    format: &Format,
    body: &Bytes,
    apply: impl FnOnce(&str, &[Value]) -> BulkWrite<T>,
) -> Response {
    match items(body) {
        Some(items) => Json(apply(principal.account_id(), &items)).into_response(),
        None => format.bulk(ApiError::new(ErrorCode::InvalidJson)),
    }
}

pub async fn create_webhooks(
    State(store): State<AppState>,
    Extension(principal): Extension<Principal>,
    format: Format,
    body: Bytes,
) -> Response {
    bulk_write(&principal, &format, &body, |account, items| {
        store.create_webhooks(account, items)
    })
}

pub async fn update_webhooks(
    State(store): State<AppState>,
    Extension(principal): Extension<Principal>,
    format: Format,
    body: Bytes,
) -> Response {
    bulk_write(&principal, &format, &body, |account, items| {
        store.update_webhooks(account, items)
    })
}

pub async fn delete_webhooks(
    State(store): State<AppState>,
    Extension(principal): Extension<Principal>,
    format: Format,
    body: Bytes,
) -> Response {
    bulk_write(&principal, &format, &body, |account, items| {
        store.delete_webhooks(account, items)
    })
}

pub async fn panic_on_purpose() -> Response {
    panic!("the demo's /debug/panic route panics on purpose")
}

#[derive(Serialize)]
struct Page {
    page: usize,
    page_size: usize,
    total: usize,
    items: Vec<Course>,
}

/// The seed's rule: a value that is not a positive integer is `Model not valid`, naming the
/// parameter and the value.
fn positive(name: &'static str, value: &str) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(number) if number > 0 => Ok(number),
        _ => Err(ApiError::new(ErrorCode::ModelNotValid).with_field_error(
            FieldError::new(name, "not_valid").with_message(format!(
                "{name}: The value '{value}' is not valid for '{name}'."
            )),
        )),
    }
}

pub async fn list_courses(
    State(store): State<AppState>,
    format: Format,
    RawQuery(query): RawQuery,
) -> Response {
    let mut page = 1;
    let mut page_size = 10;
    let mut errors = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let (slot, name) = match &*name {
            "page" => (&mut page, "page"),
            "page_size" => (&mut page_size, "page_size"),
            _ => continue,
        };
        match positive(name, &value) {
            Ok(number) => *slot = number,
            Err(error) => errors.extend(error.validation_errors().iter().cloned()),
        }
    }
    if !errors.is_empty() {
        let error = errors.into_iter().fold(
            ApiError::new(ErrorCode::ModelNotValid),
            ApiError::with_field_error,
        );
        return format.coded(error);
    }
    let (total, items) = store.list_courses(page, page_size);
    Json(Page {
        page,
        page_size,
        total,
        items,
    })
    .into_response()
}

pub async fn get_course(
    State(store): State<AppState>,
    format: Format,
    Path(id): Path<String>,
) -> Response {
    let id = match id.parse::<u64>() {
        Ok(id) => id,
        Err(_) => {
            return format.coded(
                ApiError::new(ErrorCode::ValueNotValid).with_field_error(
                    FieldError::new("id", "not_valid")
                        .with_message(format!("id: The value '{id}' is not valid for 'id'.")),
                ),
            )
        }
    };
    match store.course(id) {
        None => format.coded(ApiError::new(ErrorCode::RecordNotFound)),
        Some(course) if !course.active => format.coded(
            ApiError::new(ErrorCode::RecordNotActive)
                .with_detail(format!("course {id} is not active")),
        ),
        Some(course) => Json(course).into_response(),
    }
}

pub async fn create_course(State(store): State<AppState>, format: Format, body: Bytes) -> Response {
    if body.iter().all(u8::is_ascii_whitespace) {
        return format.coded(ApiError::new(ErrorCode::ModelNotProvided));
    }
    let invalid = |detail: String| ApiError::new(ErrorCode::ModelNotValid).with_detail(detail);
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => return format.coded(invalid(format!("body: {error}"))),
    };
    match value.get("title") {
        Some(Value::String(title)) if !title.trim().is_empty() => {
            (StatusCode::CREATED, Json(store.create_course(title.trim()))).into_response()
        }
        Some(_) => format.coded(
            ApiError::new(ErrorCode::ModelNotValid).with_field_error(
                FieldError::new("title", "not_valid")
                    .with_message("title: The value is not valid for 'title'."),
            ),
        ),
        None => format.coded(ApiError::new(ErrorCode::ModelNotValid).with_field_error(
            FieldError::new("title", "required").with_message("title: A value is required."),
        )),
    }
}
