//! Handlers of the catalogue routes.

use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::extract::{page_request, path_id};
use super::{json, ApiError, ListBody};
use crate::catalog::ProductCatalog;
use crate::ids::ProductId;
use crate::Deps;

/// `GET /api/v1/products?limit=&cursor=`
pub async fn list_products<S: ProductCatalog>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let page = deps.store.products(page_request(&request)?).await?;
        let body = ListBody { items: &page.items, next_cursor: page.next.as_ref().map(|c| c.as_str()) };
        Ok::<_, ApiError>(json(StatusCode::OK, &body))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `GET /api/v1/products/{productId}`
pub async fn get_product<S: ProductCatalog>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let id: ProductId = path_id(&request, "productId", "INVALID_PRODUCT_ID")?;
        let product = deps.store.product(id).await?;
        Ok::<_, ApiError>(json(StatusCode::OK, &product))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}
