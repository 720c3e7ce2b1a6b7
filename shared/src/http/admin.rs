//! Handlers of the operator routes: the catalogue, coupons, and crediting a customer's
//! balance. The route table ([`super::routes`]) checks the operator role before any of
//! these runs; a customer's token gets 403 and nothing is written.

use http::StatusCode;
use lambda_http::Request;
use serde::Deserialize;
use time::OffsetDateTime;

use super::coupons::CouponBody;
use super::extract::{idempotency_key, invalid, json_body, path_id};
use super::{json, replayed, Handled};
use crate::balance::{use_cases as balance, BalanceLedger};
use crate::catalog::{CatalogAdmin, DisplayName, NewProduct, ProductChange, MAX_STOCK_CHANGE};
use crate::coupons::{CouponAdmin, NewCoupon, MAX_TOTAL};
use crate::ids::{ProductId, UserId};
use crate::money::{Amount, Money};
use crate::Deps;

/// `{"name", "price", "stock"}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewProductRequest {
    name: DisplayName,
    price: Money,
    stock: u64,
}

/// `{"name"?, "price"?}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProductChangeRequest {
    name: Option<DisplayName>,
    price: Option<Money>,
}

/// `{"add": n}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestockRequest {
    add: u64,
}

/// `{"name", "discount", "total", "endsAt"}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewCouponRequest {
    name: DisplayName,
    discount: Amount,
    total: u64,
    #[serde(with = "time::serde::rfc3339")]
    ends_at: OffsetDateTime,
}

/// `{"amount"}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChargeRequest {
    amount: Amount,
}

/// `POST /api/v1/admin/products` → 201 with the product and its new id.
pub async fn create_product<S: CatalogAdmin>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let body: NewProductRequest = json_body(&request)?;
    if body.stock > MAX_STOCK_CHANGE {
        return Err(invalid("stock", format!("must be at most {MAX_STOCK_CHANGE}")));
    }
    let product = NewProduct { name: body.name, price: body.price, stock: body.stock };
    let created = deps.store.create_product(product, key, deps.clock.now()).await?;
    let location = super::routes::url_of::<super::routes::GetProduct>(created.value.product_id);
    Ok(replayed(super::created(&location, &created.value)?, created.replayed))
}

/// `PUT /api/v1/admin/products/{productId}` → 200 with the product as changed. Orders
/// already made keep the prices they were made at. (A PUT is idempotent as it is:
/// repeating it changes nothing more.)
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
    let coupon = NewCoupon {
        name: body.name,
        discount: body.discount.money(),
        total: body.total,
        ends_at: body.ends_at.to_offset(time::UtcOffset::UTC),
    };
    let created = deps.store.create_coupon(coupon, key, now).await?;
    let location = super::routes::url_of::<super::routes::GetCoupon>(created.value.id);
    Ok(replayed(super::created(&location, &CouponBody::from(&created.value))?, created.replayed))
}

/// `POST /api/v1/admin/users/{userId}/balance/charge` `{"amount"}`: an operator
/// credits a customer (a shop whose payment provider tops balances up).
pub async fn charge_user_balance<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Handled {
    let user: UserId = path_id(&request, "userId")?;
    let key = idempotency_key(&request)?;
    let body: ChargeRequest = json_body(&request)?;
    let applied = balance::credit(&deps.store, deps.clock.as_ref(), user, body.amount, key).await?;
    super::balance::change_response(user, &applied)
}
