//! Create, read and pay orders.

use super::{Failures, Order, OrderError, OrderLine, OrderPayer, OrderRequest, OrderStatus, OrderStore, Paid, PaymentFailure, Placed};
use crate::catalog::{CatalogError, ProductCatalog};
use crate::clock::Clock;
use crate::ids::{IdempotencyKey, OrderId, PaymentId, UserId};
use crate::money::{Money, MAX_AMOUNT};

/// Prices the lines at current prices, applies the user's coupon, saves the order.
pub async fn create_order<S: OrderStore + ProductCatalog>(
    store: &S,
    clock: &dyn Clock,
    request: OrderRequest,
    key: Option<IdempotencyKey>,
) -> Result<Placed, OrderError> {
    let now = clock.now();
    if !store.user_exists(request.user).await? {
        return Err(OrderError::UnknownUser(request.user));
    }
    let mut lines = Vec::with_capacity(request.lines.len());
    let mut subtotal = Money::ZERO;
    for (product_id, quantity) in &request.lines {
        let product = store.product(*product_id).await.map_err(|err| match err {
            CatalogError::UnknownProduct(id) => OrderError::UnknownProduct(id),
            CatalogError::Unavailable(cause) => OrderError::Unavailable(cause),
            other => OrderError::Unexpected(anyhow::Error::new(other)),
        })?;
        let line_total = product.price.checked_mul(quantity.get()).map_err(|_| OrderError::TooLarge)?;
        subtotal = subtotal.checked_add(line_total).map_err(|_| OrderError::TooLarge)?;
        lines.push(OrderLine {
            product_id: *product_id,
            name: product.name,
            quantity: *quantity,
            unit_price: product.price,
            line_total,
        });
    }
    if subtotal.as_decimal() > MAX_AMOUNT {
        return Err(OrderError::TooLarge);
    }
    let discount = match request.coupon {
        None => Money::ZERO,
        Some(coupon) => {
            let copy = store.user_coupon(request.user, coupon).await?.ok_or(OrderError::CouponUnavailable)?;
            if copy.used_at.is_some() || now >= copy.expires_at {
                return Err(OrderError::CouponUnavailable);
            }
            copy.discount.min(subtotal)
        }
    };
    let order = Order {
        id: OrderId::generate(),
        user: request.user,
        status: OrderStatus::PendingPayment,
        lines,
        subtotal,
        discount,
        total: subtotal.saturating_sub(discount),
        coupon: request.coupon,
        created_at: now,
        paid_at: None,
        payment: None,
        failures: Failures::default(),
    };
    let key = key.map(|key| (key, request.fingerprint()));
    store.place(order, key).await
}

/// The order; `user`, when given, must own it.
pub async fn get_order(store: &impl OrderStore, id: OrderId, user: Option<UserId>) -> Result<Order, OrderError> {
    match store.order(id).await? {
        Some(order) if user.is_none_or(|u| u == order.user) => Ok(order),
        _ => Err(OrderError::UnknownOrder),
    }
}

/// Pays `user`'s order. Someone else's order is "not found", never "forbidden", so its
/// existence is not revealed.
pub async fn pay<S: OrderStore + OrderPayer>(
    store: &S,
    clock: &dyn Clock,
    user: UserId,
    id: OrderId,
    key: Option<IdempotencyKey>,
) -> Result<Paid, OrderError> {
    let order = get_order(store, id, Some(user)).await?;
    let payment = PaymentId::generate();
    let now = clock.now();
    match store.pay(&order, payment, now, key).await {
        Ok(paid) => Ok(paid),
        Err(refusal) => {
            if let Some(reason) = refusal.failure_reason() {
                let failure = PaymentFailure { payment, reason, amount: order.total, at: now };
                if let Err(err) = store.record_failure(&order, failure).await {
                    tracing::error!(order = %order.id, error = %format!("{err:#}"), "recording a refused payment failed");
                }
            }
            Err(refusal)
        }
    }
}
