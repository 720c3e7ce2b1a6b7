//! Handlers of the catalogue routes.

use http::StatusCode;
use lambda_http::Request;

use super::error::ErrorBody;
use super::extract::{page_request, path_id};
use super::params::PageQuery;
use super::paths;
use super::{json, Handled, ListBody};
use crate::catalog::Product;
use crate::catalog::ProductCatalog;
use crate::ids::ProductId;
use crate::Deps;

/// `GET /api/v1/products?limit=&cursor=`
#[utoipa::path(get, path = paths::PRODUCTS, tag = "catalogue", summary = "List products", params(PageQuery), security(),
    responses(
        (status = 200, description = "A page of products, by id", body = ListBody<Product>),
        (status = 400, description = "`INVALID_LIMIT`, `INVALID_CURSOR`", body = ErrorBody),
    ))]
pub async fn list_products<S: ProductCatalog>(request: Request, deps: &Deps<S>) -> Handled {
    let page = deps.store.products(page_request(&request)?).await?;
    json(StatusCode::OK, &ListBody { items: &page.items, next_cursor: page.next.as_ref().map(|c| c.as_str()) })
}

/// `GET /api/v1/products/{productId}`
#[utoipa::path(get, path = paths::PRODUCT, tag = "catalogue", summary = "One product", security(),
    params(("productId" = ProductId, Path, description = "The product")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, description = "`INVALID_PRODUCT_ID`", body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn get_product<S: ProductCatalog>(request: Request, deps: &Deps<S>) -> Handled {
    let id: ProductId = path_id(&request, "productId")?;
    json(StatusCode::OK, &deps.store.product(id).await?)
}
