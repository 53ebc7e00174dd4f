use http::{uri::PathAndQuery, Method, Request};

use crate::dialect::{ErrorFormat, Wire};

/// What the layer keeps of a request to answer and log a panic, captured before the request is
/// handed on.
///
/// Every request pays for it, and it moves with the response future and then with the body, so
/// it is plain bytes: nothing to count (a shared path would cost an atomic increment and
/// decrement per request), nothing to drop. The [`Wire`] is decided up front; the method and
/// the path are copied, a path longer than fits being cut; the [`ErrorFormat`] is built from
/// them only when a panic happens.
#[derive(Clone, Copy)]
pub(crate) struct RequestHead {
    wire: Wire,
    /// An index in `METHODS`, or `EXTENSION` when the method's name starts `text`.
    method: u8,
    extension_len: u8,
    path_len: u8,
    path_cut: bool,
    text: [u8; TEXT],
}

/// Room for the path (after an extension method's name): the head is 128 bytes.
pub(super) const TEXT: usize = 123;

const EXTENSION: u8 = u8::MAX;

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
        Self::capture_on(request, Wire::for_headers(request.headers()))
    }

    /// The head of a request whose [`Wire`] was decided already.
    #[inline]
    pub(crate) fn capture_on<B>(request: &Request<B>, wire: Wire) -> Self {
        let mut text = [0; TEXT];
        let (method, extension_len) = match *request.method() {
            Method::GET => (0, 0),
            Method::POST => (1, 0),
            Method::PUT => (2, 0),
            Method::DELETE => (3, 0),
            Method::PATCH => (4, 0),
            Method::HEAD => (5, 0),
            Method::OPTIONS => (6, 0),
            Method::CONNECT => (7, 0),
            Method::TRACE => (8, 0),
            ref extension => (EXTENSION, copy_cut(extension.as_str(), &mut text)),
        };
        let path = request.uri().path();
        let path_len = copy_cut(path, &mut text[extension_len..]);
        RequestHead {
            wire,
            method,
            extension_len: extension_len as u8,
            path_len: path_len as u8,
            path_cut: path_len < path.len(),
            text,
        }
    }

    /// The request's method.
    pub(super) fn method(&self) -> Method {
        match METHODS.get(usize::from(self.method)) {
            Some(method) => method.clone(),
            // The bytes of a method's name (even cut) are a method's name: the default is never
            // used.
            None => Method::from_bytes(&self.text[..usize::from(self.extension_len)])
                .unwrap_or_default(),
        }
    }

    /// The format for the request, path included.
    pub(super) fn format(&self) -> ErrorFormat {
        let start = usize::from(self.extension_len);
        let path = &self.text[start..start + usize::from(self.path_len)];
        // The bytes came out of a parsed URI's path and were cut at a character, so they parse.
        let path = (!path.is_empty())
            .then(|| PathAndQuery::try_from(path).ok())
            .flatten();
        ErrorFormat::new(self.wire, &self.method(), path)
    }

    /// Whether the path was cut to fit.
    pub(super) fn path_cut(&self) -> bool {
        self.path_cut
    }

    pub(super) fn is_grpc(&self) -> bool {
        self.wire == Wire::Grpc
    }
}

/// Copies as much of `text` as fits into `into`, cutting at a character; returns the length.
#[inline]
fn copy_cut(text: &str, into: &mut [u8]) -> usize {
    let mut len = text.len().min(into.len());
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    into[..len].copy_from_slice(&text.as_bytes()[..len]);
    len
}

#[cfg(test)]
mod tests {
    use http::{header, Uri};

    use super::*;

    fn head(request: &Request<()>) -> RequestHead {
        RequestHead::capture(request)
    }

    #[test]
    fn the_head_is_plain_and_small() {
        assert_eq!(std::mem::size_of::<RequestHead>(), 128);
        assert!(!std::mem::needs_drop::<RequestHead>());
    }

    #[test]
    fn methods_and_paths_give_the_request_format() {
        let longest = format!("/{}", "b".repeat(TEXT - 1));
        let uris = [
            "/v1/things?key=secret",
            "/",
            "http://example.com",
            "*",
            longest.as_str(),
        ];
        for uri in uris {
            for method in METHODS
                .iter()
                .chain(&[Method::from_bytes(b"PROPFIND").unwrap()])
            {
                let request = Request::builder().method(method).uri(uri).body(()).unwrap();
                let captured = head(&request);
                assert_eq!(&captured.method(), method);
                let expected = ErrorFormat::for_request(&request);
                if method.as_str().len() + request.uri().path().len() <= TEXT {
                    let format = captured.format();
                    assert_eq!(format.path(), expected.path(), "{method} {uri}");
                    assert_eq!(format.wire(), expected.wire());
                    assert!(!captured.path_cut());
                }
                assert_eq!(captured.format().is_head(), method == Method::HEAD);
            }
        }
    }

    #[test]
    fn long_paths_are_cut_at_a_character() {
        let long = format!("/{}é{}?key=secret", "a".repeat(TEXT - 2), "z".repeat(10));
        let request = Request::get(long.as_str()).body(()).unwrap();
        let captured = head(&request);
        assert!(captured.path_cut());
        // `é` is two bytes and would end past the room: the cut comes before it.
        assert_eq!(
            captured.format().path(),
            Some(&long[..TEXT - 1]),
            "cut to the room left"
        );

        let request = Request::builder()
            .method("PROPFIND")
            .uri(format!("/dav/{}", "f".repeat(200)))
            .body(())
            .unwrap();
        let captured = head(&request);
        assert!(captured.path_cut());
        assert_eq!(captured.method().as_str(), "PROPFIND");
        assert_eq!(
            captured.format().path().unwrap().len(),
            TEXT - "PROPFIND".len()
        );
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
