//! Macros the layers share.

/// The inner-service accessors every service of the crate has, written once (as in
/// tower-http). Expands inside an `impl<S, …> Service<S, …>` block whose inner service is the
/// field `inner`.
macro_rules! define_inner_service_accessors {
    () => {
        /// Gets a reference to the inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// Gets a mutable reference to the inner service.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
pub(crate) use define_inner_service_accessors;
