//! The one table of codes, and [`ErrorCode`] generated from it.
//!
//! Every fact about a code of the crate is on its row of [`for_each_code!`]: the variant, the
//! name on the wire, the HTTP status, the gRPC status and the number in the coded dialect. The
//! enum, [`ErrorCode::ALL`], [`ErrorCode::as_str`], [`ErrorCode::from_name`],
//! [`ErrorCode::status`], [`ErrorCode::grpc_status`] and the coded number are generated from
//! the rows, and so are the bulk dialect's static bodies: adding a code is one row, and a row
//! with a column missing does not compile.

use std::{borrow::Cow, fmt};

use http::StatusCode;
use serde::{Serialize, Serializer};

use super::GrpcStatus;

/// Hands the table of codes to `$callback`, a `macro_rules!` that generates one thing from it.
///
/// A row is `Variant: "wire_name", HTTP_STATUS, GrpcStatus, own(n) | shared(n);`, with the
/// variant's docs above it. `own(n)`: `n` is the code's own number in the coded dialect (its
/// message says it all); `shared(n)`: the code borrows the number of the nearest one, so the
/// coded dialect names the code in `errors`. The module docs of [`crate::error`] show the same
/// table for readers; a test keeps the two equal.
macro_rules! for_each_code {
    ($callback:ident) => {
        $callback! {
            /// No API key, an unknown key or a disabled key (401).
            Unauthorized: "unauthorized", UNAUTHORIZED, Unauthenticated, own(4);
            /// The key lacks the role for one or more of the requested actions (403).
            Forbidden: "forbidden", FORBIDDEN, PermissionDenied, own(3);
            /// A bulk request has more items than allowed (400).
            TooManyItems: "too_many_items", BAD_REQUEST, InvalidArgument, shared(6);
            /// A panic, an inner-service error, any 5xx without a contract body (500).
            ServerError: "server_error", INTERNAL_SERVER_ERROR, Internal, own(1);
            /// No route matched (404).
            NotFound: "not_found", NOT_FOUND, Unimplemented, shared(10);
            /// The route exists, the method does not (405).
            MethodNotAllowed: "method_not_allowed", METHOD_NOT_ALLOWED, Unimplemented, shared(8);
            /// Content negotiation failed (406).
            NotAcceptable: "not_acceptable", NOT_ACCEPTABLE, InvalidArgument, shared(8);
            /// The request took too long (408).
            RequestTimeout: "request_timeout", REQUEST_TIMEOUT, DeadlineExceeded, shared(2);
            /// The body is larger than allowed (413).
            PayloadTooLarge: "payload_too_large", PAYLOAD_TOO_LARGE, ResourceExhausted, shared(8);
            /// The body's media type is not accepted (415).
            UnsupportedMediaType: "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, InvalidArgument, shared(8);
            /// The body is not well-formed JSON (400).
            InvalidJson: "invalid_json", BAD_REQUEST, InvalidArgument, shared(6);
            /// Well-formed input failed validation (400, or 422 when produced so).
            ValidationErrors: "validation_errors", BAD_REQUEST, InvalidArgument, shared(6);
            /// A rate limit was hit (429).
            TooManyRequests: "too_many_requests", TOO_MANY_REQUESTS, ResourceExhausted, shared(2);
            /// The service cannot take the request now (503).
            ServiceUnavailable: "service_unavailable", SERVICE_UNAVAILABLE, Unavailable, own(2);
            /// The object named by an item or id does not exist (404; mostly an item error).
            ObjectNotFound: "object_not_found", NOT_FOUND, NotFound, shared(10);
            /// Coded dialect 5: a required body was not sent (400).
            ModelNotProvided: "model_not_provided", BAD_REQUEST, InvalidArgument, own(5);
            /// Coded dialect 6: the body is not valid for the action (400).
            ModelNotValid: "model_not_valid", BAD_REQUEST, InvalidArgument, own(6);
            /// Coded dialect 7: a required value was not sent (400).
            ValueNotProvided: "value_not_provided", BAD_REQUEST, InvalidArgument, own(7);
            /// Coded dialect 8: a value is not valid (400).
            ValueNotValid: "value_not_valid", BAD_REQUEST, InvalidArgument, own(8);
            /// Coded dialect 9: a required record was not named (400).
            RecordNotProvided: "record_not_provided", BAD_REQUEST, InvalidArgument, own(9);
            /// Coded dialect 10: the record does not exist (404).
            RecordNotFound: "record_not_found", NOT_FOUND, NotFound, own(10);
            /// Coded dialect 11: the record is not active (409).
            RecordNotActive: "record_not_active", CONFLICT, FailedPrecondition, own(11);
            /// Coded dialect 12: the record is not valid for the action (422).
            RecordNotValid: "record_not_valid", UNPROCESSABLE_ENTITY, InvalidArgument, own(12);
        }
    };
}
pub(crate) use for_each_code;

/// A code's number in the coded dialect (1 to 12), and whether it is the code's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CodedNumber {
    number: u8,
    own: bool,
}

impl CodedNumber {
    /// The number is the code's own: its message (`Record not found`) says it all.
    const fn own(number: u8) -> Self {
        CodedNumber { number, own: true }
    }

    /// The code borrows the number of the nearest code (`too_many_items` is 6, `Model not
    /// valid`), so the dialect names the code too.
    const fn shared(number: u8) -> Self {
        CodedNumber { number, own: false }
    }

    /// 1 to 12.
    pub(crate) fn number(self) -> u8 {
        self.number
    }

    /// Whether the number is the code's own.
    pub(crate) fn is_own(self) -> bool {
        self.own
    }
}

macro_rules! define_codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident: $name:literal, $status:ident, $grpc:ident, $coded:ident($number:literal);
    )*) => {
        /// What went wrong, by name. See the [module docs](crate::error) for the table of codes.
        ///
        /// Serializes as its snake_case name.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code of the service's own, or one derived from a status with no row in the table.
            Custom(CustomCode),
        }

        impl ErrorCode {
            /// Every code of the crate's table, in the table's order ([`ErrorCode::Custom`]
            /// aside).
            ///
            /// ```
            /// use tower_api_errors::ErrorCode;
            /// for code in ErrorCode::ALL {
            ///     assert_eq!(ErrorCode::from_name(code.as_str()).as_ref(), Some(code));
            /// }
            /// ```
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code's name as written on the wire, e.g. `"too_many_items"`.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Custom(custom) => &custom.name,
                }
            }

            /// The crate's code named `name` (`"too_many_items"` → [`ErrorCode::TooManyItems`]);
            /// `None` for a name outside the table.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }

            /// The HTTP status this code is answered with by default.
            pub fn status(&self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                    ErrorCode::Custom(custom) => custom.status,
                }
            }

            /// The gRPC status this code is answered with.
            pub fn grpc_status(&self) -> GrpcStatus {
                match self {
                    $(ErrorCode::$variant => GrpcStatus::$grpc,)*
                    ErrorCode::Custom(custom) => custom.grpc,
                }
            }

            /// The code's number in the coded dialect; `None` for a custom code, whose number
            /// the dialect derives from the status.
            pub(crate) fn coded_number(&self) -> Option<CodedNumber> {
                match self {
                    $(ErrorCode::$variant => Some(CodedNumber::$coded($number)),)*
                    ErrorCode::Custom(_) => None,
                }
            }
        }
    };
}

for_each_code!(define_codes);

/// A code outside the crate's table: a name, an HTTP status and a gRPC status.
///
/// Made by [`ErrorCode::custom`] and [`ErrorCode::from_status`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustomCode {
    name: Cow<'static, str>,
    status: StatusCode,
    grpc: GrpcStatus,
}

impl CustomCode {
    /// The code's name as written on the wire.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl ErrorCode {
    /// A service's own code. The gRPC status follows `status` (see the
    /// [module docs](crate::error)); override it with [`ErrorCode::with_grpc_status`].
    ///
    /// ```
    /// use tower_api_errors::ErrorCode;
    /// let locked = ErrorCode::custom("object_locked", http::StatusCode::CONFLICT);
    /// assert_eq!(locked.as_str(), "object_locked");
    /// assert_eq!(locked.grpc_status().code(), 10);
    /// ```
    pub fn custom(name: impl Into<Cow<'static, str>>, status: StatusCode) -> Self {
        ErrorCode::Custom(CustomCode {
            name: name.into(),
            status,
            grpc: GrpcStatus::from_http(status),
        })
    }

    /// Sets the gRPC status of a custom code; the crate's own codes keep theirs.
    #[must_use]
    pub fn with_grpc_status(self, grpc: GrpcStatus) -> Self {
        match self {
            ErrorCode::Custom(custom) => ErrorCode::Custom(CustomCode { grpc, ..custom }),
            other => other,
        }
    }

    /// The contract code for a bare error status: the table's code where it has a row, else the
    /// snake_case of the status's canonical reason phrase (409 → `conflict`), else
    /// `client_error` / `server_error` by class.
    pub fn from_status(status: StatusCode) -> Self {
        // Where several codes share a status (404: `not_found`, `object_not_found`,
        // `record_not_found`), a bare status means the framework's code.
        match status.as_u16() {
            400 => ErrorCode::custom("bad_request", status),
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            406 => ErrorCode::NotAcceptable,
            408 => ErrorCode::RequestTimeout,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            429 => ErrorCode::TooManyRequests,
            500 => ErrorCode::ServerError,
            503 => ErrorCode::ServiceUnavailable,
            _ => match status.canonical_reason() {
                Some(reason) => ErrorCode::custom(snake_case(reason), status),
                None if status.is_server_error() => ErrorCode::custom("server_error", status),
                None => ErrorCode::custom("client_error", status),
            },
        }
    }

    /// The crate's code whose own number in the coded dialect is `number` (1 to 12).
    pub(crate) fn from_coded_number(number: u8) -> Option<Self> {
        ErrorCode::ALL
            .iter()
            .find(|code| code.coded_number() == Some(CodedNumber::own(number)))
            .cloned()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn snake_case(reason: &str) -> String {
    let mut name = String::with_capacity(reason.len());
    // "I'm a teapot" → `im_a_teapot`: apostrophes join, other punctuation separates.
    let letters = reason.chars().filter(|&c| c != '\'');
    for word in letters
        .collect::<String>()
        .split(|c: char| !c.is_ascii_alphanumeric())
    {
        if word.is_empty() {
            continue;
        }
        if !name.is_empty() {
            name.push('_');
        }
        name.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()).as_ref(), Some(code));
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
            assert!(!matches!(code, ErrorCode::Custom(_)));
        }
        assert_eq!(ErrorCode::from_name("object_locked"), None);
        assert_eq!(ErrorCode::from_name("Unauthorized"), None);
    }

    #[test]
    fn the_table_is_exhaustive() {
        // Every variant but `Custom` is in `ALL`: the match has no `_` arm, so a variant
        // outside the table would not compile, and one in it but missing from `ALL` fails here.
        fn position(code: &ErrorCode) -> Option<usize> {
            ErrorCode::ALL.iter().position(|known| known == code)
        }
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(code), Some(index), "{code} is in the table twice");
        }
        let custom = ErrorCode::custom("unauthorized", StatusCode::UNAUTHORIZED);
        assert_eq!(position(&custom), None);
    }

    #[test]
    fn every_coded_number_has_one_own_code() {
        for number in 1..=12 {
            let own: Vec<_> = ErrorCode::ALL
                .iter()
                .filter(|code| code.coded_number() == Some(CodedNumber::own(number)))
                .collect();
            assert_eq!(own.len(), 1, "number {number}: {own:?}");
            assert_eq!(ErrorCode::from_coded_number(number).as_ref(), Some(own[0]));
        }
        for code in ErrorCode::ALL {
            let number = code.coded_number().expect("a table code has a number");
            assert!((1..=12).contains(&number.number()), "{code}");
        }
        assert_eq!(ErrorCode::from_coded_number(0), None);
        assert_eq!(ErrorCode::from_coded_number(13), None);
    }

    #[test]
    fn the_module_docs_show_the_table() {
        // The table in `error.rs`'s docs is for readers; it must say what the code says.
        let docs = include_str!("../error.rs");
        let rows: Vec<Vec<&str>> = docs
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .map(|row| row.split(" | ").map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), ErrorCode::ALL.len(), "one docs row per code");
        for (code, row) in ErrorCode::ALL.iter().zip(&rows) {
            let number = |cell: &str| cell.split([' ', '|']).next().unwrap().parse::<u16>();
            assert_eq!(row[0].trim_end_matches('`'), code.as_str(), "{row:?}");
            assert_eq!(
                number(row[1]),
                Ok(code.status().as_u16()),
                "{code}: {row:?}"
            );
            assert_eq!(
                number(row[2]),
                Ok(u16::from(code.grpc_status().code())),
                "{code}: {row:?}"
            );
            let coded = code.coded_number().unwrap().number();
            assert_eq!(number(row[3]), Ok(u16::from(coded)), "{code}: {row:?}");
        }
    }
}
