//! Handler of the top-5 route.

use http::StatusCode;
use lambda_http::Request;

use super::{json, Handled};
use crate::catalog::ProductCatalog;
use crate::top::{top_products, SalesReader};
use crate::Deps;

/// `GET /api/v1/products/top`
pub async fn top<S: SalesReader + ProductCatalog>(_request: Request, deps: &Deps<S>) -> Handled {
    let value = top_products(&deps.store, deps.top_cache.as_deref(), deps.clock.as_ref()).await?;
    json(StatusCode::OK, &value)
}
