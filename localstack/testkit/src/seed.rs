//! Bulk seeding for the admin CLI, the local run and the tests. Users get their
//! opening balance as ledger entry 1 (a CHARGE), written in the same transaction as
//! the profile, so seeded data obeys the ledger invariant from the start. Existing
//! items are never overwritten: seeding twice is harmless.

use anyhow::Context as _;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use time::OffsetDateTime;

use rushcart::adapters::dynamodb::identity::user_items;
use rushcart::adapters::dynamodb::Item;
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::money::Money;

/// At most 100 items per transaction; a user is two.
const USERS_PER_TRANSACTION: usize = 50;

/// Writes users with opening balances; returns how many were new. `progress` is called
/// with the number of users handled so far.
pub async fn seed_users(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    users: &[(UserId, Money)],
    at: OffsetDateTime,
    progress: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<usize> {
    let mut created = 0;
    for (done, chunk) in users.chunks(USERS_PER_TRANSACTION).enumerate() {
        match put_all_new(client, table, chunk.iter().flat_map(|(u, b)| user_items(*u, *b, at)).collect()).await {
            Ok(true) => created += chunk.len(),
            // Some already exist: fall back to one user at a time, skipping those.
            Ok(false) => {
                for (user, balance) in chunk {
                    if put_all_new(client, table, user_items(*user, *balance, at)).await? {
                        created += 1;
                    }
                }
            }
            Err(err) => return Err(err),
        }
        progress(done * USERS_PER_TRANSACTION + chunk.len());
    }
    raise_counter_to(client, table, "users", users.iter().map(|(user, _)| user.get())).await?;
    Ok(created)
}

/// Writes products unless they exist; returns how many were new. New products made
/// by operators get ids above these.
pub async fn seed_products(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    products: &[ProductSeed],
) -> anyhow::Result<usize> {
    let mut created = 0;
    for product in products {
        // A product and its listing, together.
        if put_all_new(client, table, product_items(product)).await? {
            created += 1;
        }
    }
    raise_counter_to(client, table, "products", products.iter().map(|p| p.id.get())).await?;
    Ok(created)
}

/// Writes coupons unless they exist; returns how many were new. New coupons made by
/// operators get ids above these.
pub async fn seed_coupons(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    coupons: &[CouponSeed],
) -> anyhow::Result<usize> {
    let mut created = 0;
    for coupon in coupons {
        // A coupon and its shards, together.
        if put_all_new(client, table, coupon_items(coupon)).await? {
            created += 1;
        }
    }
    raise_counter_to(client, table, "coupons", coupons.iter().map(|c| c.id.get())).await?;
    Ok(created)
}

async fn raise_counter_to(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    kind: &str,
    ids: impl Iterator<Item = u64>,
) -> anyhow::Result<()> {
    if let Some(max) = ids.max() {
        rushcart::adapters::dynamodb::counters::raise_counter(client, table, kind, max)
            .await
            .with_context(|| format!("raise the {kind} counter"))?;
    }
    Ok(())
}

pub struct ProductSeed {
    pub id: ProductId,
    pub name: String,
    pub price: Money,
    pub stock: u64,
    /// As an operator's creation would choose: `rushcart::shards::default_shards`.
    pub buckets: u32,
}

impl ProductSeed {
    /// A product whose stock is held as an operator's creation would hold it.
    pub fn new(id: ProductId, name: String, price: Money, stock: u64) -> ProductSeed {
        ProductSeed { id, name, price, stock, buckets: rushcart::shards::default_shards(stock) }
    }
}

/// The product's item, its listing and its buckets, as an operator's creation writes
/// them.
pub fn product_items(product: &ProductSeed) -> Vec<Item> {
    rushcart::adapters::dynamodb::catalog::product_items(
        product.id,
        &product.name,
        product.price,
        product.stock,
        product.buckets,
    )
}

pub struct CouponSeed {
    pub id: CouponId,
    pub name: String,
    pub discount: Money,
    pub total: u64,
    pub ends_at: OffsetDateTime,
    /// As an operator's creation would choose: `rushcart::coupons::default_shards`.
    pub shards: u32,
}

/// The coupon's item, then its shards' (as an operator's creation writes them).
pub fn coupon_items(coupon: &CouponSeed) -> Vec<Item> {
    rushcart::adapters::dynamodb::coupons::coupon_items(&rushcart::coupons::Coupon {
        id: coupon.id,
        name: coupon.name.clone(),
        discount: coupon.discount,
        total: coupon.total,
        issued: 0,
        ends_at: coupon.ends_at,
        shards: coupon.shards,
    })
}

/// Writes items one transaction at a time (≤ 100 each) unless they exist; returns how
/// many were new.
pub async fn seed_items(client: &aws_sdk_dynamodb::Client, table: &str, items: Vec<Item>) -> anyhow::Result<usize> {
    let mut created = 0;
    for item in items {
        if put_all_new(client, table, vec![item]).await? {
            created += 1;
        }
    }
    Ok(created)
}

/// A put of a new item (refused if its key exists) as a transaction item.
pub fn new_put(table: &str, item: Item) -> anyhow::Result<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Puts every item in one transaction if none exists; `Ok(false)` if one did.
async fn put_all_new(client: &aws_sdk_dynamodb::Client, table: &str, items: Vec<Item>) -> anyhow::Result<bool> {
    let writes = items.into_iter().map(|item| new_put(table, item)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut throttled = 0;
    loop {
        let err = match client.transact_write_items().set_transact_items(Some(writes.clone())).send().await {
            Ok(_) => return Ok(true),
            Err(err) => err,
        };
        let message = err
            .as_service_error()
            .filter(|e| e.is_transaction_canceled_exception())
            .map(|e| e.meta().message().unwrap_or_default().to_owned());
        match message {
            Some(message) if message.contains("ConditionalCheckFailed") => return Ok(false),
            // A partition past its limit (the capacity model, or DynamoDB itself): the
            // SDK does not retry a cancelled transaction, so the seed waits and does.
            Some(message) if message.contains("ThrottlingError") && throttled < SEED_THROTTLE_RETRIES => {
                throttled += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * throttled.min(20))).await;
            }
            _ => {
                return Err(anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err)))
                    .with_context(|| format!("seed items into {table}"))
            }
        }
    }
}

/// How often seeding tries a throttled transaction again (about a minute in all).
const SEED_THROTTLE_RETRIES: u64 = 60;
