//! What these tests stand on: the real DynamoDB adapter over fresh tables of this test
//! binary's own engine (dynoxide, in this process on an ephemeral port), seeded as the
//! admin CLI seeds, and read back through the ports. No second copy of the rules.

// Each test file uses its own share of these.
#![allow(dead_code)]

use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::catalog::{Product, ProductCatalog};
use rushcart::coupons::{Coupon, IssuedCoupon, UserCoupons};
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::money::Money;
use rushcart::pagination::PageRequest;
use rushcart::top::SalesReader;
use rushcart_testkit::seed::{self, CouponSeed, ProductSeed};
use time::{Date, OffsetDateTime};

/// A store on tables of its own.
pub async fn store() -> DynamoStore {
    let client = rushcart_dynamodb::client(rushcart_dynamodb::shared()).await;
    let prefix = format!("t{}", ulid::Ulid::generate().to_string().to_lowercase());
    DynamoStore::provisioned(client, &prefix).await.expect("provision fresh tables")
}

/// A user whose opening balance is ledger entry 1 (none when it is zero).
pub async fn add_user(store: &DynamoStore, user: u64, balance: &str) {
    let user = (UserId::new(user).expect("a user id"), Money::parse(balance).expect("an amount"));
    seed::seed_users(store.client(), store.table(), &[user], OffsetDateTime::now_utc(), &|_| {})
        .await
        .expect("seed a user");
}

pub async fn add_product(store: &DynamoStore, product: Product) {
    let seed = ProductSeed {
        id: product.product_id,
        name: product.name,
        price: product.price,
        stock: product.stock,
        buckets: product.buckets,
    };
    seed::seed_products(store.client(), store.table(), &[seed]).await.expect("seed a product");
}

/// A coupon none of whose copies are issued yet.
pub async fn add_coupon(store: &DynamoStore, coupon: Coupon) {
    assert_eq!(coupon.issued, 0, "a seeded coupon starts with none issued");
    let seed = CouponSeed {
        id: coupon.id,
        name: coupon.name,
        discount: coupon.discount,
        total: coupon.total,
        ends_at: coupon.ends_at,
        shards: coupon.shards,
    };
    seed::seed_coupons(store.client(), store.table(), &[seed]).await.expect("seed a coupon");
}

/// A product's stock now, as the catalogue reads it.
pub async fn stock(store: &DynamoStore, product: ProductId) -> Option<u64> {
    store.product(product).await.ok().map(|p| p.stock)
}

/// The quantity of a product counted as sold on `day`.
pub async fn sold(store: &DynamoStore, day: Date, product: ProductId) -> u64 {
    let sales = store.sales(&[day]).await.expect("read the day's sales");
    sales.get(&product).copied().unwrap_or(0)
}

/// A user's copy of a coupon, as their coupon list shows it.
pub async fn copy(store: &DynamoStore, user: UserId, coupon: CouponId) -> Option<IssuedCoupon> {
    let held = store.user_coupons(user, PageRequest::first(100)).await.expect("read the user's coupons");
    held.items.into_iter().find(|copy| copy.coupon_id == coupon)
}
