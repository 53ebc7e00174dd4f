//! The one reading of a `Content-Type` that every layer uses.
//!
//! A client chooses its `Content-Type`, so no layer may read it more loosely or more strictly
//! than another: one layer treating `APPLICATION/GRPC` as gRPC while the next treats it as a
//! JSON body is how a protection gets switched off. Every layer asks [`MediaType::of`]:
//!
//! - the type and subtype are compared without regard to case, parameters (`; charset=…`)
//!   and the whitespace around them are ignored (RFC 9110 §8.3.1);
//! - the whole gRPC family is gRPC: `application/grpc`, `application/grpc+proto`,
//!   `application/grpc+json` (any `+suffix`), `application/grpc-web` and
//!   `application/grpc-web-text`, each with or without a `+suffix`;
//! - JSON is `application/json` and any `application/*+json`;
//! - a header that is not a media type at all (or not visible ASCII) is [`MediaType::Other`].
//!
//! Whether a layer *acts* on a gRPC label is its own decision (see `SECURITY.md`): a label
//! never makes a layer skip a check by itself.
//!
//! ```
//! use http::{header, HeaderMap};
//! use tower_api_errors::media::{GrpcFlavor, MediaType};
//!
//! let mut headers = HeaderMap::new();
//! assert_eq!(MediaType::of(&headers), MediaType::Missing);
//! headers.insert(header::CONTENT_TYPE, "Application/GRPC-Web+proto; charset=utf-8".parse().unwrap());
//! assert_eq!(MediaType::of(&headers), MediaType::Grpc(GrpcFlavor::Web));
//! headers.insert(header::CONTENT_TYPE, "application/vnd.api+JSON".parse().unwrap());
//! assert_eq!(MediaType::of(&headers), MediaType::Json);
//! headers.insert(header::CONTENT_TYPE, "application/grpcx".parse().unwrap());
//! assert_eq!(MediaType::of(&headers), MediaType::Other);
//! ```

use http::{header, HeaderMap};

/// What a `Content-Type` declares, as far as the crate's layers care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// No `Content-Type` header.
    Missing,
    /// `application/json` or `application/*+json`.
    Json,
    /// A member of the gRPC family.
    Grpc(GrpcFlavor),
    /// Anything else, including values that are not media types.
    Other,
}

/// Which member of the gRPC family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcFlavor {
    /// `application/grpc` (gRPC over HTTP/2), with or without `+proto`, `+json`, ….
    Native,
    /// `application/grpc-web`, binary frames.
    Web,
    /// `application/grpc-web-text`, base64-encoded frames.
    WebText,
}

impl MediaType {
    /// The media type `headers` declare (the first `Content-Type` header).
    pub fn of(headers: &HeaderMap) -> Self {
        match headers.get(header::CONTENT_TYPE) {
            None => MediaType::Missing,
            Some(value) => Self::parse(value.as_bytes()),
        }
    }

    /// The media type of one `Content-Type` value.
    pub fn parse(value: &[u8]) -> Self {
        // Nearly every request spells its type one of these ways, and every layer asks: the
        // exact comparison costs a tenth of the general reading below (`BENCHMARKS.md`, the
        // accepted request's profile), which gives the same answer for them.
        match value {
            b"application/json" => MediaType::Json,
            b"application/grpc" => MediaType::Grpc(GrpcFlavor::Native),
            _ => read(value),
        }
    }

    /// Whether this is a member of the gRPC family.
    pub fn is_grpc(self) -> bool {
        matches!(self, MediaType::Grpc(_))
    }
}

/// The general reading of a `Content-Type` value, for [`MediaType::parse`].
fn read(value: &[u8]) -> MediaType {
    let essence = essence(value);
    let Some(subtype) = strip_prefix_ignore_case(essence, b"application/") else {
        return MediaType::Other;
    };
    if let Some(rest) = strip_prefix_ignore_case(subtype, b"grpc") {
        let (flavor, rest) = if let Some(rest) = strip_prefix_ignore_case(rest, b"-web-text") {
            (GrpcFlavor::WebText, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(rest, b"-web") {
            (GrpcFlavor::Web, rest)
        } else {
            (GrpcFlavor::Native, rest)
        };
        // `application/grpc`, or a `+suffix` naming the message encoding; `grpcx` is not.
        return if rest.is_empty() || rest.len() > 1 && rest[0] == b'+' {
            MediaType::Grpc(flavor)
        } else {
            MediaType::Other
        };
    }
    let json = subtype.eq_ignore_ascii_case(b"json")
        || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json");
    if json {
        MediaType::Json
    } else {
        MediaType::Other
    }
}

/// Whether `headers` declare exactly the media type `media_type` (`type/subtype`, compared
/// without regard to case, parameters ignored).
pub fn is(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| essence_is(value.as_bytes(), media_type))
}

/// Whether the `Content-Type` value `value` is exactly the media type `media_type`
/// (`type/subtype`, compared without regard to case, parameters ignored).
pub fn essence_is(value: &[u8], media_type: &str) -> bool {
    essence(value).eq_ignore_ascii_case(media_type.as_bytes())
}

/// `type/subtype` of a media type: before the first `;`, without surrounding whitespace.
fn essence(value: &[u8]) -> &[u8] {
    value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    value
        .get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .map(|_| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of the gRPC family a client may send.
    pub(crate) const GRPC_SPELLINGS: [&str; 10] = [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
        "application/grpc-web-text+proto",
        "application/grpc; charset=utf-8",
        "APPLICATION/GRPC",
        " Application/Grpc-Web-Text ;foo=bar",
    ];

    #[test]
    fn the_whole_grpc_family_is_grpc() {
        for spelling in GRPC_SPELLINGS {
            assert!(
                MediaType::parse(spelling.as_bytes()).is_grpc(),
                "{spelling}"
            );
        }
        assert_eq!(
            MediaType::parse(b"application/grpc-web-text+proto"),
            MediaType::Grpc(GrpcFlavor::WebText)
        );
        assert_eq!(
            MediaType::parse(b"application/GRPC-WEB"),
            MediaType::Grpc(GrpcFlavor::Web)
        );
    }

    #[test]
    fn the_shortcuts_agree_with_the_general_reading() {
        for value in ["application/json", "application/grpc"] {
            assert_eq!(MediaType::parse(value.as_bytes()), read(value.as_bytes()));
        }
    }

    #[test]
    fn near_misses_are_other() {
        for value in [
            "application/grpcx",
            "application/grpc-webx",
            "application/grpc+",
            "text/grpc",
            "grpc",
            "application/jsonx",
            "",
            "application/",
        ] {
            assert_eq!(
                MediaType::parse(value.as_bytes()),
                MediaType::Other,
                "{value}"
            );
        }
    }

    #[test]
    fn json_in_any_case_with_parameters() {
        for value in [
            "application/json",
            "APPLICATION/JSON; charset=utf-8",
            "application/problem+json",
            "application/vnd.api+JSON ; q=1",
        ] {
            assert_eq!(
                MediaType::parse(value.as_bytes()),
                MediaType::Json,
                "{value}"
            );
        }
    }

    #[test]
    fn exact_types_ignore_case_and_parameters() {
        let mut headers = HeaderMap::new();
        assert!(!is(&headers, "application/json"));
        headers.insert(
            header::CONTENT_TYPE,
            "Application/Problem+JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(is(&headers, "application/problem+json"));
        assert!(!is(&headers, "application/json"));
    }
}
