//! Handlers of the catalogue routes.

use http::StatusCode;
use lambda_http::Request;

use super::extract::{page_request, path_id};
use super::{json, Handled, ListBody};
use crate::catalog::ProductCatalog;
use crate::ids::ProductId;
use crate::Deps;

/// `GET /api/v1/products?limit=&cursor=`
pub async fn list_products<S: ProductCatalog>(request: Request, deps: &Deps<S>) -> Handled {
    let page = deps.store.products(page_request(&request)?).await?;
    json(StatusCode::OK, &ListBody { items: &page.items, next_cursor: page.next.as_ref().map(|c| c.as_str()) })
}

/// `GET /api/v1/products/{productId}`
pub async fn get_product<S: ProductCatalog>(request: Request, deps: &Deps<S>) -> Handled {
    let id: ProductId = path_id(&request, "productId")?;
    json(StatusCode::OK, &deps.store.product(id).await?)
}
