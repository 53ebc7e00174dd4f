use std::{error::Error as StdError, fmt};

pub use crate::error::BoxError;
use crate::error::{ApiError, ErrorCode};

/// Turns an error of the inner service into the contract error the client gets.
///
/// Implemented for closures `FnMut(BoxError) -> ApiError`; [`DefaultClassifyError`] is the
/// default. The error's text never reaches the client unless the implementation puts it there
/// (and it must not: it may hold internals).
pub trait ClassifyError {
    /// The contract error for `error`.
    fn classify_error(&mut self, error: BoxError) -> ApiError;
}

impl<F> ClassifyError for F
where
    F: FnMut(BoxError) -> ApiError,
{
    fn classify_error(&mut self, error: BoxError) -> ApiError {
        self(error)
    }
}

/// The default [`ClassifyError`].
///
/// | error (anywhere in its `source` chain) | contract error |
/// | --- | --- |
/// | `tower::timeout::error::Elapsed` | `request_timeout` (408) |
/// | `tower::load_shed::error::Overloaded` | `service_unavailable` (503) |
/// | anything else | `server_error` (500), logged with `tracing` at `ERROR` level |
///
/// The first two are expected under load and are logged at `DEBUG` level only.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultClassifyError;

impl ClassifyError for DefaultClassifyError {
    fn classify_error(&mut self, error: BoxError) -> ApiError {
        match known_error(&*error) {
            Some(code) => {
                tracing::debug!(error = %error, code = %code, "inner service failed");
                ApiError::new(code)
            }
            None => {
                tracing::error!(error = %DisplayChain(&*error), "inner service failed");
                ApiError::server_error()
            }
        }
    }
}

/// The code for tower's own errors, looked for along the whole `source` chain so that an error
/// wrapped by another middleware (e.g. `tower::buffer`) is still recognised.
fn known_error(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    std::iter::successors(Some(error), |&error| error.source()).find_map(|error| {
        if error.is::<tower::timeout::error::Elapsed>() {
            Some(ErrorCode::RequestTimeout)
        } else if error.is::<tower::load_shed::error::Overloaded>() {
            Some(ErrorCode::ServiceUnavailable)
        } else {
            None
        }
    })
}

/// An error and its sources, `outer: inner: innermost`, for the log line.
struct DisplayChain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(BoxError);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn tower_errors_are_recognised_along_the_chain() {
        let mut classify = DefaultClassifyError;
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(
            classify.classify_error(elapsed).code(),
            &ErrorCode::RequestTimeout
        );
        let overloaded: BoxError = Box::new(Wrapped(Box::new(
            tower::load_shed::error::Overloaded::new(),
        )));
        assert_eq!(
            classify.classify_error(overloaded).code(),
            &ErrorCode::ServiceUnavailable
        );
        let other: BoxError = "database password=hunter2 rejected".into();
        let error = classify.classify_error(other);
        assert_eq!(error, ApiError::server_error());
        assert!(error.details().is_empty());
    }

    #[test]
    fn closures_classify() {
        let mut classify = |_: BoxError| ApiError::new(ErrorCode::TooManyRequests);
        assert_eq!(
            classify.classify_error("x".into()).status(),
            http::StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[test]
    fn chains_display_every_source() {
        let error = Wrapped("inner".into());
        assert_eq!(DisplayChain(&error).to_string(), "wrapped: inner");
    }
}
