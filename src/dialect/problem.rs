use std::borrow::Cow;

use http::{HeaderMap, Response};
use serde::Serialize;

use super::{has_content_type, json_response, Dialect, ErrorFormat};
use crate::{
    body::ErrorBody,
    error::{ApiError, FieldError},
};

/// RFC 9457 problem details, `application/problem+json`.
///
/// `type` is `about:blank` (so `title` is the status's reason phrase) unless a base URI is set
/// with [`ProblemDetails::with_type_base`], in which case it is the base followed by the code.
/// The contract code is the extension member `code`; `_idx` and `validation_errors` are
/// extension members too when present; the error's details, joined with `"; "`, are `detail`.
///
/// ```
/// use tower_api_errors::{dialect::{ErrorFormat, ProblemDetails}, ApiError};
///
/// let response = ErrorFormat::http().render(&ProblemDetails::new(), &ApiError::too_many_items());
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// let body: serde_json::Value = serde_json::from_slice(response.body().as_bytes()).unwrap();
/// assert_eq!(body, serde_json::json!({
///     "type": "about:blank", "title": "Bad Request", "status": 400, "code": "too_many_items"
/// }));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProblemDetails {
    type_base: Option<Cow<'static, str>>,
}

impl ProblemDetails {
    /// Problem details with `type: about:blank`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Problem types become `base` followed by the code, e.g.
    /// `https://api.example.com/errors/too_many_items`.
    #[must_use]
    pub fn with_type_base(mut self, base: impl Into<Cow<'static, str>>) -> Self {
        self.type_base = Some(base.into());
        self
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: Cow<'a, str>,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    code: &'a str,
    #[serde(rename = "_idx", skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    validation_errors: &'a [FieldError],
}

impl Dialect for ProblemDetails {
    fn render(&self, error: &ApiError, _format: &ErrorFormat) -> Response<ErrorBody> {
        let problem_type = match &self.type_base {
            Some(base) => Cow::Owned(format!("{base}{}", error.code())),
            None => Cow::Borrowed("about:blank"),
        };
        let details: Vec<String> = error
            .validation_errors()
            .iter()
            .filter_map(|field| field.message().map(str::to_owned))
            .chain(error.details().iter().cloned())
            .collect();
        let problem = Problem {
            problem_type,
            title: error.status().canonical_reason().unwrap_or("Error"),
            status: error.status().as_u16(),
            detail: (!details.is_empty()).then(|| details.join("; ")),
            code: error.code().as_str(),
            index: error.index(),
            validation_errors: error.validation_errors(),
        };
        let body = serde_json::to_vec(&problem).expect("a problem always serializes");
        json_response(
            error.status(),
            "application/problem+json",
            ErrorBody::new(body),
        )
    }

    fn recognizes(&self, headers: &HeaderMap, _body: &[u8], _format: &ErrorFormat) -> bool {
        has_content_type(headers, "application/problem+json")
    }
}
