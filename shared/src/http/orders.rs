//! Handlers of the order and payment routes.

use std::collections::BTreeMap;

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::extract::{acting_user, idempotency_key, json_object, parse_raw_id, path_id};
use super::{json, serialize_time, ApiError};
use crate::catalog::ProductCatalog;
use crate::ids::{CouponId, OrderId, PaymentId, ProductId, Quantity, UserId};
use crate::money::Money;
use crate::orders::{
    use_cases, Order, OrderLine, OrderPayer, OrderRequest, OrderStatus, OrderStore, Paid, Payment, PaymentStatus,
    MAX_LINES,
};
use crate::Deps;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderBody<'a> {
    order_id: OrderId,
    user_id: UserId,
    status: OrderStatus,
    lines: &'a [OrderLine],
    subtotal: Money,
    discount: Money,
    total: Money,
    coupon_id: Option<CouponId>,
    #[serde(serialize_with = "serialize_time")]
    created_at: OffsetDateTime,
    #[serde(serialize_with = "optional_time")]
    paid_at: Option<OffsetDateTime>,
    payment_id: Option<PaymentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payments: Option<Vec<PaymentBody>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentBody {
    payment_id: PaymentId,
    status: PaymentStatus,
    amount: Money,
    reason: Option<String>,
    #[serde(serialize_with = "serialize_time")]
    created_at: OffsetDateTime,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaidBody {
    payment_id: PaymentId,
    order_id: OrderId,
    user_id: UserId,
    status: PaymentStatus,
    amount: Money,
    balance_after: Money,
    #[serde(serialize_with = "serialize_time")]
    paid_at: OffsetDateTime,
}

fn optional_time<S: serde::Serializer>(at: &Option<OffsetDateTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_time(at, serializer),
        None => serializer.serialize_none(),
    }
}

fn order_body<'a>(order: &'a Order, payments: Option<&[Payment]>) -> OrderBody<'a> {
    OrderBody {
        order_id: order.id,
        user_id: order.user,
        status: order.status,
        lines: &order.lines,
        subtotal: order.subtotal,
        discount: order.discount,
        total: order.total,
        coupon_id: order.coupon,
        created_at: order.created_at,
        paid_at: order.paid_at,
        payment_id: order.payment,
        payments: payments.map(|payments| {
            payments
                .iter()
                .map(|p| PaymentBody {
                    payment_id: p.id,
                    status: p.status,
                    amount: p.amount,
                    reason: p.reason.clone(),
                    created_at: p.at,
                })
                .collect()
        }),
    }
}

fn replayed(mut response: Response<Body>, replayed: bool) -> Response<Body> {
    if replayed {
        response.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
    }
    response
}

/// Parses `{"userId", "products": [{"productId", "quantity"}], "couponId"?}`. Lines for
/// the same product are merged (their quantities added).
fn order_request(request: &Request) -> Result<OrderRequest, ApiError> {
    let user = acting_user(request)?;
    let body = json_object(request)?;
    let invalid = |message: String| ApiError::bad_request("INVALID_PRODUCTS", message);
    let raw = body.raw("products").ok_or_else(|| invalid("products is required".into()))?;
    let lines: Vec<std::collections::HashMap<String, Box<RawValue>>> = serde_json::from_str(raw)
        .map_err(|_| invalid("products must be a list of {\"productId\", \"quantity\"} objects".into()))?;
    if lines.is_empty() {
        return Err(invalid("products must not be empty".into()));
    }
    let mut merged: BTreeMap<ProductId, u64> = BTreeMap::new();
    for line in &lines {
        let product = line.get("productId").ok_or_else(|| invalid("every line needs a productId".into()))?;
        let product: ProductId = parse_raw_id(product.get(), "productId", "INVALID_PRODUCT_ID")?;
        let quantity = line.get("quantity").ok_or_else(|| invalid("every line needs a quantity".into()))?.get();
        let quantity: u64 = quantity.parse().ok().filter(|q| *q >= 1).ok_or_else(|| {
            ApiError::bad_request("INVALID_QUANTITY", format!("quantity {quantity} must be a positive integer"))
        })?;
        let total = merged.entry(product).or_default();
        *total = total.saturating_add(quantity);
    }
    if merged.len() > MAX_LINES {
        return Err(invalid(format!("an order holds at most {MAX_LINES} different products")));
    }
    let lines = merged
        .into_iter()
        .map(|(product, quantity)| {
            Quantity::new(quantity).map(|q| (product, q)).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_QUANTITY",
                    format!("quantity of product {product} must be at most {}", Quantity::MAX),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let coupon = body.id("couponId", "INVALID_COUPON_ID")?;
    Ok(OrderRequest { user, lines, coupon })
}

/// `POST /api/v1/orders`
pub async fn create_order<S: OrderStore + ProductCatalog>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let key = idempotency_key(&request)?;
        let order = order_request(&request)?;
        let placed = use_cases::create_order(&deps.store, deps.clock.as_ref(), order, key).await?;
        let response = json(StatusCode::CREATED, &order_body(&placed.order, None));
        Ok::<_, ApiError>(replayed(response, placed.replayed))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `GET /api/v1/orders/{orderId}` (`?userId=` optional: when given, it must own it)
pub async fn get_order<S: OrderStore>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let id: OrderId = path_id(&request, "orderId", "INVALID_ORDER_ID")?;
        let user = match request.query_string_parameters_ref().and_then(|q| q.first("userId")) {
            Some(_) => Some(acting_user(&request)?),
            None => None,
        };
        let (order, payments) = use_cases::get_order(&deps.store, id, user).await?;
        Ok::<_, ApiError>(json(StatusCode::OK, &order_body(&order, Some(&payments))))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `POST /api/v1/payment` with `{"userId", "orderId"}`
pub async fn pay<S: OrderStore + OrderPayer>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let key = idempotency_key(&request)?;
        let user = acting_user(&request)?;
        let raw = json_object(&request)?
            .raw("orderId")
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request("INVALID_ORDER_ID", "orderId is required"))?;
        let order: OrderId = serde_json::from_str::<String>(&raw)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| ApiError::bad_request("INVALID_ORDER_ID", format!("orderId {raw} is not an order id")))?;
        let paid: Paid = use_cases::pay(&deps.store, deps.clock.as_ref(), user, order, key).await?;
        let body = PaidBody {
            payment_id: paid.payment.id,
            order_id: order,
            user_id: user,
            status: paid.payment.status,
            amount: paid.payment.amount,
            balance_after: paid.balance_after,
            paid_at: paid.paid_at,
        };
        Ok::<_, ApiError>(replayed(json(StatusCode::OK, &body), paid.replayed))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}
