//! gRPC status codes, as the error model knows them (no tonic needed).

use http::{HeaderValue, StatusCode};

/// A gRPC status code (the `grpc-status` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcStatus {
    /// 0
    Ok,
    /// 1
    Cancelled,
    /// 2
    Unknown,
    /// 3
    InvalidArgument,
    /// 4
    DeadlineExceeded,
    /// 5
    NotFound,
    /// 6
    AlreadyExists,
    /// 7
    PermissionDenied,
    /// 8
    ResourceExhausted,
    /// 9
    FailedPrecondition,
    /// 10
    Aborted,
    /// 11
    OutOfRange,
    /// 12
    Unimplemented,
    /// 13
    Internal,
    /// 14
    Unavailable,
    /// 15
    DataLoss,
    /// 16
    Unauthenticated,
}

impl GrpcStatus {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            GrpcStatus::Ok => 0,
            GrpcStatus::Cancelled => 1,
            GrpcStatus::Unknown => 2,
            GrpcStatus::InvalidArgument => 3,
            GrpcStatus::DeadlineExceeded => 4,
            GrpcStatus::NotFound => 5,
            GrpcStatus::AlreadyExists => 6,
            GrpcStatus::PermissionDenied => 7,
            GrpcStatus::ResourceExhausted => 8,
            GrpcStatus::FailedPrecondition => 9,
            GrpcStatus::Aborted => 10,
            GrpcStatus::OutOfRange => 11,
            GrpcStatus::Unimplemented => 12,
            GrpcStatus::Internal => 13,
            GrpcStatus::Unavailable => 14,
            GrpcStatus::DataLoss => 15,
            GrpcStatus::Unauthenticated => 16,
        }
    }

    /// The status as a `grpc-status` header value.
    pub fn header_value(self) -> HeaderValue {
        const VALUES: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        HeaderValue::from_static(VALUES[usize::from(self.code())])
    }

    /// The status a gRPC peer expects for an HTTP error status (Google AIP-193 mapping).
    pub fn from_http(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => GrpcStatus::Ok,
            401 => GrpcStatus::Unauthenticated,
            403 => GrpcStatus::PermissionDenied,
            404 => GrpcStatus::NotFound,
            408 | 504 => GrpcStatus::DeadlineExceeded,
            409 => GrpcStatus::Aborted,
            412 => GrpcStatus::FailedPrecondition,
            413 | 429 => GrpcStatus::ResourceExhausted,
            499 => GrpcStatus::Cancelled,
            501 => GrpcStatus::Unimplemented,
            502 | 503 => GrpcStatus::Unavailable,
            400..=499 => GrpcStatus::InvalidArgument,
            500..=599 => GrpcStatus::Internal,
            _ => GrpcStatus::Unknown,
        }
    }
}
