//! Create, read, list, pay and cancel orders.

use super::{
    CancelOutcome, Canceller, Failures, Order, OrderCanceller, OrderError, OrderLine, OrderPayer, OrderRequest,
    OrderStatus, OrderStore, OrderWindows, Paid, PaymentFailure, Placed,
};
use crate::clock::Clock;
use crate::ids::{IdempotencyKey, OrderId, PaymentId, ProductId, UserId};
use crate::money::{Money, MAX_AMOUNT};
use crate::pagination::{Page, PageRequest};

/// Prices the lines at current prices, applies the user's coupon, saves the order with
/// its payment deadline. Prices are fixed here: a later price change does not touch it.
pub async fn create_order<S: OrderStore>(
    store: &S,
    clock: &dyn Clock,
    windows: OrderWindows,
    request: OrderRequest,
    key: Option<IdempotencyKey>,
) -> Result<Placed, OrderError> {
    let now = clock.now();
    let ids: Vec<ProductId> = request.lines.iter().map(|(id, _)| *id).collect();
    let inputs = store.order_inputs(request.user, &ids, request.coupon).await?;
    if !inputs.user_exists {
        return Err(OrderError::UnknownUser(request.user));
    }
    let mut lines = Vec::with_capacity(request.lines.len());
    let mut subtotal = Money::ZERO;
    for ((product_id, quantity), product) in request.lines.iter().zip(inputs.products) {
        let product = product.ok_or(OrderError::UnknownProduct(*product_id))?;
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
            let copy = inputs.coupon.filter(|copy| copy.coupon_id == coupon).ok_or(OrderError::CouponUnavailable)?;
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
        pay_by: now + windows.payment,
        paid_at: None,
        payment: None,
        cancelled_at: None,
        refund_entry: None,
        failures: Failures::default(),
    };
    let key = key.map(|key| (key, request.fingerprint()));
    let placed = store.place(order, key).await?;
    Ok(Placed { order: placed.order.as_of(now), ..placed })
}

/// The order as it stands now; `user`, when given, must own it.
pub async fn get_order(
    store: &impl OrderStore,
    clock: &dyn Clock,
    id: OrderId,
    user: Option<UserId>,
) -> Result<Order, OrderError> {
    owned(store.order(id).await?, clock, user)
}

/// The order as it stands now, if it is `user`'s (any user's for `None`): someone else's
/// is "not found", as one that does not exist.
fn owned(order: Option<Order>, clock: &dyn Clock, user: Option<UserId>) -> Result<Order, OrderError> {
    match order {
        Some(order) if user.is_none_or(|u| u == order.user) => Ok(order.as_of(clock.now())),
        _ => Err(OrderError::UnknownOrder),
    }
}

/// A user's orders as they stand now, newest first. A user with no orders gets an
/// empty list; one who does not exist, "not found".
pub async fn orders_of(
    store: &impl OrderStore,
    clock: &dyn Clock,
    user: UserId,
    page: PageRequest,
) -> Result<Page<Order>, OrderError> {
    let first = page.cursor.is_none();
    let found = store.orders_of(user, page).await?;
    if first && found.items.is_empty() && !store.user_exists(user).await? {
        return Err(OrderError::UnknownUser(user));
    }
    let now = clock.now();
    Ok(Page { items: found.items.into_iter().map(|order| order.as_of(now)).collect(), next: found.next })
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
    let (order, seen) = store.order_to_pay(id, user).await?;
    let order = owned(order, clock, Some(user))?;
    if order.status == OrderStatus::Expired {
        // Cancelled, refunded and paid orders are refused by the transaction itself,
        // which reads their status where it cannot be stale.
        return Err(OrderError::Expired);
    }
    let payment = PaymentId::generate();
    let now = clock.now();
    match store.pay(&order, seen, payment, now, key).await {
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

/// How often a cancel reads the order again when it changed between the read and the
/// write (a payment committing at the same moment changes it once; more is a bug).
const CANCEL_ATTEMPTS: usize = 4;

/// Cancels an order for its customer (`by` a customer must own it: someone else's is
/// "not found") or an operator: a pending or expired order is cancelled, a paid one
/// refunded within the refund window, a cancelled or refunded one answered as it is.
/// Whichever of a payment and a cancel commits first wins; if the payment did, the
/// cancel refunds it.
pub async fn cancel<S: OrderStore + OrderCanceller>(
    store: &S,
    clock: &dyn Clock,
    windows: OrderWindows,
    by: Canceller,
    id: OrderId,
    key: Option<IdempotencyKey>,
) -> Result<CancelOutcome, OrderError> {
    let owner = match by {
        Canceller::Customer(user) => Some(user),
        Canceller::Operator => None,
    };
    let mut order = get_order(store, clock, id, owner).await?;
    if let Some(key) = &key {
        if store.cancel_key_used(by, key, &order).await? {
            return Ok(CancelOutcome { order, replayed: true });
        }
    }
    for _ in 0..CANCEL_ATTEMPTS {
        let now = clock.now();
        let changed = match order.status {
            OrderStatus::Cancelled | OrderStatus::Refunded => return Ok(CancelOutcome { order, replayed: false }),
            OrderStatus::PendingPayment | OrderStatus::Expired => {
                store.cancel_unpaid(&order, by, now, key.as_ref()).await?
            }
            OrderStatus::Paid => {
                let paid_at = order.paid_at.ok_or_else(|| anyhow::anyhow!("paid order {id} has no paidAt"))?;
                if now >= paid_at + windows.refund {
                    return Err(OrderError::RefundWindowClosed);
                }
                store.refund(&order, by, now, key.as_ref()).await?
            }
        };
        if let Some(changed) = changed {
            let outcome = if changed.status == OrderStatus::Refunded { "Refunded" } else { "Cancelled" };
            crate::metrics::count("Cancellations", &[outcome], 1);
            return Ok(CancelOutcome { order: changed.as_of(now), replayed: false });
        }
        order = get_order(store, clock, id, owner).await?;
    }
    Err(OrderError::Unexpected(anyhow::anyhow!("order {id} changed under {CANCEL_ATTEMPTS} cancels in a row")))
}
