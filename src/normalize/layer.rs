use std::fmt;

use tower_layer::Layer;

use super::{
    classify::{ClassifyError, DefaultClassifyError},
    Normalize, DEFAULT_BODY_LIMIT,
};
use crate::dialect::{Bulk, Dialect};

/// Layer that applies [`Normalize`]: every error response produced below it is answered in
/// the contract's shape.
///
/// See the [module docs](super) for what is rewritten and what passes untouched.
#[derive(Clone)]
#[must_use]
pub struct NormalizeLayer<D = Bulk, C = DefaultClassifyError> {
    dialect: D,
    classify: C,
    limit: usize,
}

impl NormalizeLayer {
    /// The bulk dialect, the [`DefaultClassifyError`] and a body budget of
    /// [`DEFAULT_BODY_LIMIT`] bytes.
    pub fn new() -> Self {
        NormalizeLayer {
            dialect: Bulk,
            classify: DefaultClassifyError,
            limit: DEFAULT_BODY_LIMIT,
        }
    }
}

impl Default for NormalizeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<D, C> NormalizeLayer<D, C> {
    /// Answers in `dialect` (e.g. a [`DialectByPath`](crate::dialect::DialectByPath) for one
    /// dialect per route group). It is cloned for each request, so keep it cheap to clone: the
    /// crate's dialects are.
    pub fn dialect<T>(self, dialect: T) -> NormalizeLayer<T, C>
    where
        T: Dialect + Clone,
    {
        NormalizeLayer {
            dialect,
            classify: self.classify,
            limit: self.limit,
        }
    }

    /// Turns the inner service's errors into contract errors with `classify` instead of the
    /// [`DefaultClassifyError`]. It is cloned for each request.
    pub fn classify_error<T>(self, classify: T) -> NormalizeLayer<D, T>
    where
        T: ClassifyError + Clone,
    {
        NormalizeLayer {
            dialect: self.dialect,
            classify,
            limit: self.limit,
        }
    }

    /// Reads at most `bytes` of an error body to understand it (default
    /// [`DEFAULT_BODY_LIMIT`]). A body declared or found larger is replaced without being read
    /// to the end; `0` never reads a body and maps every error by its status alone.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }
}

impl<S, D, C> Layer<S> for NormalizeLayer<D, C>
where
    D: Clone,
    C: Clone,
{
    type Service = Normalize<S, D, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Normalize::from_parts(
            inner,
            self.dialect.clone(),
            self.classify.clone(),
            self.limit,
        )
    }
}

impl<D: fmt::Debug, C> fmt::Debug for NormalizeLayer<D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NormalizeLayer")
            .field("dialect", &self.dialect)
            .field("classify", &std::any::type_name::<C>())
            .field("body_limit", &self.limit)
            .finish()
    }
}
