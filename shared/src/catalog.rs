//! The product catalogue: products with a price and a stock, read-only for now
//! (stock is taken by payment).

use std::future::Future;

use crate::ids::ProductId;
use crate::money::Money;
use crate::pagination::{Cursor, Page, PageRequest};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    pub stock: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("cursor is not one this API issued")]
    BadCursor,
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Reads products one at a time and in id order.
pub trait ProductCatalog: Send + Sync {
    fn product(&self, id: ProductId) -> impl Future<Output = Result<Product, CatalogError>> + Send;
    fn products(&self, page: PageRequest) -> impl Future<Output = Result<Page<Product>, CatalogError>> + Send;
}

/// The cursor of a product page that ended at `id`.
pub fn cursor_after(id: ProductId) -> Cursor {
    Cursor::encode(&format!("p:{id}"))
}

/// The product id a cursor points after.
pub fn cursor_product(cursor: &Cursor) -> Option<ProductId> {
    cursor.position().strip_prefix("p:").and_then(|id| id.parse().ok())
}
