//! Handlers of the order and payment routes.

use std::collections::BTreeMap;

use http::StatusCode;
use lambda_http::{Request, RequestExt as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ErrorBody;
use super::extract::{acting_user, idempotency_key, invalid, json_body, optional_json_body, page_request, path_id};
use super::params::{IdempotencyHeader, PageQuery};
use super::paths;
use super::{json, replayed, ApiError, Handled};
use crate::catalog::ProductCatalog;
use crate::clock::rfc3339_millis;
use crate::identity::Identity;
use crate::ids::{CouponId, OrderId, PaymentId, ProductId, Quantity, UserId};
use crate::money::Money;
use crate::orders::{
    use_cases, Canceller, Order, OrderCanceller, OrderLine, OrderPayer, OrderRequest, OrderStatus, OrderStore,
    PaymentStatus, MAX_LINES,
};
use crate::Deps;

/// `{"userId", "products": [{"productId", "quantity"}], "couponId"?}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateRequest {
    user_id: Option<UserId>,
    /// Lines naming the same product are added together.
    #[schema(min_items = 1)]
    products: Vec<LineRequest>,
    coupon_id: Option<CouponId>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LineRequest {
    product_id: ProductId,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "crate::ids::count")]
    quantity: u64,
}

/// A cancel's optional body: `{"userId"}` (or `?userId=`), as for coupon issue.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CancelRequest {
    user_id: Option<UserId>,
}

/// `{"userId", "orderId"}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PayRequest {
    user_id: Option<UserId>,
    order_id: OrderId,
}

#[derive(Serialize, utoipa::ToSchema)]
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
    #[serde(with = "rfc3339_millis")]
    created_at: OffsetDateTime,
    /// The payment deadline: unpaid then, the order is `EXPIRED`.
    #[serde(with = "rfc3339_millis")]
    pay_by: OffsetDateTime,
    #[serde(with = "rfc3339_millis::option")]
    paid_at: Option<OffsetDateTime>,
    payment_id: Option<PaymentId>,
    /// When it was cancelled (unpaid) or refunded.
    #[serde(with = "rfc3339_millis::option", skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<OffsetDateTime>,
    /// On a read: every refused payment counted, and the latest few with the one that
    /// succeeded, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_attempts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payments: Option<Vec<PaymentBody>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct PaymentBody {
    payment_id: PaymentId,
    status: PaymentStatus,
    amount: Money,
    reason: Option<&'static str>,
    #[serde(with = "rfc3339_millis")]
    created_at: OffsetDateTime,
}

/// A page of a user's orders, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct OrdersBody<'a> {
    user_id: UserId,
    items: Vec<OrderBody<'a>>,
    next_cursor: Option<&'a str>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct PaidBody {
    payment_id: PaymentId,
    order_id: OrderId,
    user_id: UserId,
    status: PaymentStatus,
    amount: Money,
    balance_after: Money,
    #[serde(with = "rfc3339_millis")]
    paid_at: OffsetDateTime,
}

fn order_body(order: &Order, with_payments: bool) -> OrderBody<'_> {
    let payments = with_payments.then(|| {
        let failed = order.failures.latest.iter().map(|f| PaymentBody {
            payment_id: f.payment,
            status: PaymentStatus::Failed,
            amount: f.amount,
            reason: Some(f.reason),
            created_at: f.at,
        });
        let succeeded = order.payment.zip(order.paid_at).map(|(payment_id, at)| PaymentBody {
            payment_id,
            status: PaymentStatus::Succeeded,
            amount: order.total,
            reason: None,
            created_at: at,
        });
        let mut payments: Vec<PaymentBody> = failed.chain(succeeded).collect();
        payments.sort_by_key(|p| (p.created_at, p.payment_id));
        payments
    });
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
        pay_by: order.pay_by,
        paid_at: order.paid_at,
        payment_id: order.payment,
        cancelled_at: order.cancelled_at,
        failed_attempts: with_payments.then_some(order.failures.count),
        payments,
    }
}

/// The parsed order: lines for the same product are merged (their quantities added).
fn order_request(request: &Request, identity: &Identity) -> Result<OrderRequest, super::ApiError> {
    let body: CreateRequest = json_body(request)?;
    let user = acting_user(request, identity, body.user_id)?;
    if body.products.is_empty() {
        return Err(invalid("products", "must not be empty"));
    }
    let mut merged: BTreeMap<ProductId, u64> = BTreeMap::new();
    for line in &body.products {
        if line.quantity == 0 {
            return Err(invalid("quantity", "0 must be a positive integer"));
        }
        let total = merged.entry(line.product_id).or_default();
        *total = total.saturating_add(line.quantity);
    }
    if merged.len() > MAX_LINES {
        return Err(invalid("products", format!("must hold at most {MAX_LINES} different products")));
    }
    let lines = merged
        .into_iter()
        .map(|(product, quantity)| {
            let quantity = Quantity::new(quantity).ok_or_else(|| {
                invalid("quantity", format!("of product {product} must be at most {}", Quantity::MAX))
            })?;
            Ok((product, quantity))
        })
        .collect::<Result<_, super::ApiError>>()?;
    Ok(OrderRequest { user, lines, coupon: body.coupon_id })
}

/// `POST /api/v1/orders`
#[utoipa::path(post, path = paths::ORDERS, tag = "orders", summary = "Place an order", params(IdempotencyHeader), request_body = CreateRequest,
    responses(
        (status = 201, description = "Placed, awaiting payment until `payBy`; prices are fixed now", body = OrderBody,
            headers(
                ("Location" = String, description = "The order's URL"),
            ),
            // The order it names is the one reading, paying and cancelling act on: links a
            // reader (and the fuzzer's stateful phase) can follow.
            links(
                ("GetOrder" = (operation_id = "get-order", parameters(("orderId" = "$response.body#/orderId")))),
                ("CancelOrder" = (operation_id = "cancel-order", parameters(("orderId" = "$response.body#/orderId")))),
                ("PayOrder" = (operation_id = "pay-order", request_body = json!({ "orderId": "$response.body#/orderId" }))),
            )),
        (status = 400, description = "`INVALID_PRODUCTS` (none, or more than 40 products), `INVALID_PRODUCT_ID`, `INVALID_QUANTITY`, \
            `INVALID_COUPON_ID`, `INVALID_USER_ID`, `ORDER_TOO_LARGE`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`, `PRODUCT_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`COUPON_UNAVAILABLE`: not the user's, used or expired; `IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
    ))]
pub async fn create_order<S: OrderStore + ProductCatalog>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let order = order_request(&request, &deps.identity)?;
    let placed = use_cases::create_order(&deps.store, deps.clock.as_ref(), deps.order_windows, order, key).await?;
    let location = paths::fill(paths::ORDER, placed.order.id);
    Ok(replayed(super::created(&location, &order_body(&placed.order, false))?, placed.replayed))
}

/// `GET /api/v1/orders/{orderId}`: the caller's own order (someone else's is not
/// found). Trusting the client locally, `?userId=` is optional, as in the baseline.
#[utoipa::path(get, path = paths::ORDER, tag = "orders", summary = "One of the user's orders", params(("orderId" = OrderId, Path, description = "The order"), ("userId" = Option<UserId>, Query, description = "The acting user: signed in, the token's own (may be left out); with `AUTH=off` locally, the one the client names")),
    responses(
        (status = 200, description = "The order with its payment attempts", body = OrderBody),
        (status = 400, description = "`INVALID_ORDER_ID`, `INVALID_USER_ID`", body = ErrorBody),
        (status = 404, description = "`ORDER_NOT_FOUND`: no such order, or another user's", body = ErrorBody),
    ))]
pub async fn get_order<S: OrderStore>(request: Request, deps: &Deps<S>) -> Handled {
    let id: OrderId = path_id(&request, "orderId")?;
    let named = request.query_string_parameters_ref().and_then(|q| q.first("userId")).is_some();
    let user = match deps.identity {
        Identity::TrustClient if !named => None,
        _ => Some(acting_user(&request, &deps.identity, None)?),
    };
    let order = use_cases::get_order(&deps.store, deps.clock.as_ref(), id, user).await?;
    json(StatusCode::OK, &order_body(&order, true))
}

/// `GET /api/v1/admin/orders/{orderId}`: any customer's order, for an operator (the
/// route table checks the role).
#[utoipa::path(get, path = paths::ADMIN_ORDER, tag = "operator", summary = "Any customer's order", params(("orderId" = OrderId, Path, description = "The order")),
    responses(
        (status = 200, description = "The order with its payment attempts", body = OrderBody),
        (status = 400, description = "`INVALID_ORDER_ID`", body = ErrorBody),
        (status = 404, description = "`ORDER_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn get_any_order<S: OrderStore>(request: Request, deps: &Deps<S>) -> Handled {
    let id: OrderId = path_id(&request, "orderId")?;
    let order = use_cases::get_order(&deps.store, deps.clock.as_ref(), id, None).await?;
    json(StatusCode::OK, &order_body(&order, true))
}

/// What a cancel answers, the customer's and the operator's alike.
const CANCELLED: &str = "Cancelled (`CANCELLED`) if it was unpaid, refunded (`REFUNDED`) if it was paid: the amount \
    back on the balance, the stock and an unexpired coupon given back. An order already cancelled or refunded is \
    answered as it is, with 200, and nothing moves: a cancel asks for an end state, and a retry finds it";
const CANCEL_REFUSED: &str = "`REFUND_WINDOW_CLOSED`: paid too long ago; `BALANCE_LIMIT_EXCEEDED`: the refund would \
    pass the balance cap; `IDEMPOTENCY_KEY_REUSED`";

/// `POST /api/v1/orders/{orderId}/cancel` (`Idempotency-Key` honoured): the caller's
/// own order cancelled, or refunded if paid; 200 with the order as it now is.
#[utoipa::path(post, path = paths::ORDER_CANCEL, tag = "orders", summary = "Cancel or refund an order", params(("orderId" = OrderId, Path, description = "The order"), ("userId" = Option<UserId>, Query, description = "The acting user: signed in, the token's own (may be left out); with `AUTH=off` locally, the one the client names"), IdempotencyHeader),
    request_body(content = Option<CancelRequest>, description = "Optional: the user may be named here"),
    responses(
        (status = 200, description = CANCELLED, body = OrderBody),
        (status = 404, description = "`ORDER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = CANCEL_REFUSED, body = ErrorBody),
        (status = 400, description = "`INVALID_ORDER_ID`, `INVALID_USER_ID`", body = ErrorBody),
    ))]
pub async fn cancel_order<S: OrderStore + OrderCanceller>(request: Request, deps: &Deps<S>) -> Handled {
    let id: OrderId = path_id(&request, "orderId")?;
    let key = idempotency_key(&request)?;
    let body: CancelRequest = optional_json_body(&request)?.unwrap_or_default();
    let user = acting_user(&request, &deps.identity, body.user_id)?;
    cancelled(deps, Canceller::Customer(user), id, key).await
}

/// `POST /api/v1/admin/orders/{orderId}/cancel`: an operator cancels or refunds any
/// customer's order for them (the route table checks the role).
#[utoipa::path(post, path = paths::ADMIN_ORDER_CANCEL, tag = "operator", summary = "Cancel or refund any customer's order", params(("orderId" = OrderId, Path, description = "The order"), IdempotencyHeader),
    request_body(content = Option<CancelRequest>, description = "Optional and ignored: the operator acts for the order's owner"),
    responses(
        (status = 200, description = CANCELLED, body = OrderBody),
        (status = 404, description = "`ORDER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = CANCEL_REFUSED, body = ErrorBody),
        (status = 400, description = "`INVALID_ORDER_ID`", body = ErrorBody),
    ))]
pub async fn cancel_any_order<S: OrderStore + OrderCanceller>(request: Request, deps: &Deps<S>) -> Handled {
    let id: OrderId = path_id(&request, "orderId")?;
    let key = idempotency_key(&request)?;
    let _: Option<CancelRequest> = optional_json_body(&request)?;
    cancelled(deps, Canceller::Operator, id, key).await
}

async fn cancelled<S: OrderStore + OrderCanceller>(
    deps: &Deps<S>,
    by: Canceller,
    id: OrderId,
    key: Option<crate::ids::IdempotencyKey>,
) -> Handled {
    let outcome = use_cases::cancel(&deps.store, deps.clock.as_ref(), deps.order_windows, by, id, key).await?;
    Ok(replayed(json(StatusCode::OK, &order_body(&outcome.order, false))?, outcome.replayed))
}

/// `GET /api/v1/users/{userId}/orders?limit=&cursor=`: the caller's orders, newest first.
#[utoipa::path(get, path = paths::USER_ORDERS, tag = "orders", summary = "A user's orders", params(("userId" = UserId, Path, description = "The user: signed in, the token's own"), PageQuery),
    responses(
        (status = 200, description = "The user's orders, newest first", body = OrdersBody),
        (status = 400, description = "`INVALID_USER_ID`, `INVALID_LIMIT`, `INVALID_CURSOR`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn user_orders<S: OrderStore>(request: Request, deps: &Deps<S>) -> Handled {
    let user = acting_user(&request, &deps.identity, None)?;
    let page = use_cases::orders_of(&deps.store, deps.clock.as_ref(), user, page_request(&request)?).await?;
    let body = OrdersBody {
        user_id: user,
        items: page.items.iter().map(|order| order_body(order, false)).collect(),
        next_cursor: page.next.as_ref().map(|c| c.as_str()),
    };
    json(StatusCode::OK, &body)
}

/// Payments by outcome, and refusals by reason (the error code the client got). An
/// answer replayed for a retried key is no new payment; an unknown order is no attempt.
fn count_payment(paid: &Result<crate::orders::Paid, ApiError>) {
    match paid {
        Ok(paid) if !paid.replayed => crate::metrics::count(crate::metrics::PAYMENTS, &["Succeeded"], 1),
        Ok(_) => {}
        Err(err) if err.status == StatusCode::CONFLICT || err.status.is_server_error() => {
            crate::metrics::count(crate::metrics::PAYMENTS, &["Failed"], 1);
            crate::metrics::count(crate::metrics::PAYMENT_FAILURES, &[err.code.as_str()], 1);
        }
        Err(_) => {}
    }
}

/// `POST /api/v1/payment` with `{"userId", "orderId"}`
#[utoipa::path(post, path = paths::PAYMENT, tag = "orders", summary = "Pay an order from the balance", params(IdempotencyHeader), request_body = PayRequest,
    responses(
        (status = 200, description = "Paid: stock, balance, coupon and order changed in one transaction", body = PaidBody),
        (status = 400, description = "`INVALID_ORDER_ID`, `INVALID_USER_ID`", body = ErrorBody),
        (status = 404, description = "`ORDER_NOT_FOUND`: no such order, or another user's", body = ErrorBody),
        (status = 409, description = "Nothing changed: `INSUFFICIENT_BALANCE`, `OUT_OF_STOCK` (names the product), `COUPON_UNAVAILABLE`, \
            `ALREADY_PAID`, `ORDER_EXPIRED`, `ORDER_CANCELLED`, `ORDER_REFUNDED`, `IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
    ))]
pub async fn pay<S: OrderStore + OrderPayer>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let body: PayRequest = json_body(&request)?;
    let user = acting_user(&request, &deps.identity, body.user_id)?;
    let paid = use_cases::pay(&deps.store, deps.clock.as_ref(), user, body.order_id, key).await.map_err(ApiError::from);
    count_payment(&paid);
    let paid = paid?;
    let body = PaidBody {
        payment_id: paid.payment.id,
        order_id: paid.payment.order,
        user_id: user,
        status: PaymentStatus::Succeeded,
        amount: paid.payment.amount,
        balance_after: paid.balance_after,
        paid_at: paid.payment.at,
    };
    Ok(replayed(json(StatusCode::OK, &body)?, paid.replayed))
}
