//! A check of the items themselves, made in the same pass that counted them.

use bytes::Bytes;
use http::{request, Method};

use super::BulkItems;
use crate::error::ApiError;

/// A check the batch limit layer runs on a body's items once it has counted them and before it
/// calls the inner service, so the items are found once and the body is read once.
///
/// The per-item authorization ([`AuthorizeItemsLayer`](crate::auth::AuthorizeItemsLayer), or
/// [`Contract::authorize_items`](crate::Contract::authorize_items)) is such a check; `()` checks
/// nothing.
pub trait InspectItems {
    /// The methods whose bodies must be read for this check even where no item limit applies.
    fn methods(&self) -> &[Method];

    /// Checks the items of a body that passed the count. `items` is what the counter found;
    /// a check that needs the items may find them itself when the counter left none, and put
    /// them there for the handler.
    ///
    /// # Errors
    ///
    /// The contract error the request is refused with.
    fn inspect(
        &self,
        head: &request::Parts,
        body: &Bytes,
        items: &mut Option<BulkItems>,
    ) -> Result<(), ApiError>;
}

impl InspectItems for () {
    fn methods(&self) -> &[Method] {
        &[]
    }

    #[inline]
    fn inspect(
        &self,
        _head: &request::Parts,
        _body: &Bytes,
        _items: &mut Option<BulkItems>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}
