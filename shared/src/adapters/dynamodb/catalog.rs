//! The catalogue on DynamoDB. Products live at `PRODUCT#<id>` / `PRODUCT` and are
//! listed in id order through `gsi1` by a listing item of their own
//! (`PRODUCT#<id>` / `LISTING`: the id and the index keys; keys in [`super::keys`]). The
//! index holds nothing a payment, a refund or a restock changes, so stock moves write
//! no index entry: every product's entry is in one index partition, which would
//! otherwise take every stock change of the shop (about 1,000 a second on AWS). A list
//! page is the index's ids, then the products themselves in one `BatchGetItem`. Products
//! made before listings carry the index keys on the product item; they are listed the
//! same way (and their stock changes still write their index entry).
//!
//! A product of one bucket holds its stock on its own item (`stock`). A product of
//! more (`buckets` on its item) holds it in `PRODUCT#<id>#<k>` / `STOCK` items, each a
//! partition of its own; its stock is their sum, read in one `BatchGetItem` with the
//! products. The product item keeps what the stock invariant needs either way:
//! `initialStock` and `restocked`. A restock levels the buckets in one transaction with
//! the product's `restocked`; a payment takes and a refund gives back in the payment's
//! transaction ([`super::payment`]).

use anyhow::anyhow;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure, Update};

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ConditionCheck;

use super::counters::{Created, NumberedKey};
use super::idempotency::{KeyReused, Record, Target};
use super::keys::{self, KeyScope, PRODUCTS_GSI1PK};
use super::transaction::Transaction;
use super::{db_error, get_money, get_s, get_u64, n, s, DbError, DynamoStore, Item};
use crate::catalog::{
    cursor_after, cursor_product, CatalogAdmin, CatalogError, Keyed, NewProduct, Product, ProductCatalog,
    ProductChange, ProductTerms, MAX_STOCK,
};
use crate::ids::{IdempotencyKey, ProductId};
use crate::money::Money;
use crate::pagination::{Page, PageRequest};
use crate::shards;

impl From<DbError> for CatalogError {
    fn from(err: DbError) -> CatalogError {
        match err {
            DbError::Unavailable(e) => CatalogError::Unavailable(e),
            DbError::Other(e) => CatalogError::Unexpected(e),
        }
    }
}

impl ProductCatalog for DynamoStore {
    /// One strongly consistent read: the product's item, or (its buckets known to this
    /// process: they never change) one `BatchGetItem` of the item and its buckets; the
    /// first read of a product in buckets reads them next.
    async fn product(&self, id: ProductId) -> Result<Product, CatalogError> {
        let known = self.stock_buckets.read().unwrap_or_else(|p| p.into_inner()).get(&id).copied();
        if let Some(buckets) = known.filter(|buckets| *buckets > 1) {
            let wanted: Vec<keys::Key> =
                std::iter::once(keys::product(id)).chain((0..buckets).map(|k| keys::stock_bucket(id, k))).collect();
            let found = self.get_many(&wanted, || format!("get product {id} and its stock buckets")).await?;
            let item = found.get(&wanted[0]).ok_or(CatalogError::UnknownProduct(id))?;
            let levels = levels_in(&found, id, buckets).map_err(DbError::Other)?;
            let product = self.with_levels(item, &levels)?;
            self.hint_levels(id, levels);
            return Ok(product);
        }
        let item = self.get(&keys::product(id), || format!("get product {id}")).await?;
        let item = item.ok_or(CatalogError::UnknownProduct(id))?;
        Ok(self.with_stock(&[&item]).await?.remove(0))
    }

    /// One `BatchGetItem` of the products, and one of the buckets of those that have
    /// them, instead of a `GetItem` each.
    async fn products_by_id(&self, ids: &[ProductId]) -> Result<Vec<Product>, CatalogError> {
        let wanted: Vec<keys::Key> = ids.iter().map(|id| keys::product(*id)).collect();
        let found = self.get_many(&wanted, || format!("get products {ids:?}")).await?;
        let items = ids
            .iter()
            .zip(&wanted)
            .map(|(id, key)| found.get(key).ok_or(CatalogError::UnknownProduct(*id)))
            .collect::<Result<Vec<&Item>, _>>()?;
        Ok(self.with_stock(&items).await?)
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
            Ok(product_items(id, product.name.as_str(), product.price, product.stock, product.buckets))
        };
        // The product as this request made it. A replay (the same request: its
        // fingerprint matched) answers the same, whatever happened to the product since.
        let made = |product_id| Product {
            product_id,
            name: product.name.as_str().to_owned(),
            price: product.price,
            stock: product.stock,
            buckets: product.buckets.max(1),
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
            Ok(output) => Ok(self.with_stock(&[&output.attributes.unwrap_or_default()]).await?.remove(0)),
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
        let buckets = self.buckets_of(&[id]).await?.get(&id).copied().ok_or(CatalogError::UnknownProduct(id))?;
        if buckets > 1 {
            return self.restock_buckets(id, buckets, add, key, now).await;
        }
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
                    Ok(Keyed { value: stock_holder(&output.attributes.unwrap_or_default())?, replayed: false })
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        Err(restock_refused(id, failed.item().is_some()))
                    }
                    _ => Err(db_error(err, || format!("restock product {id} with {add}")).into()),
                },
            };
        };
        let fingerprint = restock_fingerprint(id, add);
        let record = |key| restock_record(id, add, key, now);
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
            let answered = answer_item(&answer);
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
            Some(answer) => stock_holder(answer)?,
            None => self.product(id).await?,
        };
        Ok(Keyed { value, replayed: true })
    }
}

impl DynamoStore {
    /// Restocks a product whose stock is in `buckets` buckets: one transaction adds to
    /// the product's `restocked` (while initial + restocked stays within [`MAX_STOCK`],
    /// which bounds the stock) and levels the buckets as read
    /// ([`shards::level_up`]). With a key, the answer is known from the buckets as read
    /// and kept with the key, the commit holding only while every bucket is still as
    /// read; after a few tries (a rush on the product) it is restocked blind, as
    /// without a key, and answered as it is then.
    async fn restock_buckets(
        &self,
        id: ProductId,
        buckets: u32,
        add: u64,
        key: Option<IdempotencyKey>,
        now: time::OffsetDateTime,
    ) -> Result<Keyed<Product>, CatalogError> {
        let fingerprint = restock_fingerprint(id, add);
        let record = |key| restock_record(id, add, key, now);
        let tries = if key.is_some() { SEEN_TRIES + 1 } else { 1 };
        for attempt in 0..tries {
            let from_seen = key.is_some() && attempt < SEEN_TRIES;
            let item = self.get(&keys::product(id), || format!("get product {id}")).await?;
            let item = item.ok_or(CatalogError::UnknownProduct(id))?;
            let initial = get_u64(&item, "initialStock")?;
            let room = MAX_STOCK.checked_sub(initial).and_then(|room| room.checked_sub(add));
            let Some(room) = room else { return Err(CatalogError::StockLimitExceeded(id)) };
            let levels = self.bucket_levels(id, buckets).await?;
            let seen = self.with_levels(&item, &levels)?;
            let adds = shards::level_up(&levels, add);

            let mut transaction = Transaction::new(format!("restock product {id} with {add}"));
            let product = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::product(id).item()))
                .update_expression("ADD restocked :add")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(restocked) OR restocked <= :room)",
                )
                .expression_attribute_values(":add", n(add))
                .expression_attribute_values(":room", n(room))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| anyhow!("build the restock: {e}"))?;
            transaction.update(RestockItem::Product, product);
            for (k, (level, more)) in levels.iter().zip(&adds).enumerate() {
                let bucket = keys::stock_bucket(id, k as u32);
                let condition =
                    if from_seen { "attribute_exists(pk) AND stock = :seen" } else { "attribute_exists(pk)" };
                if *more > 0 {
                    let mut update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(bucket.item()))
                        .update_expression("ADD stock :more")
                        .condition_expression(condition)
                        .expression_attribute_values(":more", n(more));
                    if from_seen {
                        update = update.expression_attribute_values(":seen", n(level));
                    }
                    transaction
                        .update(RestockItem::Bucket, update.build().map_err(|e| anyhow!("build the restock: {e}"))?);
                } else if from_seen {
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(bucket.item()))
                        .condition_expression(condition)
                        .expression_attribute_values(":seen", n(level))
                        .build()
                        .map_err(|e| anyhow!("build the restock: {e}"))?;
                    transaction.check(RestockItem::Bucket, check);
                }
            }
            let answer = Product { stock: seen.stock + add, ..seen };
            if let Some(key) = &key {
                let put = if from_seen {
                    record(key).put_answering(&self.table, answer_item(&answer))?
                } else {
                    record(key).put(&self.table)?
                };
                transaction.put(RestockItem::Key, put);
            }
            let outcome = self.transact(&transaction).await?;
            if outcome.is_ok() {
                // The buckets this process last saw are fuller now, by how much it may not know.
                self.forget_levels(id);
            }
            match outcome {
                Ok(()) if from_seen => return Ok(Keyed { value: answer, replayed: false }),
                Ok(()) => return Ok(Keyed { value: self.product(id).await?, replayed: false }),
                Err(refusal) if refusal.failed(RestockItem::Key) => {
                    let key = key.as_ref().expect("a key was claimed");
                    return self.replay_restock(id, key, &fingerprint).await;
                }
                Err(refusal) if refusal.failed(RestockItem::Product) => {
                    return Err(restock_refused(id, refusal.existed(RestockItem::Product)))
                }
                // A bucket moved since it was read: read them again.
                Err(_) if from_seen => continue,
                Err(refusal) => return Err(anyhow!("restocking product {id} was refused by {refusal:?}").into()),
            }
        }
        Err(anyhow!("restocking product {id}: every try was refused").into())
    }

    /// How many buckets hold the stock of each of `ids` that exists: remembered once
    /// read (it never changes), read in one `BatchGetItem` otherwise.
    pub(crate) async fn buckets_of(&self, ids: &[ProductId]) -> Result<HashMap<ProductId, u32>, DbError> {
        let mut known = HashMap::with_capacity(ids.len());
        let mut unknown = Vec::new();
        {
            let cached = self.stock_buckets.read().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                match cached.get(id) {
                    Some(buckets) => {
                        known.insert(*id, *buckets);
                    }
                    None => unknown.push(keys::product(*id)),
                }
            }
        }
        if !unknown.is_empty() {
            let found = self.get_many(&unknown, || format!("read how products {ids:?} hold their stock")).await?;
            for item in found.values() {
                let (terms, held) = terms_from_item(item).map_err(DbError::Other)?;
                known.insert(terms.product_id, self.remember(terms.product_id, &held));
            }
        }
        Ok(known)
    }

    /// The terms of a product's own item, noting how it holds its stock.
    pub(crate) fn product_terms(&self, item: &Item) -> Result<ProductTerms, DbError> {
        let (terms, held) = terms_from_item(item).map_err(DbError::Other)?;
        self.remember(terms.product_id, &held);
        Ok(terms)
    }

    /// Notes how a product read holds its stock; its number of buckets.
    fn remember(&self, id: ProductId, held: &Held) -> u32 {
        let buckets = held.buckets();
        self.stock_buckets.write().unwrap_or_else(|p| p.into_inner()).insert(id, buckets);
        buckets
    }

    /// The stock of each bucket of product `id`, in bucket order (strongly consistent).
    pub(crate) async fn bucket_levels(&self, id: ProductId, buckets: u32) -> Result<Vec<u64>, DbError> {
        let mut read = self.levels_of(&[(id, buckets)]).await?;
        Ok(read.remove(0).1)
    }

    /// The stock of each bucket of each of `products` (with its number of buckets), in
    /// one strongly consistent `BatchGetItem`.
    pub(crate) async fn levels_of(&self, products: &[(ProductId, u32)]) -> Result<Vec<(ProductId, Vec<u64>)>, DbError> {
        let wanted: Vec<keys::Key> =
            products.iter().flat_map(|&(id, n)| (0..n).map(move |k| keys::stock_bucket(id, k))).collect();
        let ids: Vec<ProductId> = products.iter().map(|(id, _)| *id).collect();
        let found = self.get_many(&wanted, || format!("read the stock buckets of products {ids:?}")).await?;
        products.iter().map(|&(id, n)| Ok((id, levels_in(&found, id, n).map_err(DbError::Other)?))).collect()
    }

    /// The products of `items` (their own items, as read) with their stock: the stock
    /// of those in buckets summed from one `BatchGetItem` of every bucket.
    pub(crate) async fn with_stock(&self, items: &[&Item]) -> Result<Vec<Product>, DbError> {
        let read: Vec<(ProductTerms, Held)> =
            items.iter().map(|item| terms_from_item(item)).collect::<anyhow::Result<_>>().map_err(DbError::Other)?;
        let wanted: Vec<keys::Key> = read
            .iter()
            .flat_map(|(terms, held)| match held {
                Held::Here(_) => Vec::new(),
                Held::Buckets(n) => (0..*n).map(|k| keys::stock_bucket(terms.product_id, k)).collect(),
            })
            .collect();
        let found = if wanted.is_empty() {
            HashMap::new()
        } else {
            self.get_many(&wanted, || format!("read the stock buckets of {} products", items.len())).await?
        };
        read.into_iter()
            .map(|(terms, held)| {
                self.remember(terms.product_id, &held);
                let stock = match held {
                    Held::Here(stock) => stock,
                    Held::Buckets(n) => {
                        let levels = levels_in(&found, terms.product_id, n).map_err(DbError::Other)?;
                        let stock = levels.iter().sum();
                        self.hint_levels(terms.product_id, levels);
                        stock
                    }
                };
                Ok(Product {
                    product_id: terms.product_id,
                    name: terms.name,
                    price: terms.price,
                    stock,
                    buckets: held.buckets(),
                })
            })
            .collect()
    }

    /// The product of `item` whose buckets hold `levels`.
    fn with_levels(&self, item: &Item, levels: &[u64]) -> Result<Product, DbError> {
        let (terms, held) = terms_from_item(item).map_err(DbError::Other)?;
        self.remember(terms.product_id, &held);
        Ok(Product {
            product_id: terms.product_id,
            name: terms.name,
            price: terms.price,
            stock: levels.iter().sum(),
            buckets: held.buckets(),
        })
    }
}

/// What a retry of a restock must repeat for its key to be honoured.
fn restock_fingerprint(id: ProductId, add: u64) -> String {
    format!("RESTOCK:{id}:{add}")
}

/// The record of `key` on a restock of `add` to product `id` at `now`.
fn restock_record(id: ProductId, add: u64, key: &IdempotencyKey, now: time::OffsetDateTime) -> Record<'_> {
    Record {
        scope: KeyScope::Operators,
        key,
        fingerprint: restock_fingerprint(id, add),
        target: Target::Product(id),
        entry: None,
        at: now,
    }
}

/// Adds to the stock and to the sum of restocks, together.
const RESTOCK: &str = "ADD stock :add, restocked :add";
const RESTOCK_CONDITION: &str = "attribute_exists(pk) AND stock <= :room";

/// The items of a keyed restock, or of a restock of buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestockItem {
    /// The product's own item: its stock, or (stock in buckets) its `restocked`.
    Product,
    Bucket,
    Key,
}

fn restock_refused(id: ProductId, existed: bool) -> CatalogError {
    if existed {
        CatalogError::StockLimitExceeded(id)
    } else {
        CatalogError::UnknownProduct(id)
    }
}

/// The stock of each of product `id`'s `buckets` buckets among the items `found`, in
/// bucket order; every one must be there.
fn levels_in(found: &HashMap<keys::Key, Item>, id: ProductId, buckets: u32) -> anyhow::Result<Vec<u64>> {
    (0..buckets)
        .map(|k| {
            let key = keys::stock_bucket(id, k);
            let bucket = found.get(&key).ok_or_else(|| anyhow!("product {id} lacks its bucket {}", key.pk))?;
            get_u64(bucket, "stock")
        })
        .collect()
}

/// Where a product's own item says its stock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// On the item: this much.
    Here(u64),
    /// In this many buckets.
    Buckets(u32),
}

impl Held {
    pub fn buckets(&self) -> u32 {
        match self {
            Held::Here(_) => 1,
            Held::Buckets(n) => *n,
        }
    }
}

/// A new product as it is stored: the product, its starting stock kept as
/// `initialStock` for the stock invariant (initial + restocked = stock + sold), its
/// listing in the catalogue's index, then (more than one bucket) its buckets, each
/// holding its share of the stock ([`shards::shard_total`]).
pub fn product_items(id: ProductId, name: &str, price: Money, stock: u64, buckets: u32) -> Vec<Item> {
    let buckets = buckets.max(1);
    let mut listing = keys::product_listing(id).item();
    listing.insert("productId".to_owned(), n(id));
    listing.insert("gsi1pk".to_owned(), s(PRODUCTS_GSI1PK));
    listing.insert("gsi1sk".to_owned(), s(keys::product_gsi1sk(id)));
    let mut product = keys::product(id).item();
    product.insert("productId".to_owned(), n(id));
    product.insert("name".to_owned(), s(name));
    product.insert("price".to_owned(), n(price));
    product.insert("initialStock".to_owned(), n(stock));
    product.insert("buckets".to_owned(), n(buckets));
    if buckets == 1 {
        product.insert("stock".to_owned(), n(stock));
    }
    let held = (0..buckets).filter(|_| buckets > 1).map(|k| {
        let mut bucket = keys::stock_bucket(id, k).item();
        bucket.insert("productId".to_owned(), n(id));
        bucket.insert("bucket".to_owned(), n(k));
        bucket.insert("stock".to_owned(), n(shards::shard_total(stock, buckets, k)));
        bucket
    });
    [product, listing].into_iter().chain(held).collect()
}

/// A product's own item: its terms, and where its stock is. An item without
/// `buckets` (stored before buckets) holds its stock.
pub fn terms_from_item(item: &Item) -> anyhow::Result<(ProductTerms, Held)> {
    let terms = ProductTerms {
        product_id: ProductId::new(get_u64(item, "productId")?).map_err(|e| anyhow!("productId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        price: get_money(item, "price")?,
    };
    let buckets = if item.contains_key("buckets") { get_u64(item, "buckets")? } else { 1 };
    let held = match buckets {
        0 => anyhow::bail!("product {} has 0 buckets", terms.product_id),
        1 => Held::Here(get_u64(item, "stock")?),
        n => Held::Buckets(u32::try_from(n).map_err(|_| anyhow!("product {}: {n} buckets", terms.product_id))?),
    };
    Ok((terms, held))
}

/// A keyed restock's answer, as kept with its key.
fn answer_item(product: &Product) -> Item {
    HashMap::from([
        ("productId".to_owned(), n(product.product_id)),
        ("name".to_owned(), s(&product.name)),
        ("price".to_owned(), n(product.price)),
        ("stock".to_owned(), n(product.stock)),
        ("buckets".to_owned(), n(product.buckets)),
    ])
}

/// A product from an item that holds its stock: the own item of a product of one
/// bucket, or a restock's answer kept with its key ([`answer_item`]).
fn stock_holder(item: &Item) -> anyhow::Result<Product> {
    let buckets = if item.contains_key("buckets") { get_u64(item, "buckets")? } else { 1 };
    Ok(Product {
        product_id: ProductId::new(get_u64(item, "productId")?).map_err(|e| anyhow!("productId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        price: get_money(item, "price")?,
        stock: get_u64(item, "stock")?,
        buckets: u32::try_from(buckets).map_err(|_| anyhow!("{buckets} buckets"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;

    #[test]
    fn a_product_round_trips_and_is_listed_by_a_listing_that_holds_no_stock() {
        let (id, price) = (ProductId::new(7).unwrap(), Money::parse("19.90").unwrap());
        let [item, listing] = <[Item; 2]>::try_from(product_items(id, "Kettle", price, 40, 1)).unwrap();
        assert_eq!((item["pk"].clone(), item["sk"].clone()), (s("PRODUCT#7"), s("PRODUCT")));
        assert!(!item.contains_key("gsi1pk"), "a stock change writes no index entry");
        assert_eq!((listing["pk"].clone(), listing["sk"].clone()), (s("PRODUCT#7"), s("LISTING")));
        assert_eq!(
            (listing["gsi1pk"].clone(), listing["gsi1sk"].clone()),
            (s(PRODUCTS_GSI1PK), s("00000000000000000007"))
        );
        assert!(!listing.contains_key("stock") && !listing.contains_key("price"), "{listing:?}");
        let (terms, held) = terms_from_item(&item).unwrap();
        assert_eq!((terms.product_id, terms.name.as_str(), terms.price, held), (id, "Kettle", price, Held::Here(40)));
        let mut before_buckets = item.clone();
        before_buckets.remove("buckets");
        assert_eq!(terms_from_item(&before_buckets).unwrap().1, Held::Here(40), "stored before buckets: one");
        let product = stock_holder(&item).unwrap();
        assert_eq!((product.stock, product.buckets), (40, 1));
    }

    #[test]
    fn a_product_in_buckets_holds_its_stock_in_shares_and_none_on_its_own_item() {
        let (id, price) = (ProductId::new(9).unwrap(), Money::parse("5.00").unwrap());
        let items = product_items(id, "Tea", price, 1_000, 16);
        assert_eq!(items.len(), 2 + 16);
        let (product, buckets) = (&items[0], &items[2..]);
        assert!(!product.contains_key("stock"), "{product:?}");
        assert_eq!((product["initialStock"].clone(), product["buckets"].clone()), (n(1_000), n(16)));
        assert_eq!(terms_from_item(product).unwrap().1, Held::Buckets(16));
        let mut shares = 0;
        for (k, bucket) in buckets.iter().enumerate() {
            assert_eq!((bucket["pk"].clone(), bucket["sk"].clone()), (s(format!("PRODUCT#9#{k}")), s("STOCK")));
            let share = get_u64(bucket, "stock").unwrap();
            assert!(share == 62 || share == 63, "{share}");
            shares += share;
        }
        assert_eq!(shares, 1_000);
        let answer = Product { product_id: id, name: "Tea".into(), price, stock: 1_010, buckets: 16 };
        assert_eq!(stock_holder(&answer_item(&answer)).unwrap(), answer, "a keyed restock's answer round-trips");
    }
}
