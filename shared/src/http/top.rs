//! Handler of the top-5 route.

use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::{json, ApiError};
use crate::catalog::ProductCatalog;
use crate::top::{top_products, SalesReader, TopError};
use crate::Deps;

/// `GET /api/v1/products/top`
pub async fn top<S: SalesReader + ProductCatalog>(_request: Request, deps: &Deps<S>) -> Response<Body> {
    match top_products(&deps.store, deps.top_cache.as_deref(), deps.clock.as_ref()).await {
        Ok(value) => json(StatusCode::OK, &value),
        Err(TopError::Unavailable(cause)) => ApiError::unavailable(cause).into_response(),
        Err(TopError::Unexpected(cause)) => ApiError::internal(cause).into_response(),
    }
}
