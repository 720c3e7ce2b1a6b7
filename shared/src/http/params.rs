//! Parameters and scalars that handlers name in their `#[utoipa::path]` and schemas,
//! for the document only: a leaf, so handlers never import the document (which
//! imports the route table, which imports the handlers).

/// `limit` and `cursor` of a list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// How many items at most (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `nextCursor` of the page before, as it was given.
    cursor: Option<String>,
}

/// The `Idempotency-Key` of a route that changes something.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyHeader {
    /// A retry with the same key answers the first response and changes nothing; the
    /// same key with another request is 409 `IDEMPOTENCY_KEY_REUSED`.
    #[param(rename = "Idempotency-Key", nullable = false, min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
}

/// A price in a request (documentation only: prices parse as [`crate::money::Money`];
/// its schema is [`super::openapi`]'s).
pub struct Price;
