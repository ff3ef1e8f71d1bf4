//! Reading Kit's answer out of an [`ApiError`]: the status and the `errors` strings
//! (docs/kit-api-v4.md §0), so callers can match 404, 422, 403 and 413 without parsing text.

use crate::ApiError;

/// Kit's status and messages of a refused call.
pub trait KitErrorExt {
    /// The HTTP status Kit answered, for a refusal other than 401/429 (which [`ApiError`] has
    /// variants for).
    fn kit_status(&self) -> Option<u16>;
    /// Kit's `errors` strings (empty when there were none).
    fn kit_messages(&self) -> &[String];
    /// 404: the resource (or one named in the body) does not exist.
    fn is_not_found(&self) -> bool {
        self.kit_status() == Some(404)
    }
    /// 422: Kit refused the input; [`KitErrorExt::kit_messages`] says why.
    fn is_unprocessable(&self) -> bool {
        self.kit_status() == Some(422)
    }
    /// 403: the account's plan or permissions do not allow it.
    fn is_forbidden(&self) -> bool {
        self.kit_status() == Some(403)
    }
    /// 413 from `/v4/bulk/*`: the account's bulk queue is full; try again later.
    fn is_bulk_queue_full(&self) -> bool {
        self.kit_status() == Some(413)
    }
}

impl KitErrorExt for ApiError {
    fn kit_status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    fn kit_messages(&self) -> &[String] {
        match self {
            ApiError::Status { messages, .. } => messages,
            _ => &[],
        }
    }
}
