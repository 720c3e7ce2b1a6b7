//! Handler of the top-5 route.

use http::StatusCode;
use lambda_http::Request;

use super::paths;
use super::{json, Handled};
use crate::catalog::ProductCatalog;
use crate::top::TopProducts;
use crate::top::{top_products, SalesReader};
use crate::Deps;

/// `GET /api/v1/products/top`
#[utoipa::path(get, path = paths::PRODUCTS_TOP, tag = "catalogue", summary = "The top 5 products of the last 3 days", security(),
    responses(
        (status = 200, description = "The 5 products sold most in paid orders over the last 3 days (ties by product id), \
            at most one refresh interval stale", body = TopProducts),
    ))]
pub async fn top<S: SalesReader + ProductCatalog>(_request: Request, deps: &Deps<S>) -> Handled {
    let value = top_products(&deps.store, deps.top_cache.as_deref(), deps.clock.as_ref()).await?;
    json(StatusCode::OK, &value)
}
