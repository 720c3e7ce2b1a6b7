//! Create, read, list, pay and cancel orders.

use time::OffsetDateTime;

use super::plan::{self, AfterCancel, AfterPayment};
use super::{
    CancelOutcome, Canceller, Failures, Order, OrderCanceller, OrderError, OrderLine, OrderPayer, OrderRequest,
    OrderStatus, OrderStore, OrderWindows, Paid, PaymentFailure, Placed,
};
use crate::balance::BalanceSeen;
use crate::clock::Clock;
use crate::ids::{EntryId, IdempotencyKey, OrderId, PaymentId, ProductId, UserId};
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
        sales_sharded: false,
        failures: Failures::default(),
    };
    let key = key.map(|key| (key, request.fingerprint()));
    let placed = store.place(order, key).await?;
    if placed.replayed {
        // The first answer, exactly: the order as it was placed.
        return Ok(placed);
    }
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
        // Cancelled, refunded and paid orders are refused by the commit itself, which
        // reads their status where it cannot be stale.
        return Err(OrderError::Expired);
    }
    let payment = PaymentId::generate();
    let now = clock.now();
    match pay_as_read(store, &order, seen, payment, now, key.as_ref()).await {
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

/// How many times a payment tries from a balance it has seen before it pays without one.
const SEEN_ATTEMPTS: usize = 3;

/// Pays `order` as it was read, at `now`, from the balance `seen` with it (if any).
///
/// From a balance seen, the ledger entry is known before the commit, so nothing
/// follows it. When another change of the payer's commits first, the payment tries
/// again from the balance the refusal found, [`SEEN_ATTEMPTS`] times in all; after that
/// (the payer kept changing), or when the balance seen is too low to pay, or when none
/// was read, it pays with a pending entry, finished after the commit: that way never
/// retries on the balance, however many changes race it.
pub async fn pay_as_read<S: OrderPayer>(
    store: &S,
    order: &Order,
    seen: Option<BalanceSeen>,
    payment: PaymentId,
    now: OffsetDateTime,
    key: Option<&IdempotencyKey>,
) -> Result<Paid, OrderError> {
    let record = plan::payment_record(order, payment, EntryId::generate(), now);
    let mut seen = seen;
    for attempt in 0..SEEN_ATTEMPTS {
        let Some(balance) = seen else { break };
        let plan = match plan::payment(order, &record, key, Some((balance, attempt))) {
            Ok(plan) => plan,
            Err(OrderError::InsufficientBalance) => break,
            Err(err) => return Err(err),
        };
        match store.commit(&plan).await? {
            Ok(()) => {
                let balance_after = plan.entry.map_or(balance.balance, |entry| entry.balance_after);
                return Ok(Paid { payment: record, balance_after, replayed: false });
            }
            Err(refused) => match plan::payment_refused(&refused, order) {
                AfterPayment::TryFrom(now) => seen = Some(now),
                after => return answer_refused(store, after, order, key).await,
            },
        }
    }
    let plan = plan::payment(order, &record, key, None)?;
    if let Err(refused) = store.commit(&plan).await? {
        return answer_refused(store, plan::payment_refused(&refused, order), order, key).await;
    }
    let balance_after = match record.entry {
        Some(entry) => store.settle_entry(order.user, entry, key).await?,
        None => store.balance_now(order.user).await?,
    };
    Ok(Paid { payment: record, balance_after, replayed: false })
}

/// A refused payment's answer: the refusal a customer can act on, or the first payment
/// of its key, replayed.
async fn answer_refused<S: OrderPayer>(
    store: &S,
    after: AfterPayment,
    order: &Order,
    key: Option<&IdempotencyKey>,
) -> Result<Paid, OrderError> {
    match (after, key) {
        (AfterPayment::Refuse(refusal), _) => Err(refusal),
        (AfterPayment::Replay, Some(key)) => store.replay_payment(order, key).await,
        (AfterPayment::Replay, None) => {
            Err(OrderError::Unexpected(anyhow::anyhow!("a key refused a payment without one")))
        }
        (AfterPayment::TryFrom(_), _) => {
            Err(OrderError::Unexpected(anyhow::anyhow!("a balance moved under a payment that had not seen it")))
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
            return replay_cancel(store, clock, id, owner).await;
        }
    }
    for _ in 0..CANCEL_ATTEMPTS {
        let now = clock.now();
        if matches!(order.status, OrderStatus::Cancelled | OrderStatus::Refunded) {
            return Ok(CancelOutcome { order, replayed: false });
        }
        if order.status == OrderStatus::Paid {
            let paid_at = order.paid_at.ok_or_else(|| anyhow::anyhow!("paid order {id} has no paidAt"))?;
            if now >= paid_at + windows.refund {
                return Err(OrderError::RefundWindowClosed);
            }
        }
        match cancel_as_read(store, &order, by, now, key.as_ref()).await? {
            CancelAttempt::Done(changed) => {
                let outcome = if changed.status == OrderStatus::Refunded { "Refunded" } else { "Cancelled" };
                crate::metrics::count(crate::metrics::CANCELLATIONS, &[outcome], 1);
                return Ok(CancelOutcome { order: changed.as_of(now), replayed: false });
            }
            CancelAttempt::Replay => return replay_cancel(store, clock, id, owner).await,
            CancelAttempt::ReadAgain => order = get_order(store, clock, id, owner).await?,
        }
    }
    Err(OrderError::Unexpected(anyhow::anyhow!("order {id} changed under {CANCEL_ATTEMPTS} cancels in a row")))
}

/// The answer to a cancel whose key cancelled the order already. The key committed with
/// that cancel, which left the order cancelled or refunded for good: read after the
/// key was found, the order is exactly what that cancel made, never a state from before.
async fn replay_cancel(
    store: &impl OrderStore,
    clock: &dyn Clock,
    id: OrderId,
    owner: Option<UserId>,
) -> Result<CancelOutcome, OrderError> {
    let order = get_order(store, clock, id, owner).await?;
    if !matches!(order.status, OrderStatus::Cancelled | OrderStatus::Refunded) {
        return Err(OrderError::Unexpected(anyhow::anyhow!("order {id} is {:?} after its cancel's key", order.status)));
    }
    Ok(CancelOutcome { order, replayed: true })
}

/// What one cancel of an order as read came to.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelAttempt {
    /// Cancelled or refunded: the order as it now is.
    Done(Box<Order>),
    /// The order (or its coupon) was not as read any more: read it again, decide anew.
    ReadAgain,
    /// The same key cancelled it meanwhile: answer that cancel.
    Replay,
}

/// Cancels `order` as it was read, at `now`: an unpaid one moves to CANCELLED and
/// nothing else; a paid one is refunded whole (the balance gets the total back, each
/// line's stock comes back and leaves the day's sales it was counted in, the coupon is
/// usable again if unexpired, the payment is marked refunded, an ORDER_REFUNDED event is
/// written).
pub async fn cancel_as_read<S: OrderStore + OrderCanceller>(
    store: &S,
    order: &Order,
    by: Canceller,
    now: OffsetDateTime,
    key: Option<&IdempotencyKey>,
) -> Result<CancelAttempt, OrderError> {
    let (plan, entry) = match order.status {
        OrderStatus::PendingPayment | OrderStatus::Expired => (plan::cancel_unpaid(order, now, by, key), None),
        OrderStatus::Paid => {
            // Whether the coupon comes back depends on its expiry, read here and held by
            // the commit (an expiry passing in between reads the order again).
            let copy = match order.coupon {
                Some(coupon) => store.user_coupon(order.user, coupon).await?,
                None => None,
            };
            let entry = (order.total > Money::ZERO).then(EntryId::generate);
            (plan::refund(order, now, entry, copy.as_ref(), by, key)?, entry)
        }
        OrderStatus::Cancelled | OrderStatus::Refunded => return Ok(CancelAttempt::Done(Box::new(order.clone()))),
    };
    if let Err(refused) = store.commit(&plan).await? {
        return match plan::cancel_refused(&refused, order) {
            AfterCancel::Changed => Ok(CancelAttempt::ReadAgain),
            AfterCancel::KeyClaimed => match key {
                Some(key) if store.cancel_key_used(by, key, order).await? => Ok(CancelAttempt::Replay),
                _ => Err(OrderError::IdempotencyKeyReused),
            },
            AfterCancel::Refuse(refusal) => Err(refusal),
        };
    }
    if order.status != OrderStatus::Paid {
        let cancelled = Order { status: OrderStatus::Cancelled, cancelled_at: Some(now), ..order.clone() };
        return Ok(CancelAttempt::Done(Box::new(cancelled)));
    }
    if let Some(entry) = entry {
        // Committed, and the answer does not need the entry: failing to write its
        // history row now only leaves it pending, for the next history read.
        if let Err(err) = store.settle_entry(order.user, entry, None).await {
            tracing::warn!(order = %order.id, entry = %entry, error = %format!("{err:#}"), "the refund's ledger entry stays pending");
        }
    }
    Ok(CancelAttempt::Done(Box::new(Order {
        status: OrderStatus::Refunded,
        cancelled_at: Some(now),
        refund_entry: entry,
        ..order.clone()
    })))
}
