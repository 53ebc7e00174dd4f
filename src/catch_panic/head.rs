use http::{uri::PathAndQuery, Method, Request};

use crate::dialect::{ErrorFormat, Wire};

/// What the layer keeps of a request to answer and log a panic, captured before the request is
/// handed on.
///
/// Every request pays for it and it moves with the response future and then the body, so it is
/// small and takes no reference count (an atomic increment and decrement per request): the
/// [`Wire`] is decided up front, a standard method and a short path are copied, and the
/// [`ErrorFormat`] is built from them only when a panic happens.
pub(super) struct RequestHead(Kind);

/// Paths up to this length, most API paths, are copied; the whole head then fits in 72 bytes.
const INLINE: usize = 68;

enum Kind {
    /// A standard method, by its index in `METHODS`, and a short path.
    Inline {
        wire: Wire,
        method: u8,
        len: u8,
        path: [u8; INLINE],
    },
    /// An extension method or a long path, shared with the request.
    Shared {
        wire: Wire,
        method: Method,
        path: Option<PathAndQuery>,
    },
}

static METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

impl RequestHead {
    #[inline]
    pub(super) fn capture<B>(request: &Request<B>) -> Self {
        let wire = Wire::for_headers(request.headers());
        let path = request.uri().path().as_bytes();
        let method = match *request.method() {
            Method::GET => 0,
            Method::POST => 1,
            Method::PUT => 2,
            Method::DELETE => 3,
            Method::PATCH => 4,
            Method::HEAD => 5,
            Method::OPTIONS => 6,
            Method::CONNECT => 7,
            Method::TRACE => 8,
            _ => u8::MAX,
        };
        if method != u8::MAX && path.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..path.len()].copy_from_slice(path);
            RequestHead(Kind::Inline {
                wire,
                method,
                len: path.len() as u8,
                path: inline,
            })
        } else {
            RequestHead(Kind::Shared {
                wire,
                method: request.method().clone(),
                path: request.uri().path_and_query().cloned(),
            })
        }
    }

    pub(super) fn method(&self) -> &Method {
        match &self.0 {
            Kind::Inline { method, .. } => &METHODS[usize::from(*method)],
            Kind::Shared { method, .. } => method,
        }
    }

    pub(super) fn is_grpc(&self) -> bool {
        self.wire() == Wire::Grpc
    }

    fn wire(&self) -> Wire {
        match self.0 {
            Kind::Inline { wire, .. } | Kind::Shared { wire, .. } => wire,
        }
    }

    /// The format for the request, path included.
    pub(super) fn format(&self) -> ErrorFormat {
        let path = match &self.0 {
            Kind::Inline { len: 0, .. } => None,
            // The bytes came out of a parsed URI's path, so they parse again.
            Kind::Inline { len, path, .. } => {
                PathAndQuery::try_from(&path[..usize::from(*len)]).ok()
            }
            Kind::Shared { path, .. } => path.clone(),
        };
        ErrorFormat::new(self.wire(), self.method(), path)
    }
}

#[cfg(test)]
mod tests {
    use http::{header, Uri};

    use super::*;

    fn head(request: &Request<()>) -> RequestHead {
        RequestHead::capture(request)
    }

    #[test]
    fn the_head_is_small() {
        assert!(std::mem::size_of::<RequestHead>() <= 72);
    }

    #[test]
    fn short_paths_and_standard_methods_are_copied_and_give_the_request_format() {
        let exactly_inline = format!("/{}", "b".repeat(INLINE - 1));
        let uris = [
            "/v1/things?key=secret",
            "/",
            "http://example.com",
            "*",
            exactly_inline.as_str(),
        ];
        for uri in uris {
            for method in &METHODS {
                let request = Request::builder().method(method).uri(uri).body(()).unwrap();
                let inline = head(&request);
                assert!(matches!(inline.0, Kind::Inline { .. }), "{method} {uri}");
                assert_eq!(inline.method(), method);
                let format = inline.format();
                assert_eq!(format.path(), Some(request.uri().path()), "{uri}");
                assert_eq!(format.is_head(), method == Method::HEAD);
                assert_eq!(format.wire(), Wire::Dialect);
            }
        }
    }

    #[test]
    fn long_paths_and_extension_methods_are_shared() {
        let long = format!("/{}?key=secret", "a".repeat(INLINE));
        let request = Request::get(long.as_str()).body(()).unwrap();
        let shared = head(&request);
        assert!(matches!(shared.0, Kind::Shared { .. }));
        assert_eq!(shared.format(), ErrorFormat::for_request(&request));
        assert_eq!(shared.format().path(), Some(&long[..INLINE + 1]));

        let request = Request::builder()
            .method("PROPFIND")
            .uri("/dav/file")
            .body(())
            .unwrap();
        let extension = head(&request);
        assert!(matches!(extension.0, Kind::Shared { .. }));
        assert_eq!(extension.method().as_str(), "PROPFIND");
        assert_eq!(extension.format(), ErrorFormat::for_request(&request));
    }

    #[test]
    fn the_wire_is_the_request_one() {
        let grpc = Request::post("/pkg.Svc/Call")
            .header(header::CONTENT_TYPE, "application/grpc+proto")
            .body(())
            .unwrap();
        assert!(head(&grpc).is_grpc());
        assert_eq!(head(&grpc).format(), ErrorFormat::for_request(&grpc));

        let problem = Request::get("/v1/things")
            .header(header::ACCEPT, "application/problem+json")
            .body(())
            .unwrap();
        assert!(!head(&problem).is_grpc());
        assert_eq!(head(&problem).format().wire(), Wire::ProblemDetails);
        assert_eq!(head(&problem).format(), ErrorFormat::for_request(&problem));
    }

    #[test]
    fn a_uri_without_a_path_has_none() {
        let request = Request::builder()
            .method(Method::CONNECT)
            .uri(Uri::from_static("example.com:443"))
            .body(())
            .unwrap();
        assert_eq!(head(&request).format().path(), None);
        assert_eq!(head(&request).format(), ErrorFormat::for_request(&request));
    }
}
