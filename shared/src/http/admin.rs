//! Handlers of the operator routes: the catalogue, coupons, and crediting a customer's
//! balance. The route table ([`super::routes`]) checks the operator role before any of
//! these runs; a customer's token gets 403 and nothing is written.

use http::StatusCode;
use lambda_http::Request;
use serde::Deserialize;
use time::OffsetDateTime;

use super::coupons::CouponBody;
use super::error::ErrorBody;
use super::extract::{idempotency_key, invalid, json_body, path_id};
use super::params::IdempotencyHeader;
use super::paths;
use super::{json, replayed, Handled};
use crate::balance::{use_cases as balance, BalanceLedger};
use crate::catalog::Product;
use crate::catalog::{CatalogAdmin, DisplayName, NewProduct, ProductChange, MAX_STOCK_CHANGE};
use crate::coupons::{default_shards, CouponAdmin, NewCoupon, MAX_SHARDS, MAX_TOTAL};
use crate::ids::{ProductId, UserId};
use crate::money::{Amount, Money};
use crate::Deps;

/// `{"name", "price", "stock", "buckets"?}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewProductRequest {
    name: DisplayName,
    #[schema(value_type = super::params::Price)]
    price: Money,
    #[schema(maximum = 1_000_000)]
    #[serde(deserialize_with = "crate::ids::count")]
    stock: u64,
    /// How many buckets hold the stock, each on a partition of its own (one takes about
    /// 500 payments a second): 1 to 64. Left out: 16 for a stock of 1,000 or more,
    /// else 1. Set once: a product expecting a rush it will be restocked for may ask
    /// for them while empty.
    #[serde(default, deserialize_with = "present_count")]
    #[schema(value_type = u64, required = false, minimum = 1, maximum = 64)]
    buckets: Option<u64>,
}

/// `{"name"?, "price"?}`: what to change, at least one of them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(min_properties = 1)]
struct ProductChangeRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = DisplayName, required = false)]
    name: Option<DisplayName>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = super::params::Price, required = false)]
    price: Option<Money>,
}

/// A field that may be left out but, when given, holds a value: `null` is refused
/// rather than read as "no change".
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// `{"add": n}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestockRequest {
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "crate::ids::count")]
    add: u64,
}

/// `{"name", "discount", "total", "endsAt", "shards"?}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewCouponRequest {
    name: DisplayName,
    discount: Amount,
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "crate::ids::count")]
    total: u64,
    /// When it stops being issued: in the future.
    #[serde(with = "time::serde::rfc3339")]
    ends_at: OffsetDateTime,
    /// How many counters share the total, each on a partition of its own (one takes
    /// about 500 issues a second): 1 to 64, at most the total. Left out: 16 for a
    /// total of 1,000 or more, else 1.
    #[serde(default, deserialize_with = "present_count")]
    #[schema(value_type = u64, required = false, minimum = 1, maximum = 64)]
    shards: Option<u64>,
}

/// A count that may be left out but not given as `null`.
fn present_count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    crate::ids::count(deserializer).map(Some)
}

/// `{"amount"}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChargeRequest {
    amount: Amount,
}

/// `POST /api/v1/admin/products` → 201 with the product and its new id.
#[utoipa::path(post, path = paths::ADMIN_PRODUCTS, tag = "operator", summary = "Create a product", params(IdempotencyHeader), request_body = NewProductRequest,
    responses(
        (status = 201, description = "Created, with its new id", body = Product,
            headers(
                ("Location" = String, description = "The product's URL"),
            )),
        (status = 400, description = "`INVALID_NAME`, `INVALID_AMOUNT` (the price), `INVALID_QUANTITY` (the stock, or the buckets)", body = ErrorBody),
        (status = 409, description = "`IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
    ))]
pub async fn create_product<S: CatalogAdmin>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let body: NewProductRequest = json_body(&request)?;
    if body.stock > MAX_STOCK_CHANGE {
        return Err(invalid("stock", format!("must be at most {MAX_STOCK_CHANGE}")));
    }
    let buckets = match body.buckets {
        None => default_shards(body.stock),
        Some(buckets) if (1..=u64::from(MAX_SHARDS)).contains(&buckets) => buckets as u32,
        Some(_) => return Err(invalid("buckets", format!("must be from 1 to {MAX_SHARDS}"))),
    };
    let product = NewProduct { name: body.name, price: body.price, stock: body.stock, buckets };
    let created = deps.store.create_product(product, key, deps.clock.now()).await?;
    let location = paths::fill(paths::PRODUCT, created.value.product_id);
    Ok(replayed(super::created(&location, &created.value)?, created.replayed))
}

/// `PUT /api/v1/admin/products/{productId}` → 200 with the product as changed. Orders
/// already made keep the prices they were made at. (A PUT is idempotent as it is:
/// repeating it changes nothing more.)
#[utoipa::path(put, path = paths::ADMIN_PRODUCT, tag = "operator", summary = "Rename or reprice a product", params(("productId" = ProductId, Path, description = "The product"), IdempotencyHeader), request_body = ProductChangeRequest,
    responses(
        (status = 200, description = "The product as changed; orders already made keep their prices", body = Product),
        (status = 400, description = "`INVALID_PRODUCT_ID`, `INVALID_NAME`, `INVALID_AMOUNT`, `INVALID_BODY` (changes nothing)", body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn change_product<S: CatalogAdmin>(request: Request, deps: &Deps<S>) -> Handled {
    let id: ProductId = path_id(&request, "productId")?;
    idempotency_key(&request)?;
    let body: ProductChangeRequest = json_body(&request)?;
    if body.name.is_none() && body.price.is_none() {
        return Err(invalid("body", "must change the name, the price or both"));
    }
    let product = deps.store.change_product(id, ProductChange { name: body.name, price: body.price }).await?;
    json(StatusCode::OK, &product)
}

/// `POST /api/v1/admin/products/{productId}/stock` `{"add": n}` → 200 with the new
/// stock. With an `Idempotency-Key`, the stock is added once; a retry answers the
/// product as it is then.
#[utoipa::path(post, path = paths::ADMIN_PRODUCT_STOCK, tag = "operator", summary = "Restock a product", params(("productId" = ProductId, Path, description = "The product"), IdempotencyHeader), request_body = RestockRequest,
    responses(
        (status = 200, description = "The product with its new stock", body = Product),
        (status = 400, description = "`INVALID_PRODUCT_ID`, `INVALID_QUANTITY`", body = ErrorBody),
        (status = 404, description = "`PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`STOCK_LIMIT_EXCEEDED`; `IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
    ))]
pub async fn restock<S: CatalogAdmin>(request: Request, deps: &Deps<S>) -> Handled {
    let id: ProductId = path_id(&request, "productId")?;
    let key = idempotency_key(&request)?;
    let body: RestockRequest = json_body(&request)?;
    if !(1..=MAX_STOCK_CHANGE).contains(&body.add) {
        return Err(invalid("add", format!("must be from 1 to {MAX_STOCK_CHANGE}")));
    }
    let restocked = deps.store.restock(id, body.add, key, deps.clock.now()).await?;
    Ok(replayed(json(StatusCode::OK, &restocked.value)?, restocked.replayed))
}

/// `POST /api/v1/admin/coupons` → 201 with the coupon and its new id; customers can
/// issue it from then on.
#[utoipa::path(post, path = paths::ADMIN_COUPONS, tag = "operator", summary = "Create a first-come coupon", params(IdempotencyHeader), request_body = NewCouponRequest,
    responses(
        (status = 201, description = "Created, with its new id; customers may issue it from now", body = CouponBody,
            headers(
                ("Location" = String, description = "The coupon's URL"),
            )),
        (status = 400, description = "`INVALID_NAME`, `INVALID_AMOUNT` (the discount), `INVALID_QUANTITY` (the total, or the shards), `INVALID_DATE` (`endsAt` not in the future)", body = ErrorBody),
        (status = 409, description = "`IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
    ))]
pub async fn create_coupon<S: CouponAdmin>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let body: NewCouponRequest = json_body(&request)?;
    let now = deps.clock.now();
    if !(1..=MAX_TOTAL).contains(&body.total) {
        return Err(invalid("total", format!("must be from 1 to {MAX_TOTAL}")));
    }
    if body.ends_at <= now {
        return Err(invalid("endsAt", "must be in the future"));
    }
    let shards = match body.shards {
        None => default_shards(body.total),
        Some(shards) if (1..=u64::from(MAX_SHARDS)).contains(&shards) && shards <= body.total => shards as u32,
        Some(_) => {
            return Err(invalid("shards", format!("must be from 1 to {MAX_SHARDS}, and no more than the total")))
        }
    };
    let coupon = NewCoupon {
        name: body.name,
        discount: body.discount.money(),
        total: body.total,
        ends_at: body.ends_at.to_offset(time::UtcOffset::UTC),
        shards,
    };
    let created = deps.store.create_coupon(coupon, key, now).await?;
    let location = paths::fill(paths::COUPON, created.value.id);
    Ok(replayed(super::created(&location, &CouponBody::from(&created.value))?, created.replayed))
}

/// `POST /api/v1/admin/users/{userId}/balance/charge` `{"amount"}`: an operator
/// credits a customer (a shop whose payment provider tops balances up).
#[utoipa::path(post, path = paths::ADMIN_BALANCE_CHARGE, tag = "operator", summary = "Credit a customer's balance",
    params(("userId" = UserId, Path, description = "The customer to credit"), IdempotencyHeader), request_body = ChargeRequest,
    responses(
        (status = 200, description = "Credited (a `CREDIT` entry)", body = super::balance::ChangeBody),
        (status = 400, description = "`INVALID_USER_ID`, `INVALID_AMOUNT`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`BALANCE_LIMIT_EXCEEDED`; `IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
    ))]
pub async fn charge_user_balance<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Handled {
    let user: UserId = path_id(&request, "userId")?;
    let key = idempotency_key(&request)?;
    let body: ChargeRequest = json_body(&request)?;
    let applied = balance::credit(&deps.store, deps.clock.as_ref(), user, body.amount, key).await?;
    super::balance::change_response(user, &applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_change_takes_what_it_names_and_refuses_null() {
        let change: ProductChangeRequest = serde_json::from_str(r#"{"price": "12.50"}"#).unwrap();
        assert_eq!((change.name, change.price.map(|p| p.to_string())), (None, Some("12.50".to_owned())));
        for body in [r#"{"name": null}"#, r#"{"price": null, "name": "Tea"}"#] {
            assert!(serde_json::from_str::<ProductChangeRequest>(body).is_err(), "{body}");
        }
    }
}
