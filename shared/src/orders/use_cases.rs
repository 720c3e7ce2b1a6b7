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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::balance::BalanceReader;
    use crate::catalog::Product;
    use crate::clock::ManualClock;
    use crate::coupons::{Coupon, CouponIssuer};
    use crate::ids::{CouponId, ProductId, Quantity};
    use crate::orders::{OrderStatus, KEPT_FAILURES};

    fn user(id: u64) -> UserId {
        UserId::new(id).unwrap()
    }

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn p(id: u64) -> ProductId {
        ProductId::new(id).unwrap()
    }

    /// User 1 with 100.00, user 2 with nothing; products 1 and 2 at 10.00 with stock 5;
    /// coupon 1 taking 15.00 off, held by user 1.
    async fn shop() -> (MemoryStore, ManualClock) {
        let clock = ManualClock::at(datetime!(2026-11-24 10:00 UTC));
        let store = MemoryStore::new();
        store.add_user(user(1), money("100.00"));
        store.add_user(user(2), Money::ZERO);
        for id in 1..=2 {
            store.add_product(Product {
                product_id: p(id),
                name: format!("Product {id}"),
                price: money("10.00"),
                stock: 5,
            });
        }
        let coupon = CouponId::new(1).unwrap();
        store.add_coupon(Coupon {
            id: coupon,
            name: "Welcome".into(),
            discount: money("15.00"),
            total: 10,
            issued: 0,
            ends_at: datetime!(2026-12-24 00:00 UTC),
        });
        store.issue(coupon, user(1), clock.now()).await.unwrap();
        (store, clock)
    }

    fn request(user_id: u64, lines: &[(u64, u64)], coupon: Option<u64>) -> OrderRequest {
        OrderRequest {
            user: user(user_id),
            lines: lines.iter().map(|(id, q)| (p(*id), Quantity::new(*q).unwrap())).collect(),
            coupon: coupon.map(|c| CouponId::new(c).unwrap()),
        }
    }

    #[tokio::test]
    async fn an_order_is_priced_now_and_its_coupon_discount_is_capped_at_the_subtotal() {
        let (store, clock) = shop().await;
        let placed =
            create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 2), (2, 1)], Some(1)), None)
                .await
                .unwrap();
        let order = placed.order;
        assert_eq!((order.subtotal, order.discount, order.total), (money("30.00"), money("15.00"), money("15.00")));
        assert_eq!(order.status, OrderStatus::PendingPayment);
        let small = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], Some(1)), None)
            .await
            .unwrap()
            .order;
        assert_eq!((small.discount, small.total), (money("10.00"), Money::ZERO));
    }

    #[tokio::test]
    async fn paying_takes_stock_balance_and_coupon_at_once_and_only_once() {
        let (store, clock) = shop().await;
        let order = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 2)], Some(1)), None)
            .await
            .unwrap()
            .order;
        let paid = pay(&store, &clock, user(1), order.id, None).await.unwrap();
        assert_eq!((paid.payment.amount, paid.balance_after), (money("5.00"), money("95.00")));
        assert_eq!(store.stock(p(1)), Some(3));
        assert!(store.copy(user(1), CouponId::new(1).unwrap()).unwrap().used_at.is_some());
        assert!(matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::AlreadyPaid)));
        assert_eq!(store.balance(user(1)).await.unwrap(), money("95.00"));
    }

    #[tokio::test]
    async fn someone_elses_order_is_not_found() {
        let (store, clock) = shop().await;
        let order = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None)
            .await
            .unwrap()
            .order;
        assert!(matches!(pay(&store, &clock, user(2), order.id, None).await, Err(OrderError::UnknownOrder)));
        assert!(matches!(get_order(&store, &clock, order.id, Some(user(2))).await, Err(OrderError::UnknownOrder)));
    }

    #[tokio::test]
    async fn a_refusal_changes_nothing_but_the_orders_bounded_failure_record() {
        let (store, clock) = shop().await;
        let order = create_order(&store, &clock, OrderWindows::default(), request(2, &[(1, 1)], None), None)
            .await
            .unwrap()
            .order;
        for _ in 0..KEPT_FAILURES + 3 {
            let refused = pay(&store, &clock, user(2), order.id, None).await;
            assert!(matches!(refused, Err(OrderError::InsufficientBalance)));
        }
        let read = get_order(&store, &clock, order.id, None).await.unwrap();
        assert_eq!(read.failures.count, KEPT_FAILURES as u64 + 3);
        assert_eq!(read.failures.latest.len(), KEPT_FAILURES);
        assert!(read.failures.latest.iter().all(|f| f.reason == "INSUFFICIENT_BALANCE"));
        assert_eq!((read.status, store.stock(p(1))), (OrderStatus::PendingPayment, Some(5)));
    }

    #[tokio::test]
    async fn an_unpaid_order_expires_at_its_deadline_and_cannot_be_paid_after_it() {
        let (store, clock) = shop().await;
        let windows = OrderWindows { payment: time::Duration::minutes(30), ..OrderWindows::default() };
        let order = create_order(&store, &clock, windows, request(1, &[(1, 1)], None), None).await.unwrap().order;
        assert_eq!(order.pay_by, clock.now() + time::Duration::minutes(30));
        clock.advance(time::Duration::minutes(30) - time::Duration::milliseconds(1));
        assert_eq!(get_order(&store, &clock, order.id, None).await.unwrap().status, OrderStatus::PendingPayment);
        clock.advance(time::Duration::milliseconds(1));
        assert_eq!(get_order(&store, &clock, order.id, None).await.unwrap().status, OrderStatus::Expired);
        assert!(matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::Expired)));
        assert_eq!((store.stock(p(1)), store.balance(user(1)).await.unwrap()), (Some(5), money("100.00")));
        let read = get_order(&store, &clock, order.id, None).await.unwrap();
        assert_eq!(read.failures.count, 0, "an expired order's refusal is not a payment attempt");
    }

    #[tokio::test]
    async fn a_paid_order_never_expires_and_its_ledger_entry_names_it() {
        let (store, clock) = shop().await;
        let order = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None)
            .await
            .unwrap()
            .order;
        pay(&store, &clock, user(1), order.id, None).await.unwrap();
        clock.advance(time::Duration::days(30));
        assert_eq!(get_order(&store, &clock, order.id, None).await.unwrap().status, OrderStatus::Paid);
        let history = crate::balance::use_cases::history(&store, &clock, user(1), PageRequest::first(1)).await.unwrap();
        assert_eq!(
            (history.items[0].kind, history.items[0].order),
            (crate::balance::EntryKind::Payment, Some(order.id))
        );
    }

    #[tokio::test]
    async fn a_users_orders_are_listed_newest_first_in_pages_and_only_theirs() {
        let (store, clock) = shop().await;
        let mut placed = Vec::new();
        for _ in 0..5 {
            let order = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None);
            placed.push(order.await.unwrap().order.id);
            clock.advance(time::Duration::seconds(1));
        }
        create_order(&store, &clock, OrderWindows::default(), request(2, &[(1, 1)], None), None).await.unwrap();
        let first = orders_of(&store, &clock, user(1), PageRequest::first(3)).await.unwrap();
        let next = PageRequest { limit: 3, cursor: first.next.clone() };
        let second = orders_of(&store, &clock, user(1), next).await.unwrap();
        let listed: Vec<OrderId> = first.items.iter().chain(&second.items).map(|o| o.id).collect();
        placed.reverse();
        assert_eq!(listed, placed);
        assert!(second.next.is_none());
        let unknown = orders_of(&store, &clock, user(9), PageRequest::first(3)).await;
        assert!(matches!(unknown, Err(OrderError::UnknownUser(_))));
    }

    #[tokio::test]
    async fn the_stock_refusal_names_the_first_product_short() {
        let (store, clock) = shop().await;
        let order = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1), (2, 6)], None), None)
            .await
            .unwrap()
            .order;
        assert!(
            matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::OutOfStock(id)) if id == p(2))
        );
    }

    #[tokio::test]
    async fn a_keyed_retry_gets_the_first_payment_and_another_request_cannot_reuse_the_key() {
        let (store, clock) = shop().await;
        let key = IdempotencyKey::parse("pay-1").unwrap();
        let order = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None)
            .await
            .unwrap()
            .order;
        let first = pay(&store, &clock, user(1), order.id, Some(key.clone())).await.unwrap();
        let again = pay(&store, &clock, user(1), order.id, Some(key.clone())).await.unwrap();
        assert!(again.replayed && again.payment == first.payment && again.balance_after == first.balance_after);
        let other = create_order(&store, &clock, OrderWindows::default(), request(1, &[(2, 1)], None), None)
            .await
            .unwrap()
            .order;
        let reused = pay(&store, &clock, user(1), other.id, Some(key)).await;
        assert!(matches!(reused, Err(OrderError::IdempotencyKeyReused)));
        assert_eq!(store.balance(user(1)).await.unwrap(), money("90.00"));
    }

    async fn placed(store: &MemoryStore, clock: &ManualClock, lines: &[(u64, u64)], coupon: Option<u64>) -> Order {
        create_order(store, clock, OrderWindows::default(), request(1, lines, coupon), None).await.unwrap().order
    }

    async fn cancel_as(
        store: &MemoryStore,
        clock: &ManualClock,
        by: Canceller,
        id: OrderId,
        key: Option<&str>,
    ) -> Result<CancelOutcome, OrderError> {
        let key = key.map(|k| IdempotencyKey::parse(k).unwrap());
        cancel(store, clock, OrderWindows::default(), by, id, key).await
    }

    fn owner() -> Canceller {
        Canceller::Customer(user(1))
    }

    #[tokio::test]
    async fn cancelling_an_unpaid_order_moves_nothing_else_and_it_can_no_longer_be_paid() {
        let (store, clock) = shop().await;
        let order = placed(&store, &clock, &[(1, 2)], Some(1)).await;
        let cancelled = cancel_as(&store, &clock, owner(), order.id, None).await.unwrap().order;
        assert_eq!((cancelled.status, cancelled.cancelled_at), (OrderStatus::Cancelled, Some(clock.now())));
        assert!(matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::Cancelled)));
        assert_eq!((store.stock(p(1)), store.balance(user(1)).await.unwrap()), (Some(5), money("100.00")));
        let again = cancel_as(&store, &clock, owner(), order.id, None).await.unwrap().order;
        assert_eq!(again, cancelled, "a second cancel answers the order as it is");
    }

    #[tokio::test]
    async fn an_expired_order_is_cancelled_not_refunded() {
        let (store, clock) = shop().await;
        let order = placed(&store, &clock, &[(1, 1)], None).await;
        clock.advance(time::Duration::hours(1));
        let cancelled = cancel_as(&store, &clock, owner(), order.id, None).await.unwrap().order;
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(store.balance(user(1)).await.unwrap(), money("100.00"));
    }

    #[tokio::test]
    async fn cancelling_a_paid_order_refunds_money_stock_sales_and_coupon_exactly_once() {
        let (store, clock) = shop().await;
        let order = placed(&store, &clock, &[(1, 2)], Some(1)).await;
        pay(&store, &clock, user(1), order.id, None).await.unwrap();
        let day = clock.now().date();
        clock.advance(time::Duration::days(1));
        for _ in 0..3 {
            let refunded = cancel_as(&store, &clock, owner(), order.id, None).await.unwrap().order;
            assert_eq!(refunded.status, OrderStatus::Refunded);
        }
        assert_eq!((store.stock(p(1)), store.balance(user(1)).await.unwrap()), (Some(5), money("100.00")));
        assert_eq!(store.sold(day, p(1)), 0, "taken from the day it was sold");
        assert!(store.copy(user(1), CouponId::new(1).unwrap()).unwrap().used_at.is_none());
        let history = crate::balance::use_cases::history(&store, &clock, user(1), PageRequest::first(5)).await.unwrap();
        let kinds: Vec<_> = history.items.iter().map(|e| (e.kind, e.order, e.amount)).collect();
        assert_eq!(
            kinds[..2],
            [
                (crate::balance::EntryKind::Refund, Some(order.id), money("5.00")),
                (crate::balance::EntryKind::Payment, Some(order.id), money("5.00"))
            ]
        );
        assert!(matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::Refunded)));
    }

    #[tokio::test]
    async fn a_coupon_that_expired_before_the_refund_stays_used() {
        let (store, clock) = shop().await;
        let order = placed(&store, &clock, &[(1, 2)], Some(1)).await;
        pay(&store, &clock, user(1), order.id, None).await.unwrap();
        let expiry = store.copy(user(1), CouponId::new(1).unwrap()).unwrap().expires_at;
        clock.advance(expiry - clock.now());
        let windows = OrderWindows { refund: time::Duration::days(365), ..OrderWindows::default() };
        cancel(&store, &clock, windows, owner(), order.id, None).await.unwrap();
        assert!(store.copy(user(1), CouponId::new(1).unwrap()).unwrap().used_at.is_some());
        assert_eq!(store.balance(user(1)).await.unwrap(), money("100.00"));
    }

    #[tokio::test]
    async fn past_the_refund_window_a_paid_order_stays_paid() {
        let (store, clock) = shop().await;
        let order = placed(&store, &clock, &[(1, 1)], None).await;
        pay(&store, &clock, user(1), order.id, None).await.unwrap();
        clock.advance(time::Duration::days(7) - time::Duration::milliseconds(1));
        let windows = OrderWindows::default();
        let just_in_time = cancel(&store, &clock, windows, Canceller::Operator, order.id, None).await;
        assert_eq!(just_in_time.unwrap().order.status, OrderStatus::Refunded);

        let late = placed(&store, &clock, &[(1, 1)], None).await;
        pay(&store, &clock, user(1), late.id, None).await.unwrap();
        clock.advance(time::Duration::days(7));
        assert!(matches!(cancel_as(&store, &clock, owner(), late.id, None).await, Err(OrderError::RefundWindowClosed)));
        assert_eq!(get_order(&store, &clock, late.id, None).await.unwrap().status, OrderStatus::Paid);
    }

    #[tokio::test]
    async fn someone_elses_order_cannot_be_cancelled_but_an_operator_can_cancel_any() {
        let (store, clock) = shop().await;
        let order = placed(&store, &clock, &[(1, 1)], None).await;
        let stranger = Canceller::Customer(user(2));
        assert!(matches!(cancel_as(&store, &clock, stranger, order.id, None).await, Err(OrderError::UnknownOrder)));
        assert_eq!(get_order(&store, &clock, order.id, None).await.unwrap().status, OrderStatus::PendingPayment);
        let by_operator = cancel_as(&store, &clock, Canceller::Operator, order.id, None).await.unwrap();
        assert_eq!(by_operator.order.status, OrderStatus::Cancelled);
    }

    #[tokio::test]
    async fn a_cancel_key_replays_and_cannot_be_reused_for_another_order() {
        let (store, clock) = shop().await;
        let first = placed(&store, &clock, &[(1, 1)], None).await;
        let other = placed(&store, &clock, &[(2, 1)], None).await;
        let done = cancel_as(&store, &clock, owner(), first.id, Some("c-1")).await.unwrap();
        assert!(!done.replayed);
        let again = cancel_as(&store, &clock, owner(), first.id, Some("c-1")).await.unwrap();
        assert!(again.replayed && again.order == done.order);
        let reused = cancel_as(&store, &clock, owner(), other.id, Some("c-1")).await;
        assert!(matches!(reused, Err(OrderError::IdempotencyKeyReused)));
        assert_eq!(get_order(&store, &clock, other.id, None).await.unwrap().status, OrderStatus::PendingPayment);
    }
}
