//! The catalogue on DynamoDB. Products live at `PRODUCT#<id>` / `PRODUCT` and are
//! listed in id order through `gsi1` by a listing item of their own
//! (`PRODUCT#<id>` / `LISTING`: the id and the index keys; keys in [`super::keys`]). The
//! index holds nothing a payment, a refund or a restock changes, so stock moves write
//! no index entry: every product's entry is in one index partition, which would
//! otherwise take every stock change of the shop (about 1,000 a second on AWS). A list
//! page is the index's ids, then the products themselves in one `BatchGetItem`. Products
//! made before listings carry the index keys on the product item; they are listed the
//! same way (and their stock changes still write their index entry).

use anyhow::anyhow;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure, Update};

use super::counters::{Created, NumberedKey};
use super::idempotency::{KeyReused, Record, Target};
use super::keys::{self, KeyScope, PRODUCTS_GSI1PK};
use super::transaction::Transaction;
use super::{db_error, get_money, get_s, get_u64, n, s, DbError, DynamoStore, Item};
use crate::catalog::{
    cursor_after, cursor_product, CatalogAdmin, CatalogError, Keyed, NewProduct, Product, ProductCatalog,
    ProductChange, MAX_STOCK,
};
use crate::ids::{IdempotencyKey, ProductId};
use crate::money::Money;
use crate::pagination::{Page, PageRequest};

impl From<DbError> for CatalogError {
    fn from(err: DbError) -> CatalogError {
        match err {
            DbError::Unavailable(e) => CatalogError::Unavailable(e),
            DbError::Other(e) => CatalogError::Unexpected(e),
        }
    }
}

impl ProductCatalog for DynamoStore {
    async fn product(&self, id: ProductId) -> Result<Product, CatalogError> {
        let item = self.get(&keys::product(id), || format!("get product {id}")).await?;
        let item = item.ok_or(CatalogError::UnknownProduct(id))?;
        Ok(product_from_item(&item)?)
    }

    /// One `BatchGetItem` instead of a `GetItem` each.
    async fn products_by_id(&self, ids: &[ProductId]) -> Result<Vec<Product>, CatalogError> {
        let wanted: Vec<keys::Key> = ids.iter().map(|id| keys::product(*id)).collect();
        let found = self.get_many(&wanted, || format!("get products {ids:?}")).await?;
        ids.iter()
            .zip(&wanted)
            .map(|(id, key)| Ok(product_from_item(found.get(key).ok_or(CatalogError::UnknownProduct(*id))?)?))
            .collect()
    }

    async fn products(&self, page: PageRequest) -> Result<Page<Product>, CatalogError> {
        let after = match &page.cursor {
            None => None,
            Some(cursor) => Some(cursor_product(cursor).ok_or(CatalogError::BadCursor)?),
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .expression_attribute_values(":kind", s(PRODUCTS_GSI1PK))
            .projection_expression("productId")
            .limit(page.limit as i32 + 1);
        let query = match after {
            None => query.key_condition_expression("gsi1pk = :kind"),
            Some(after) => query
                .key_condition_expression("gsi1pk = :kind AND gsi1sk > :after")
                .expression_attribute_values(":after", s(keys::product_gsi1sk(after))),
        };
        let output = query.send().await.map_err(|e| db_error(e, || "list products".to_owned()))?;
        let ids: Vec<ProductId> = output
            .items()
            .iter()
            .map(|item| ProductId::new(get_u64(item, "productId")?).map_err(|e| anyhow!("productId: {e}")))
            .collect::<anyhow::Result<_>>()?;
        let products = if ids.is_empty() { Vec::new() } else { self.products_by_id(&ids).await? };
        Ok(Page::from_lookahead(products, page.limit, |p| cursor_after(p.product_id)))
    }
}

impl CatalogAdmin for DynamoStore {
    async fn create_product(
        &self,
        product: NewProduct,
        key: Option<IdempotencyKey>,
        now: time::OffsetDateTime,
    ) -> Result<Keyed<Product>, CatalogError> {
        let numbered = key.as_ref().map(|key| NumberedKey {
            scope: KeyScope::Operators,
            key,
            fingerprint: product.fingerprint(),
            target: |number| ProductId::new(number).ok().map(Target::Product),
            at: now,
        });
        let build = |number| {
            let id = ProductId::new(number).map_err(|e| DbError::Other(anyhow!("product id {number}: {e}")))?;
            Ok(product_items(id, product.name.as_str(), product.price, product.stock))
        };
        // The product as this request made it. A replay (the same request: its
        // fingerprint matched) answers the same, whatever happened to the product since.
        let made = |product_id| Product {
            product_id,
            name: product.name.as_str().to_owned(),
            price: product.price,
            stock: product.stock,
        };
        match self.create_numbered("products", build, numbered.as_ref()).await? {
            Err(KeyReused) => Err(CatalogError::IdempotencyKeyReused),
            Ok(Created::New(number)) => {
                let product_id = ProductId::new(number).map_err(|e| anyhow!("product id {number}: {e}"))?;
                Ok(Keyed { value: made(product_id), replayed: false })
            }
            Ok(Created::Replayed(stored)) => match stored.target {
                Target::Product(id) => Ok(Keyed { value: made(id), replayed: true }),
                _ => Err(CatalogError::IdempotencyKeyReused),
            },
        }
    }

    async fn change_product(&self, id: ProductId, change: ProductChange) -> Result<Product, CatalogError> {
        let mut sets = Vec::new();
        let mut request = self.client.update_item().table_name(&self.table).set_key(Some(keys::product(id).item()));
        if let Some(name) = &change.name {
            sets.push("#name = :name");
            request = request
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":name", s(name.as_str()));
        }
        if let Some(price) = change.price {
            sets.push("price = :price");
            request = request.expression_attribute_values(":price", n(price));
        }
        let updated = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match updated {
            Ok(output) => Ok(product_from_item(&output.attributes.unwrap_or_default())?),
            Err(err) if matches!(err.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
                Err(CatalogError::UnknownProduct(id))
            }
            Err(err) => Err(db_error(err, || format!("change product {id}")).into()),
        }
    }

    async fn restock(
        &self,
        id: ProductId,
        add: u64,
        key: Option<IdempotencyKey>,
        now: time::OffsetDateTime,
    ) -> Result<Keyed<Product>, CatalogError> {
        // One atomic ADD: exact beside the payments that take stock at the same time.
        // `restocked` keeps the sum of every restock, for the stock invariant.
        let room = MAX_STOCK.saturating_sub(add);
        let Some(key) = key else {
            let updated = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(keys::product(id).item()))
                .update_expression(RESTOCK)
                .condition_expression(RESTOCK_CONDITION)
                .expression_attribute_values(":add", n(add))
                .expression_attribute_values(":room", n(room))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            return match updated {
                Ok(output) => {
                    Ok(Keyed { value: product_from_item(&output.attributes.unwrap_or_default())?, replayed: false })
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        Err(restock_refused(id, failed.item().is_some()))
                    }
                    _ => Err(db_error(err, || format!("restock product {id} with {add}")).into()),
                },
            };
        };
        let fingerprint = format!("RESTOCK:{id}:{add}");
        let record = |key| Record {
            scope: KeyScope::Operators,
            key,
            fingerprint: fingerprint.clone(),
            target: Target::Product(id),
            entry: None,
            at: now,
        };
        // From the product as read, the answer is known before the commit and kept
        // with the key, so a replay answers exactly it; the commit holds only while the
        // product is still as read. A product whose stock keeps moving (a rush on it)
        // is restocked blind after a few tries: then a replay answers it as it is.
        for _ in 0..SEEN_TRIES {
            let seen = self.product(id).await?;
            let after = seen.stock.checked_add(add).filter(|after| *after <= MAX_STOCK);
            let Some(after) = after else { return Err(CatalogError::StockLimitExceeded(id)) };
            let answer = Product { stock: after, ..seen.clone() };
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::product(id).item()))
                .update_expression("SET stock = :after ADD restocked :add")
                .condition_expression("stock = :seen AND price = :price AND #name = :name")
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":after", n(after))
                .expression_attribute_values(":add", n(add))
                .expression_attribute_values(":seen", n(seen.stock))
                .expression_attribute_values(":price", n(seen.price))
                .expression_attribute_values(":name", s(&seen.name))
                .build()
                .map_err(|e| anyhow!("build the restock: {e}"))?;
            let answered = product_item(id, &answer.name, answer.price, answer.stock);
            let mut transaction = Transaction::new(format!("restock product {id} with {add}"));
            transaction.update(RestockItem::Product, update);
            transaction.put(RestockItem::Key, record(&key).put_answering(&self.table, answered)?);
            match self.transact(&transaction).await? {
                Ok(()) => return Ok(Keyed { value: answer, replayed: false }),
                Err(refusal) if refusal.failed(RestockItem::Key) => {
                    return self.replay_restock(id, &key, &fingerprint).await
                }
                // The product changed since it was read: read it again.
                Err(_) => continue,
            }
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::product(id).item()))
            .update_expression(RESTOCK)
            .condition_expression(RESTOCK_CONDITION)
            .expression_attribute_values(":add", n(add))
            .expression_attribute_values(":room", n(room))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| anyhow!("build the restock: {e}"))?;
        let mut transaction = Transaction::new(format!("restock product {id} with {add}"));
        transaction.update(RestockItem::Product, update);
        transaction.put(RestockItem::Key, record(&key).put(&self.table)?);
        match self.transact(&transaction).await? {
            Ok(()) => Ok(Keyed { value: self.product(id).await?, replayed: false }),
            Err(refusal) if refusal.failed(RestockItem::Key) => self.replay_restock(id, &key, &fingerprint).await,
            Err(refusal) => Err(restock_refused(id, refusal.existed(RestockItem::Product))),
        }
    }
}

/// How many times a keyed restock tries from the product as read.
const SEEN_TRIES: usize = 3;

impl DynamoStore {
    /// The answer of the restock `key` made first: kept with the key, or (a restock
    /// made blind) the product as it is now.
    async fn replay_restock(
        &self,
        id: ProductId,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Keyed<Product>, CatalogError> {
        let stored = match self.idempotency_record(KeyScope::Operators, key, fingerprint).await? {
            Ok(stored) if stored.target == Target::Product(id) => stored,
            _ => return Err(CatalogError::IdempotencyKeyReused),
        };
        let value = match &stored.answer {
            Some(answer) => product_from_item(answer)?,
            None => self.product(id).await?,
        };
        Ok(Keyed { value, replayed: true })
    }
}

/// Adds to the stock and to the sum of restocks, together.
const RESTOCK: &str = "ADD stock :add, restocked :add";
const RESTOCK_CONDITION: &str = "attribute_exists(pk) AND stock <= :room";

/// The items of a keyed restock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestockItem {
    Product,
    Key,
}

fn restock_refused(id: ProductId, existed: bool) -> CatalogError {
    if existed {
        CatalogError::StockLimitExceeded(id)
    } else {
        CatalogError::UnknownProduct(id)
    }
}

/// A new product as it is stored: the product, its starting stock kept as
/// `initialStock` for the stock invariant (initial + restocked = stock + sold), then its
/// listing in the catalogue's index.
pub fn product_items(id: ProductId, name: &str, price: Money, stock: u64) -> Vec<Item> {
    let mut listing = keys::product_listing(id).item();
    listing.insert("productId".to_owned(), n(id));
    listing.insert("gsi1pk".to_owned(), s(PRODUCTS_GSI1PK));
    listing.insert("gsi1sk".to_owned(), s(keys::product_gsi1sk(id)));
    vec![product_item(id, name, price, stock), listing]
}

/// A product's own item, as [`product_items`] makes it (and a keyed restock answers
/// it).
pub fn product_item(id: ProductId, name: &str, price: Money, stock: u64) -> Item {
    let mut item = keys::product(id).item();
    item.insert("productId".to_owned(), n(id));
    item.insert("name".to_owned(), s(name));
    item.insert("price".to_owned(), n(price));
    item.insert("stock".to_owned(), n(stock));
    item.insert("initialStock".to_owned(), n(stock));
    item
}

pub fn product_from_item(item: &Item) -> anyhow::Result<Product> {
    Ok(Product {
        product_id: ProductId::new(get_u64(item, "productId")?).map_err(|e| anyhow!("productId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        price: get_money(item, "price")?,
        stock: get_u64(item, "stock")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;

    #[test]
    fn a_product_round_trips_and_is_listed_by_a_listing_that_holds_no_stock() {
        let (id, price) = (ProductId::new(7).unwrap(), Money::parse("19.90").unwrap());
        let [item, listing] = <[Item; 2]>::try_from(product_items(id, "Kettle", price, 40)).unwrap();
        assert_eq!((item["pk"].clone(), item["sk"].clone()), (s("PRODUCT#7"), s("PRODUCT")));
        assert!(!item.contains_key("gsi1pk"), "a stock change writes no index entry");
        assert_eq!((listing["pk"].clone(), listing["sk"].clone()), (s("PRODUCT#7"), s("LISTING")));
        assert_eq!(
            (listing["gsi1pk"].clone(), listing["gsi1sk"].clone()),
            (s(PRODUCTS_GSI1PK), s("00000000000000000007"))
        );
        assert!(!listing.contains_key("stock") && !listing.contains_key("price"), "{listing:?}");
        let product = product_from_item(&item).unwrap();
        assert_eq!(
            (product.product_id, product.name.as_str(), product.price, product.stock),
            (id, "Kettle", price, 40)
        );
    }
}
