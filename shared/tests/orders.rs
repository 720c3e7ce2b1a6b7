//! The order use cases — create, read, list, pay, cancel and refund — on the DynamoDB
//! adapter over an in-process engine, with the clock in the test's hand.

use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::balance::BalanceReader;
use rushcart::catalog::Product;
use rushcart::clock::{Clock, ManualClock};
use rushcart::coupons::{Coupon, CouponIssuer};
use rushcart::ids::{CouponId, IdempotencyKey, OrderId, ProductId, Quantity, UserId};
use rushcart::money::Money;
use rushcart::orders::use_cases::{cancel, create_order, get_order, orders_of, pay};
use rushcart::orders::{
    CancelOutcome, Canceller, Order, OrderError, OrderRequest, OrderStatus, OrderWindows, KEPT_FAILURES,
};
use rushcart::pagination::PageRequest;
use time::macros::datetime;

mod support;

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
async fn shop() -> (DynamoStore, ManualClock) {
    let clock = ManualClock::at(datetime!(2026-11-24 10:00 UTC));
    let store = support::store().await;
    support::add_user(&store, 1, "100.00").await;
    support::add_user(&store, 2, "0.00").await;
    for id in 1..=2 {
        let product =
            Product { product_id: p(id), name: format!("Product {id}"), price: money("10.00"), stock: 5, buckets: 1 };
        support::add_product(&store, product).await;
    }
    let coupon = CouponId::new(1).unwrap();
    let welcome = Coupon {
        id: coupon,
        name: "Welcome".into(),
        discount: money("15.00"),
        total: 10,
        issued: 0,
        ends_at: datetime!(2026-12-24 00:00 UTC),
        shards: 1,
    };
    support::add_coupon(&store, welcome).await;
    store.issue(coupon, user(1), None, clock.now()).await.unwrap();
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
    let placed = create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 2), (2, 1)], Some(1)), None)
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
    assert_eq!(support::stock(&store, p(1)).await, Some(3));
    assert!(support::copy(&store, user(1), CouponId::new(1).unwrap()).await.unwrap().used_at.is_some());
    assert!(matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::AlreadyPaid)));
    assert_eq!(store.balance(user(1)).await.unwrap(), money("95.00"));
}

#[tokio::test]
async fn someone_elses_order_is_not_found() {
    let (store, clock) = shop().await;
    let order =
        create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None).await.unwrap().order;
    assert!(matches!(pay(&store, &clock, user(2), order.id, None).await, Err(OrderError::UnknownOrder)));
    assert!(matches!(get_order(&store, &clock, order.id, Some(user(2))).await, Err(OrderError::UnknownOrder)));
}

#[tokio::test]
async fn a_refusal_changes_nothing_but_the_orders_bounded_failure_record() {
    let (store, clock) = shop().await;
    let order =
        create_order(&store, &clock, OrderWindows::default(), request(2, &[(1, 1)], None), None).await.unwrap().order;
    for _ in 0..KEPT_FAILURES + 3 {
        let refused = pay(&store, &clock, user(2), order.id, None).await;
        assert!(matches!(refused, Err(OrderError::InsufficientBalance)));
    }
    let read = get_order(&store, &clock, order.id, None).await.unwrap();
    assert_eq!(read.failures.count, KEPT_FAILURES as u64 + 3);
    assert_eq!(read.failures.latest.len(), KEPT_FAILURES);
    assert!(read.failures.latest.iter().all(|f| f.reason == "INSUFFICIENT_BALANCE"));
    assert_eq!((read.status, support::stock(&store, p(1)).await), (OrderStatus::PendingPayment, Some(5)));
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
    assert_eq!((support::stock(&store, p(1)).await, store.balance(user(1)).await.unwrap()), (Some(5), money("100.00")));
    let read = get_order(&store, &clock, order.id, None).await.unwrap();
    assert_eq!(read.failures.count, 0, "an expired order's refusal is not a payment attempt");
}

#[tokio::test]
async fn a_paid_order_never_expires_and_its_ledger_entry_names_it() {
    let (store, clock) = shop().await;
    let order =
        create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None).await.unwrap().order;
    pay(&store, &clock, user(1), order.id, None).await.unwrap();
    clock.advance(time::Duration::days(30));
    assert_eq!(get_order(&store, &clock, order.id, None).await.unwrap().status, OrderStatus::Paid);
    let history = rushcart::balance::use_cases::history(&store, &clock, user(1), PageRequest::first(1)).await.unwrap();
    assert_eq!(
        (history.items[0].kind, history.items[0].order),
        (rushcart::balance::EntryKind::Payment, Some(order.id))
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
    let order =
        create_order(&store, &clock, OrderWindows::default(), request(1, &[(1, 1)], None), None).await.unwrap().order;
    let first = pay(&store, &clock, user(1), order.id, Some(key.clone())).await.unwrap();
    let again = pay(&store, &clock, user(1), order.id, Some(key.clone())).await.unwrap();
    assert!(again.replayed && again.payment == first.payment && again.balance_after == first.balance_after);
    let other =
        create_order(&store, &clock, OrderWindows::default(), request(1, &[(2, 1)], None), None).await.unwrap().order;
    let reused = pay(&store, &clock, user(1), other.id, Some(key)).await;
    assert!(matches!(reused, Err(OrderError::IdempotencyKeyReused)));
    assert_eq!(store.balance(user(1)).await.unwrap(), money("90.00"));
}

async fn placed(store: &DynamoStore, clock: &ManualClock, lines: &[(u64, u64)], coupon: Option<u64>) -> Order {
    create_order(store, clock, OrderWindows::default(), request(1, lines, coupon), None).await.unwrap().order
}

async fn cancel_as(
    store: &DynamoStore,
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
    assert_eq!((support::stock(&store, p(1)).await, store.balance(user(1)).await.unwrap()), (Some(5), money("100.00")));
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
    assert_eq!((support::stock(&store, p(1)).await, store.balance(user(1)).await.unwrap()), (Some(5), money("100.00")));
    assert_eq!(support::sold(&store, day, p(1)).await, 0, "taken from the day it was sold");
    assert!(support::copy(&store, user(1), CouponId::new(1).unwrap()).await.unwrap().used_at.is_none());
    let history = rushcart::balance::use_cases::history(&store, &clock, user(1), PageRequest::first(5)).await.unwrap();
    let kinds: Vec<_> = history.items.iter().map(|e| (e.kind, e.order, e.amount)).collect();
    assert_eq!(
        kinds[..2],
        [
            (rushcart::balance::EntryKind::Refund, Some(order.id), money("5.00")),
            (rushcart::balance::EntryKind::Payment, Some(order.id), money("5.00"))
        ]
    );
    assert!(matches!(pay(&store, &clock, user(1), order.id, None).await, Err(OrderError::Refunded)));
}

#[tokio::test]
async fn a_coupon_that_expired_before_the_refund_stays_used() {
    let (store, clock) = shop().await;
    let order = placed(&store, &clock, &[(1, 2)], Some(1)).await;
    pay(&store, &clock, user(1), order.id, None).await.unwrap();
    let expiry = support::copy(&store, user(1), CouponId::new(1).unwrap()).await.unwrap().expires_at;
    clock.advance(expiry - clock.now());
    let windows = OrderWindows { refund: time::Duration::days(365), ..OrderWindows::default() };
    cancel(&store, &clock, windows, owner(), order.id, None).await.unwrap();
    assert!(support::copy(&store, user(1), CouponId::new(1).unwrap()).await.unwrap().used_at.is_some());
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
