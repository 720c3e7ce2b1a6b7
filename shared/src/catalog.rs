//! The product catalogue: products with a price and a stock. Customers read it;
//! payment takes stock; operators create products, change their name and price, and
//! restock them ([`CatalogAdmin`]).
//!
//! A product's stock may be held in buckets ([`Product::buckets`]), each a partition of
//! its own, so that a rush on one product is not capped by what one item takes
//! ([`crate::shards`] says why and how many). The stock shown is the buckets' sum; a
//! payment takes a line from one bucket, or from several when none holds it alone, and
//! is out of stock only when the buckets together cannot cover it; a restock levels the
//! buckets and a refund puts the stock back into one.

use std::future::Future;

use crate::ids::{IdempotencyKey, ProductId};
use crate::money::Money;
use crate::pagination::{Cursor, Page, PageRequest};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    /// Units in stock, over every bucket.
    pub stock: u64,
    /// How many buckets the stock is held in, each taking payments on its own (1 to
    /// 64). Set when the product is made, never changed.
    #[schema(minimum = 1, maximum = 64)]
    pub buckets: u32,
}

/// What an order copies from a product when it is placed: the stock is taken only when
/// it is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductTerms {
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
}

/// A name shown to customers (a product's, a coupon's): 1 to 200 characters, no
/// control characters, no invisible ones that change how the text around them reads
/// ([`INVISIBLE`]), no blank edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(text: &str) -> Result<DisplayName, &'static str> {
        if text.trim().is_empty() {
            return Err("must not be empty");
        }
        if text.trim() != text {
            return Err("must not start or end with spaces");
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 200 characters");
        }
        if text.chars().any(char::is_control) {
            return Err("must not hold control characters");
        }
        if text.chars().any(is_invisible) {
            return Err("must not hold invisible characters (bidirectional controls, zero-width ones)");
        }
        Ok(DisplayName(text.to_owned()))
    }

    /// The JSON Schema pattern of a name, built from the same character classes the
    /// parser refuses: no blank edges, no control characters, none of [`INVISIBLE`].
    pub fn pattern() -> String {
        let invisible: String = INVISIBLE
            .iter()
            .map(|&(from, to)| {
                if from == to {
                    format!("\\u{:04x}", from as u32)
                } else {
                    format!("\\u{:04x}-\\u{:04x}", from as u32, to as u32)
                }
            })
            .collect();
        let refused = format!("\\x00-\\x1f\\x7f-\\x9f{invisible}");
        format!("^[^\\s{refused}]([^{refused}]*[^\\s{refused}])?$")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that change how the text around them is shown without showing
/// themselves: the Arabic letter mark, zero-width spaces, joiners and the
/// left-to-right and right-to-left marks, bidirectional embeddings and overrides, the
/// word joiner and invisible operators, bidirectional isolates, and the byte-order
/// mark. A name holding one can read as another (`"\u{202e}evil"` shows reversed).
pub const INVISIBLE: &[(char, char)] = &[
    ('\u{061c}', '\u{061c}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{2069}'),
    ('\u{feff}', '\u{feff}'),
];

fn is_invisible(c: char) -> bool {
    INVISIBLE.iter().any(|&(from, to)| (from..=to).contains(&c))
}

impl<'de> serde::Deserialize<'de> for DisplayName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DisplayName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How much one restock may add (and a new product start with).
pub const MAX_STOCK_CHANGE: u64 = 1_000_000;
/// The most stock a product may hold.
pub const MAX_STOCK: u64 = 1_000_000_000;

/// A product an operator creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: DisplayName,
    pub price: Money,
    pub stock: u64,
    /// 1 to [`crate::shards::MAX_SHARDS`] ([`crate::shards::default_shards`] of the
    /// stock when the operator does not say). A product made empty may ask for buckets
    /// for the stock it will get.
    pub buckets: u32,
}

impl NewProduct {
    /// What an idempotent retry must repeat for its key to be honoured. The buckets are
    /// named only when the operator chose other than the default, so a key used before
    /// products had buckets still matches its retry.
    pub fn fingerprint(&self) -> String {
        let terms = format!("PRODUCT:{}:{}:{}", self.name.as_str(), self.price, self.stock);
        if self.buckets == crate::shards::default_shards(self.stock) {
            terms
        } else {
            format!("{terms}:{}", self.buckets)
        }
    }
}

/// A change of a product's name or price (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductChange {
    pub name: Option<DisplayName>,
    pub price: Option<Money>,
}

/// An operator's answer that may come from an earlier request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed<T> {
    pub value: T,
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("product {0} would hold more stock than it can count")]
    StockLimitExceeded(ProductId),
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
    /// Several products, in the order asked, in one read where the store allows; an id
    /// with no product is `UnknownProduct`.
    fn products_by_id(&self, ids: &[ProductId]) -> impl Future<Output = Result<Vec<Product>, CatalogError>> + Send {
        async move {
            let mut products = Vec::with_capacity(ids.len());
            for id in ids {
                products.push(self.product(*id).await?);
            }
            Ok(products)
        }
    }
    fn products(&self, page: PageRequest) -> impl Future<Output = Result<Page<Product>, CatalogError>> + Send;
}

/// What operators do to the catalogue. Restocking is one atomic `ADD`, exact while
/// payments take stock from the same item at the same moment.
pub trait CatalogAdmin: Send + Sync {
    /// Creates a product with the next free id; with a key, a retry returns the first.
    fn create_product(
        &self,
        product: NewProduct,
        key: Option<IdempotencyKey>,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Keyed<Product>, CatalogError>> + Send;
    fn change_product(
        &self,
        id: ProductId,
        change: ProductChange,
    ) -> impl Future<Output = Result<Product, CatalogError>> + Send;
    /// Adds `add` to the stock; the product as it is afterwards. With a key the stock
    /// is added once; a retry answers the product as it is then.
    fn restock(
        &self,
        id: ProductId,
        add: u64,
        key: Option<IdempotencyKey>,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Keyed<Product>, CatalogError>> + Send;
}

/// The cursor of a product page that ended at `id`.
pub fn cursor_after(id: ProductId) -> Cursor {
    Cursor::encode(&format!("p:{id}"))
}

/// The product id a cursor points after.
pub fn cursor_product(cursor: &Cursor) -> Option<ProductId> {
    cursor.position().strip_prefix("p:").and_then(|id| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_short_printable_and_trimmed() {
        assert_eq!(DisplayName::parse("Kettle, 1.7 l").unwrap().as_str(), "Kettle, 1.7 l");
        for bad in ["", "   ", " Kettle", "Kettle ", "a\u{0}b", "line\nbreak", "\u{202e}evil", "\u{200b}", "a\u{2066}b"]
        {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn the_documented_pattern_names_every_refused_character() {
        let pattern = DisplayName::pattern();
        assert!(pattern.starts_with(r"^[^\s\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e"), "{pattern}");
        assert!(pattern.contains(r"\u2066-\u2069\ufeff]"), "{pattern}");
    }
}
