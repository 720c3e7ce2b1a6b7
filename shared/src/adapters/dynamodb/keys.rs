//! Every key of the single-table design, in one place.
//!
//! # The main table
//!
//! One table, keys `pk` (S) and `sk` (S), on-demand, TTL on `expiresAt` (a number of
//! seconds; only idempotency records carry it). `gsi1` (`gsi1pk`, `gsi1sk`) lists a
//! kind of item in order.
//!
//! | item | pk | sk | gsi1 | written by | read by |
//! |---|---|---|---|---|---|
//! | user profile and balance, pending ledger entries | `USER#<userId>` | `PROFILE` | | seed, every balance change | balance, history, replay |
//! | ledger entry | `USER#<userId>` | `HIST#<seq, 20 digits>` | | balance changes (materialised) | history (Query, newest first), replay (by seq) |
//! | idempotency record | `USER#<userId>` (operators: `OPERATORS`) | `IDEM#<key>` | | keyed changes, orders, payments, operator writes | retries with the same key |
//! | a user's copy of a coupon | `USER#<userId>` | `COUPON#<couponId, 20 digits>` | | issue, payment (use), refund (unuse) | user's coupons, create order, payment, refund |
//! | product (and its stock, when unbucketed) | `PRODUCT#<productId>` | `PRODUCT` | (before listings: `PRODUCTS` / `<productId, 20 digits>`) | seed, operators, payment (stock) | catalogue |
//! | one bucket of a product's stock | `PRODUCT#<productId>#<bucket>` | `STOCK` | | seed, operators (restock), payment, refund | catalogue (sums them), payment (when its bucket was short) |
//! | a product's listing | `PRODUCT#<productId>` | `LISTING` | `PRODUCTS` / `<productId, 20 digits>` | seed, operators (created with the product) | catalogue (the index, in id order) |
//! | coupon | `COUPON#<couponId>` | `COUPON` | | seed, operators, issue (count, when unsharded) | get coupon, issue |
//! | one shard of a sharded coupon's count | `COUPON#<couponId>#<shard>` | `SHARD` | | operators, issue (count) | get coupon (sums them), issue |
//! | order, its bounded failure bookkeeping | `ORDER#<orderId>` | `ORDER` | `ORDERS#<userId>` / `<createdAt>#<orderId>` | create order, payment, cancel, refund | get order, payment, cancel, a user's orders (gsi1, newest first) |
//! | the successful payment of an order | `ORDER#<orderId>` | `PAYMENT#<paymentId>` | | payment, refund (marks it) | replay, audit |
//! | sales of a product on a day (UTC), on the paying order's shard | `SALES#<yyyy-mm-dd>#<0..16, by order>` (before sharding: `SALES#<yyyy-mm-dd>`) | `PRODUCT#<productId, 20 digits>` | | payment (`ADD quantity`), refund (takes it back from the day and shard paid) | top 5 (Query per day and partition) |
//! | the platform consumer's delivery mark | `DELIVERY#<orderId>:<TYPE>` (the event id) | `DATA_PLATFORM` | | feed consumer | feed consumer (dedup) |
//! | the next id of a kind | `COUNTER#<users, products, coupons>` | `COUNTER` | | sign-up and operators (`ADD next`), seeding (raises it) | the same |
//! | a signed-up identity's user | `IDENTITY#<sub>` | `IDENTITY` | | sign-up triggers | the token-claims trigger |
//!
//! # The outbox table
//!
//! | item | pk | sk | gsi1 | written by | read by |
//! |---|---|---|---|---|---|
//! | an event for the data platform | `ORDER#<orderId>` | `ORDER_PAID`, `ORDER_REFUNDED` | `PENDING#<0..16, by order>` / `<createdAt>#<eventId>` until published | payment, refund | relay (stream), sweeper (gsi1, every partition) |
//!
//! Numbers in sort keys are zero-padded to 20 digits so that they sort as numbers.

use std::collections::HashMap;

use super::{s, Item};
use crate::feed::EventType;
use crate::ids::{CouponId, IdempotencyKey, OrderId, PaymentId, ProductId, UserId};

/// A full primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: impl Into<String>) -> Key {
        Key { pk, sk: sk.into() }
    }

    /// The key as the attributes of a request (`Key`, or the start of an item).
    pub fn item(&self) -> Item {
        HashMap::from([("pk".to_owned(), s(&self.pk)), ("sk".to_owned(), s(&self.sk))])
    }

    /// The key of a stored item.
    pub fn of_item(item: &Item) -> anyhow::Result<Key> {
        Ok(Key { pk: super::get_s(item, "pk")?.to_owned(), sk: super::get_s(item, "sk")?.to_owned() })
    }
}

/// The sort-key prefix of a user's ledger entries.
pub const HISTORY_PREFIX: &str = "HIST#";
/// The sort-key prefix of a user's coupon copies.
pub const COUPON_COPY_PREFIX: &str = "COUPON#";
/// `gsi1pk` of every product.
pub const PRODUCTS_GSI1PK: &str = "PRODUCTS";
/// `gsi1pk` of an outbox event not yet published, before the index was sharded
/// ([`unpublished_gsi1pk`]); the sweeper still reads it.
pub const UNPUBLISHED_GSI1PK: &str = "PENDING";

/// How many partitions the outbox's unpublished index is spread over. Every payment and
/// refund writes its event's entry there and publishing removes it: two write units
/// each, so one partition would cap the shop near 500 payments a second.
pub const UNPUBLISHED_SHARDS: u32 = 16;

/// `gsi1pk` of an unpublished event of order `order`: `PENDING#<n>`, `n` picked by the
/// order's id, so one order's events share a partition.
pub fn unpublished_gsi1pk(order: &str) -> String {
    format!("{UNPUBLISHED_GSI1PK}#{}", spread(order, UNPUBLISHED_SHARDS))
}

/// Every partition of the unpublished index: the one written before it was sharded,
/// then each shard.
pub fn unpublished_partitions() -> Vec<String> {
    sharded(UNPUBLISHED_GSI1PK.to_owned(), UNPUBLISHED_SHARDS)
}

/// `base`, the partition written before it was sharded, then `base#0` … `base#<shards - 1>`.
fn sharded(base: String, shards: u32) -> Vec<String> {
    let each = (0..shards).map(|n| format!("{base}#{n}"));
    std::iter::once(base.clone()).chain(each).collect()
}

/// A shard in `0..shards` that depends on `text` alone (FNV-1a): the same on every
/// process and every release, so whatever reads a shard back finds it.
pub fn spread(text: &str, shards: u32) -> u32 {
    let hash = text
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    (hash % u64::from(shards.max(1))) as u32
}

/// `USER#<userId>`: every item of one user.
pub fn user_partition(user: UserId) -> String {
    format!("USER#{user}")
}

pub fn profile(user: UserId) -> Key {
    Key::new(user_partition(user), "PROFILE")
}

pub fn ledger_entry(user: UserId, seq: u64) -> Key {
    Key::new(user_partition(user), format!("{HISTORY_PREFIX}{seq:020}"))
}

pub use crate::ids::KeyScope;

pub fn idempotency_record(scope: impl Into<KeyScope>, key: &IdempotencyKey) -> Key {
    let partition = match scope.into() {
        KeyScope::User(user) => user_partition(user),
        KeyScope::Operators => "OPERATORS".to_owned(),
    };
    Key::new(partition, format!("IDEM#{}", key.as_str()))
}

/// A counter that hands out the next id of a kind (`users`, `products`, `coupons`).
pub fn counter(kind: &str) -> Key {
    Key::new(format!("COUNTER#{kind}"), "COUNTER")
}

/// Which shop user an identity provider's subject (`sub`) is.
pub fn identity(subject: &str) -> Key {
    Key::new(format!("IDENTITY#{subject}"), "IDENTITY")
}

pub fn coupon_copy(user: UserId, coupon: CouponId) -> Key {
    Key::new(user_partition(user), coupon_copy_sk(coupon))
}

/// The sort key every copy of one coupon has, whoever holds it.
pub fn coupon_copy_sk(coupon: CouponId) -> String {
    format!("{COUPON_COPY_PREFIX}{:020}", coupon.get())
}

pub fn product(id: ProductId) -> Key {
    Key::new(format!("PRODUCT#{id}"), "PRODUCT")
}

/// Bucket `k` of a product whose stock is held in buckets: a partition of its own.
pub fn stock_bucket(id: ProductId, k: u32) -> Key {
    Key::new(format!("PRODUCT#{id}#{k}"), "STOCK")
}

/// A product's entry in the catalogue's index: the product's id and the index keys,
/// nothing a payment or a restock changes.
pub fn product_listing(id: ProductId) -> Key {
    Key::new(format!("PRODUCT#{id}"), "LISTING")
}

/// `gsi1pk` of a user's orders.
pub fn user_orders_gsi1pk(user: UserId) -> String {
    format!("ORDERS#{user}")
}

/// `gsi1sk` of a product: its id, zero-padded, so the index lists in id order.
pub fn product_gsi1sk(id: ProductId) -> String {
    format!("{:020}", id.get())
}

pub fn coupon(id: CouponId) -> Key {
    Key::new(format!("COUPON#{id}"), "COUPON")
}

/// Shard `k` of a sharded coupon's count: a partition of its own.
pub fn coupon_shard(id: CouponId, k: u32) -> Key {
    Key::new(format!("COUPON#{id}#{k}"), "SHARD")
}

pub fn order(id: OrderId) -> Key {
    Key::new(format!("ORDER#{id}"), "ORDER")
}

pub fn payment(order: OrderId, payment: PaymentId) -> Key {
    Key::new(format!("ORDER#{order}"), format!("PAYMENT#{payment}"))
}

/// `SALES#2026-11-24`: every product's sales on one UTC day, as they were counted
/// before the day's figures were sharded ([`sales`]); still read.
pub fn sales_partition(day: time::Date) -> String {
    format!("SALES#{day}")
}

/// How many partitions a day's sales figures are spread over. Every payment adds its
/// lines to its order's shard (two write units each, in a transaction), so one hot
/// product's figure takes up to 16 × 500 payments a second, and the whole shop's lines
/// 16 partitions' worth.
pub const SALES_SHARDS: u32 = 16;

/// Every partition of `day`'s sales: the one before sharding, then each shard.
pub fn sales_partitions(day: time::Date) -> Vec<String> {
    sharded(sales_partition(day), SALES_SHARDS)
}

/// `product`'s sales figure of `day` on the shard order `of` counts on
/// (`SALES#<day>#<n>`, `n` picked by the order's id), or on the day's one partition for
/// an order paid before the figures were sharded (`None`).
pub fn sales(day: time::Date, product: ProductId, of: Option<OrderId>) -> Key {
    let partition = match of {
        Some(order) => format!("SALES#{day}#{}", spread(&order.to_string(), SALES_SHARDS)),
        None => sales_partition(day),
    };
    Key::new(partition, format!("PRODUCT#{:020}", product.get()))
}

/// An order's event of one type, in the outbox table.
pub fn order_event(order: OrderId, kind: EventType) -> Key {
    Key::new(format!("ORDER#{order}"), kind.as_str())
}

/// The outbox item of an event id (`<orderId>:<TYPE>`).
pub fn outbox_event(event_id: &str) -> Option<Key> {
    let (order, kind) = event_id.split_once(':')?;
    Some(Key::new(format!("ORDER#{order}"), kind))
}

/// The consumer's mark for one event's delivery to the data platform.
pub fn delivery(event_id: &str) -> Key {
    Key::new(format!("DELIVERY#{event_id}"), "DATA_PLATFORM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_days_sales_partitions_hold_every_orders_shard_and_the_one_before_shards() {
        let day = time::macros::date!(2026 - 11 - 24);
        let product = ProductId::new(3).unwrap();
        let partitions = sales_partitions(day);
        assert_eq!(partitions.len(), 1 + SALES_SHARDS as usize);
        assert_eq!(sales(day, product, None).pk, partitions[0]);
        assert_eq!(partitions[0], "SALES#2026-11-24");
        for _ in 0..200 {
            let pk = sales(day, product, Some(OrderId::generate())).pk;
            assert!(partitions[1..].contains(&pk), "{pk}");
        }
    }

    #[test]
    fn an_orders_events_share_one_of_the_unpublished_partitions_and_orders_spread_over_all() {
        assert_eq!(unpublished_gsi1pk("01JDQ3Z6Y0000000000000XYZ1"), unpublished_gsi1pk("01JDQ3Z6Y0000000000000XYZ1"));
        // Fixed forever: events written by one release are swept by the next.
        assert_eq!((spread("", 16), spread("a", 16), spread("01JDQ3Z6Y0000000000000XYZ1", 16)), (5, 12, 11));
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..2_000 {
            seen.insert(unpublished_gsi1pk(&crate::ids::OrderId::generate().to_string()));
            assert!(n < 1_000 || seen.len() == UNPUBLISHED_SHARDS as usize, "{seen:?}");
        }
        let partitions = unpublished_partitions();
        assert_eq!(partitions.len(), 1 + UNPUBLISHED_SHARDS as usize);
        assert!(seen.iter().all(|pk| partitions.contains(pk)) && partitions[0] == "PENDING");
    }

    #[test]
    fn numbers_in_sort_keys_sort_as_numbers() {
        let user = UserId::new(1).unwrap();
        assert!(ledger_entry(user, 9).sk < ledger_entry(user, 10).sk);
        assert_eq!(ledger_entry(user, 42).sk, "HIST#00000000000000000042");
        assert!(product_gsi1sk(ProductId::new(9).unwrap()) < product_gsi1sk(ProductId::new(10).unwrap()));
    }

    #[test]
    fn a_users_items_share_one_partition() {
        let user = UserId::new(7).unwrap();
        let key = IdempotencyKey::parse("k-1").unwrap();
        let coupon = CouponId::new(3).unwrap();
        for item in [profile(user), ledger_entry(user, 1), idempotency_record(user, &key), coupon_copy(user, coupon)] {
            assert_eq!(item.pk, "USER#7");
        }
        assert!(coupon_copy(user, coupon).sk.starts_with(COUPON_COPY_PREFIX));
        assert!(ledger_entry(user, 1).sk.starts_with(HISTORY_PREFIX));
    }
}
