use http::{uri::PathAndQuery, Method, Request, Uri};

use crate::dialect::ErrorFormat;

/// What the layer keeps of a request to answer and log a panic, captured before the request is
/// handed on. Every request pays for it, so it avoids reference counts (an atomic increment and
/// decrement per request): the path is copied when short, and the format is completed with it
/// only when a panic happens.
pub(super) struct RequestHead {
    format: ErrorFormat,
    method: Method,
    path: RequestPath,
}

impl RequestHead {
    pub(super) fn capture<B>(request: &Request<B>) -> Self {
        RequestHead {
            format: ErrorFormat::without_path(request.method(), request.headers()),
            method: request.method().clone(),
            path: RequestPath::capture(request.uri()),
        }
    }

    /// The format for the request, path included.
    pub(super) fn format(&self) -> ErrorFormat {
        match self.path.to_path_and_query() {
            Some(path) => self.format.clone().with_path(path),
            None => self.format.clone(),
        }
    }

    pub(super) fn method(&self) -> &Method {
        &self.method
    }

    pub(super) fn is_grpc(&self) -> bool {
        self.format.is_grpc()
    }
}

/// Paths up to this length (most API paths) are copied; longer ones are shared.
const INLINE: usize = 54;

/// The request's path, without the query string.
enum RequestPath {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(PathAndQuery),
}

impl RequestPath {
    fn capture(uri: &Uri) -> Self {
        let path = uri.path().as_bytes();
        match uri.path_and_query() {
            Some(shared) if path.len() > INLINE => RequestPath::Shared(shared.clone()),
            _ => {
                let mut bytes = [0; INLINE];
                bytes[..path.len()].copy_from_slice(path);
                RequestPath::Inline {
                    len: path.len() as u8,
                    bytes,
                }
            }
        }
    }

    fn to_path_and_query(&self) -> Option<PathAndQuery> {
        match self {
            RequestPath::Inline { len: 0, .. } => None,
            // The bytes came out of a parsed URI, so they parse again.
            RequestPath::Inline { len, bytes } => {
                PathAndQuery::try_from(&bytes[..usize::from(*len)]).ok()
            }
            RequestPath::Shared(path) => PathAndQuery::try_from(path.path()).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kept_without_the_query_whatever_their_length() {
        let long = format!("/v1/{}", "a".repeat(100));
        for (uri, path) in [
            ("/v1/things?key=secret", Some("/v1/things")),
            ("/", Some("/")),
            ("http://example.com", Some("/")),
            (long.as_str(), Some(long.as_str())),
            (&format!("{long}?key=secret"), Some(long.as_str())),
            (&format!("/{}", "b".repeat(INLINE - 1)), None),
        ] {
            let request = Request::get(uri).body(()).unwrap();
            let head = RequestHead::capture(&request);
            let expected = path.unwrap_or(request.uri().path());
            assert_eq!(head.format().path(), Some(expected), "{uri}");
            assert_eq!(
                head.format().wire(),
                ErrorFormat::for_request(&request).wire()
            );
        }
        let request = Request::get("/v1/x").body(()).unwrap();
        assert!(matches!(
            RequestPath::capture(request.uri()),
            RequestPath::Inline { len: 5, .. }
        ));
        let request = Request::get(long.as_str()).body(()).unwrap();
        assert!(matches!(
            RequestPath::capture(request.uri()),
            RequestPath::Shared(_)
        ));
        let authority_only: Uri = "example.com:443".parse().unwrap();
        assert!(RequestPath::capture(&authority_only)
            .to_path_and_query()
            .is_none());
    }
}
#[cfg(test)]
#[test]
fn print_sizes() {
    use std::mem::size_of;
    eprintln!("RequestHead {} ErrorFormat {} Method {} RequestPath {} PathAndQuery {}", size_of::<RequestHead>(), size_of::<ErrorFormat>(), size_of::<Method>(), size_of::<RequestPath>(), size_of::<PathAndQuery>());
    eprintln!("body {} resp {} respbody {}", size_of::<super::ResponseBody<http_body_util::Full<bytes::Bytes>>>(), size_of::<http::Response<super::ResponseBody<http_body_util::Full<bytes::Bytes>>>>(), size_of::<http::Response<http_body_util::Full<bytes::Bytes>>>());
    eprintln!("request {}", size_of::<http::Request<http_body_util::Full<bytes::Bytes>>>());
}
