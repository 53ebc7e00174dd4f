use std::{fmt, sync::Arc};

use http::{HeaderMap, Response};

use super::{Dialect, ErrorFormat};
use crate::{body::ErrorBody, error::ApiError, path_prefix};

type SharedDialect = Arc<dyn Dialect + Send + Sync>;

/// Picks a dialect by path prefix: one stack, several route groups.
///
/// The longest matching prefix wins; a prefix matches whole path segments only (`/v1/customer`
/// matches `/v1/customer` and `/v1/customer/courses`, not `/v1/customers`). Requests under no
/// prefix, and errors whose path is unknown, get the default dialect.
///
/// ```
/// use tower_api_errors::{dialect::{Bulk, Coded, DialectByPath, ErrorFormat}, ApiError};
///
/// let dialect = DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new());
/// let request = http::Request::get("/v1/customer/courses").body(()).unwrap();
/// let response = ErrorFormat::for_request(&request).render(&dialect, &ApiError::forbidden());
/// assert_eq!(response.body().as_bytes(), br#"{"code":3,"message":"Not authorized","errors":[]}"#);
///
/// let request = http::Request::get("/v1/webhooks").body(()).unwrap();
/// let response = ErrorFormat::for_request(&request).render(&dialect, &ApiError::forbidden());
/// assert_eq!(response.body().as_bytes(), br#"{"error":"forbidden"}"#);
/// ```
#[derive(Clone)]
pub struct DialectByPath {
    default: SharedDialect,
    prefixes: Arc<[(String, SharedDialect)]>,
}

impl DialectByPath {
    /// Every path gets `default` until a prefix is added.
    pub fn new<D>(default: D) -> Self
    where
        D: Dialect + Send + Sync + 'static,
    {
        DialectByPath {
            default: Arc::new(default),
            prefixes: Arc::new([]),
        }
    }

    /// Paths under `prefix` get `dialect`. A trailing `/` on the prefix is ignored.
    #[must_use]
    pub fn prefix<D>(self, prefix: impl Into<String>, dialect: D) -> Self
    where
        D: Dialect + Send + Sync + 'static,
    {
        let mut prefixes = self.prefixes.to_vec();
        prefixes.push((path_prefix::normalize(prefix.into()), Arc::new(dialect)));
        DialectByPath {
            default: self.default,
            prefixes: prefixes.into(),
        }
    }

    fn select(&self, format: &ErrorFormat) -> &SharedDialect {
        let Some(path) = format.path() else {
            return &self.default;
        };
        let candidates = self
            .prefixes
            .iter()
            .map(|(prefix, dialect)| (prefix.as_str(), dialect));
        path_prefix::longest(candidates, path).unwrap_or(&self.default)
    }
}

impl Dialect for DialectByPath {
    fn render(&self, error: &ApiError, format: &ErrorFormat) -> Response<ErrorBody> {
        self.select(format).render(error, format)
    }

    fn recognizes(&self, headers: &HeaderMap, body: &[u8], format: &ErrorFormat) -> bool {
        self.select(format).recognizes(headers, body, format)
    }
}

impl fmt::Debug for DialectByPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialectByPath")
            .field(
                "prefixes",
                &self.prefixes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{Bulk, Coded, ProblemDetails};

    #[test]
    fn the_longest_matching_prefix_wins_whatever_the_order() {
        let render = |dialect: &DialectByPath, path: &str| {
            let request = http::Request::get(path).body(()).unwrap();
            let response =
                ErrorFormat::for_request(&request).render(dialect, &ApiError::forbidden());
            response.headers()[http::header::CONTENT_TYPE].clone()
        };
        let general_first = DialectByPath::new(Bulk)
            .prefix("/v1", ProblemDetails::new())
            .prefix("/v1/customer", Coded::new());
        let specific_first = DialectByPath::new(Bulk)
            .prefix("/v1/customer", Coded::new())
            .prefix("/v1", ProblemDetails::new());
        for dialect in [general_first, specific_first] {
            assert_eq!(render(&dialect, "/v1/customer/courses"), "application/json");
            assert_eq!(
                render(&dialect, "/v1/customers"),
                "application/problem+json"
            );
            assert_eq!(render(&dialect, "/v2"), "application/json");
        }
    }
}
