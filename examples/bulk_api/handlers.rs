//! The demo's handlers. They return `ApiError`s and let the contract write them: the normalize
//! layer answers each in the request's dialect (bulk, or coded under `/v1/customer`), as
//! problem details when asked, or the gRPC way, exactly as it answers the layers' own errors.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::Value;
use tower_api_errors::{
    auth::Principal,
    axum::BulkJson,
    bulk::{BulkRead, BulkWrite},
    ApiError, ErrorCode, FieldError,
};

use crate::store::{Course, Deleted, Store, Webhook};

pub type AppState = Arc<Store>;

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
    principal: Principal,
    RawQuery(query): RawQuery,
) -> BulkRead<Webhook> {
    let ids = ids_from_query(query.as_deref());
    store.get_webhooks(principal.account_id(), &ids)
}

/// A bulk write: the items of the body (a JSON array, or one object; an empty body has none),
/// applied by `apply` for the key's account, answered with one entry per item. `BulkJson`
/// takes them from what the batch layer found; a body that is not JSON, an item included, is
/// `invalid_json` for the whole request.
fn bulk_write<T>(
    principal: &Principal,
    body: BulkJson<Value>,
    apply: impl FnOnce(&str, &[Value]) -> BulkWrite<T>,
) -> BulkWrite<T> {
    // Every well-formed item is a `Value`, so none fails here; the store checks each item's
    // fields itself, to report all of an item's field errors at once.
    let items: Vec<Value> = body
        .into_iter()
        .map(|item| item.unwrap_or(Value::Null))
        .collect();
    apply(principal.account_id(), &items)
}

pub async fn create_webhooks(
    State(store): State<AppState>,
    principal: Principal,
    body: BulkJson<Value>,
) -> BulkWrite<Webhook> {
    bulk_write(&principal, body, |account, items| {
        store.create_webhooks(account, items)
    })
}

pub async fn update_webhooks(
    State(store): State<AppState>,
    principal: Principal,
    body: BulkJson<Value>,
) -> BulkWrite<Webhook> {
    bulk_write(&principal, body, |account, items| {
        store.update_webhooks(account, items)
    })
}

pub async fn delete_webhooks(
    State(store): State<AppState>,
    principal: Principal,
    body: BulkJson<Value>,
) -> BulkWrite<Deleted> {
    bulk_write(&principal, body, |account, items| {
        store.delete_webhooks(account, items)
    })
}

pub async fn panic_on_purpose() -> Response {
    panic!("the demo's /debug/panic route panics on purpose")
}

#[derive(Serialize)]
pub struct Page {
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
    RawQuery(query): RawQuery,
) -> Result<Json<Page>, ApiError> {
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
        return Err(errors.into_iter().fold(
            ApiError::new(ErrorCode::ModelNotValid),
            ApiError::with_field_error,
        ));
    }
    let (total, items) = store.list_courses(page, page_size);
    Ok(Json(Page {
        page,
        page_size,
        total,
        items,
    }))
}

pub async fn get_course(
    State(store): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Course>, ApiError> {
    let id = id.parse::<u64>().map_err(|_| {
        ApiError::new(ErrorCode::ValueNotValid).with_field_error(
            FieldError::new("id", "not_valid")
                .with_message(format!("id: The value '{id}' is not valid for 'id'.")),
        )
    })?;
    match store.course(id) {
        None => Err(ApiError::new(ErrorCode::RecordNotFound)),
        Some(course) if !course.active => Err(ApiError::new(ErrorCode::RecordNotActive)
            .with_detail(format!("course {id} is not active"))),
        Some(course) => Ok(Json(course)),
    }
}

pub async fn create_course(
    State(store): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorCode::ModelNotProvided));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(ErrorCode::ModelNotValid).with_detail(format!("body: {error}"))
    })?;
    match value.get("title") {
        Some(Value::String(title)) if !title.trim().is_empty() => {
            Ok((StatusCode::CREATED, Json(store.create_course(title.trim()))).into_response())
        }
        Some(_) => Err(ApiError::new(ErrorCode::ModelNotValid).with_field_error(
            FieldError::new("title", "not_valid")
                .with_message("title: The value is not valid for 'title'."),
        )),
        None => Err(ApiError::new(ErrorCode::ModelNotValid).with_field_error(
            FieldError::new("title", "required").with_message("title: A value is required."),
        )),
    }
}
