//! Cancelling and refunding orders against the real local stack through the local API,
//! in the races a shop meets: many cancels of one order, a cancel meeting a payment,
//! refunds while the same products sell, a refund beside a balance spend. Invariants 1,
//! 3, 4 and 8 are checked from the table afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use rushcart::clock::ManualClock;
use rushcart::ids::{CouponId, UserId};
use rushcart::orders::OrderStore;
use rushcart_testkit::audit::{check_orders, OrdersAudit};
use rushcart_tests::capacity::unavailable;
use rushcart_tests::invariants::{assert_ledger_consistent, money, read_ledger, users};
use rushcart_tests::TestApp;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

async fn audit(app: &TestApp) -> OrdersAudit {
    check_orders(app.client(), app.table())
        .await
        .unwrap_or_else(|violation| panic!("invariant violated: {violation:#}"))
}

async fn place(app: &TestApp, user: u64, lines: &[(u64, u64)], coupon: Option<u64>) -> String {
    let products: Vec<Value> = lines.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect();
    let mut body = json!({"userId": user, "products": products});
    if let Some(coupon) = coupon {
        body["couponId"] = coupon.into();
    }
    let (status, order) = app.post("/api/v1/orders", &body.to_string(), None).await;
    assert_eq!(status, 201, "{order}");
    order["orderId"].as_str().expect("orderId").to_owned()
}

async fn pay(app: &TestApp, user: u64, order: &str) -> (u16, Value) {
    app.post("/api/v1/payment", &json!({"userId": user, "orderId": order}).to_string(), None).await
}

/// The customer's own cancel (the token of `user`).
async fn cancel(app: &TestApp, user: u64, order: &str, key: Option<&str>) -> (u16, Value) {
    let token = app.token(user);
    app.post_as(&format!("/api/v1/orders/{order}/cancel"), "", key, Some(&token)).await
}

async fn stock(app: &TestApp, product: u64) -> u64 {
    app.get(&format!("/api/v1/products/{product}")).await.1["stock"].as_u64().expect("stock")
}

/// What the top 5 reads for `product` on `day`: its figure on every partition of the day.
async fn sold_on(app: &TestApp, day: time::Date, product: u64) -> u64 {
    let mut sold = 0;
    for partition in rushcart::adapters::dynamodb::keys::sales_partitions(day) {
        let item = app
            .client()
            .get_item()
            .table_name(app.table())
            .key("pk", rushcart::adapters::dynamodb::s(partition))
            .key("sk", rushcart::adapters::dynamodb::s(format!("PRODUCT#{product:020}")))
            .consistent_read(true)
            .send()
            .await
            .expect("read the day's sales")
            .item;
        let quantity = item.and_then(|i| i.get("quantity").and_then(|q| q.as_n().ok()).map(|n| n.parse::<u64>()));
        sold += quantity.transpose().expect("a count").unwrap_or(0);
    }
    sold
}

async fn coupon_used(app: &TestApp, user: u64, coupon: u64) -> bool {
    let copy = app.store.user_coupon(UserId::new(user).unwrap(), CouponId::new(coupon).unwrap()).await;
    copy.expect("read the copy").expect("the user holds it").used_at.is_some()
}

/// The user's ledger entries of `kind`, as (amount, order), oldest first.
async fn entries(app: &TestApp, user: u64, kind: &str) -> Vec<(rust_decimal::Decimal, Option<String>)> {
    let ledger = read_ledger(app.client(), app.table(), user).await;
    assert_ledger_consistent(&ledger);
    ledger.entries.values().filter(|e| e.kind == kind).map(|e| (e.amount, e.order.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_cancels_of_one_paid_order_at_once_refund_it_exactly_once() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(2, "10.00", 100).await;
    app.seed_coupon(1, 10, "5.00", OffsetDateTime::now_utc() + Duration::days(1)).await;
    assert_eq!(app.post("/api/v1/coupons/1?userId=1", "", None).await.0, 201);
    let order = place(&app, 1, &[(1, 3), (2, 1)], Some(1)).await;
    let (status, paid) = pay(&app, 1, &order).await;
    assert_eq!((status, paid["amount"].as_str()), (200, Some("35.00")), "{paid}");
    let day = OffsetDateTime::now_utc().date();
    assert_eq!((sold_on(&app, day, 1).await, stock(&app, 1).await), (3, 97));

    // Without a key, with keys of their own, and five sharing one key; four by an
    // operator: one refund, twenty identical answers.
    let operator = app.operator_token(900);
    let answers = join_all((0..20).map(|i| {
        let (app, order, operator) = (&app, &order, &operator);
        async move {
            match i % 4 {
                0 => cancel(app, 1, order, None).await,
                1 => cancel(app, 1, order, Some(&format!("cancel-{i}"))).await,
                2 => cancel(app, 1, order, Some("cancel-shared")).await,
                _ => app.post_as(&format!("/api/v1/admin/orders/{order}/cancel"), "", None, Some(operator)).await,
            }
        }
    }))
    .await;
    let first = &answers[0].1;
    for (status, body) in &answers {
        assert_eq!((*status, body["status"].as_str()), (200, Some("REFUNDED")), "{body}");
        assert_eq!(body, first, "every cancel answers the order as it now is");
    }

    assert_eq!(app.balance(1).await, "1000.00");
    assert_eq!((stock(&app, 1).await, stock(&app, 2).await), (100, 100));
    assert_eq!((sold_on(&app, day, 1).await, sold_on(&app, day, 2).await), (0, 0), "gone from the day it sold");
    assert!(!coupon_used(&app, 1, 1).await, "the unexpired coupon is usable again");
    assert_eq!(entries(&app, 1, "REFUND").await, [(money("35.00"), Some(order.clone()))]);
    let found = audit(&app).await;
    assert_eq!((found.orders, found.paid, found.refunded), (1, 0, 1));

    // The coupon really is usable again, and the refunded order can never be paid.
    let again = place(&app, 1, &[(1, 1)], Some(1)).await;
    assert_eq!(pay(&app, 1, &again).await.0, 200);
    let (status, refused) = pay(&app, 1, &order).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("ORDER_REFUNDED")), "{refused}");
    assert_eq!(app.balance(1).await, "995.00");
    audit(&app).await;
}

/// Under the capacity model the hundred requests land on one user's partition (`USER#1`)
/// and a pay or a cancel may be answered 503: it changed nothing, so the order ends as
/// the other one left it, and stock, balance and audit count exactly the orders paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_and_a_cancel_of_one_order_at_the_same_moment_end_in_one_consistent_state_fifty_times() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let orders = join_all((0..50).map(|_| place(&app, 1, &[(1, 2)], None))).await;

    let outcomes = join_all(orders.iter().map(|order| {
        let app = &app;
        async move {
            let (paid, cancelled) = tokio::join!(pay(app, 1, order), cancel(app, 1, order, None));
            (order.clone(), paid, cancelled)
        }
    }))
    .await;

    let mut ended: BTreeMap<String, usize> = BTreeMap::new();
    for (order, (pay_status, pay_body), (cancel_status, cancelled)) in &outcomes {
        let status = app.get(&format!("/api/v1/orders/{order}")).await.1["status"].as_str().unwrap().to_owned();
        let pay_unavailable = unavailable(*pay_status, pay_body);
        if unavailable(*cancel_status, cancelled) {
            // The cancel changed nothing: the order is as the payment left it.
            let expected = if pay_unavailable { "PENDING_PAYMENT" } else { "PAID" };
            assert_eq!(status, expected, "pay {pay_status} {pay_body}");
            assert!(pay_unavailable || *pay_status == 200, "{pay_body}");
            *ended.entry(status).or_default() += 1;
            continue;
        }
        assert_eq!(*cancel_status, 200, "a cancel never fails here: {cancelled}");
        assert_eq!(cancelled["status"].as_str(), Some(status.as_str()), "the cancel answered the final state");
        match status.as_str() {
            // The pay changed nothing; the cancel cancelled.
            "CANCELLED" if pay_unavailable => {}
            // The pay lost: refused, naming the status it met.
            "CANCELLED" => {
                assert_eq!((*pay_status, pay_body["code"].as_str()), (409, Some("ORDER_CANCELLED")), "{pay_body}")
            }
            // The pay won, then the cancel refunded it.
            "REFUNDED" => assert_eq!(*pay_status, 200, "{pay_body}"),
            // PAID would mean the cancel lost, which it cannot: a cancel that meets a
            // payment refunds it.
            other => panic!("order {order} ended {other}"),
        }
        *ended.entry(status).or_default() += 1;
    }
    // Without the model every order ends CANCELLED or REFUNDED: none stays paid.
    let still_paid = ended.get("PAID").copied().unwrap_or(0) as u64;
    assert_eq!(stock(&app, 1).await, 100 - 2 * still_paid);
    assert_eq!(
        money(&app.balance(1).await),
        money("1000.00") - money("20.00") * rust_decimal::Decimal::from(still_paid)
    );
    let found = audit(&app).await;
    assert_eq!(found.orders, 50);
    assert_eq!(
        (found.cancelled, found.refunded, found.paid as u64),
        (ended.get("CANCELLED").copied().unwrap_or(0), ended.get("REFUNDED").copied().unwrap_or(0), still_paid)
    );
    println!("pay vs cancel, 50 rounds: {ended:?}");
}

/// The product (stock 300) is one stock item by default (buckets start at 1,000), and
/// it stays so here: refunds into the one item are what most products see. Under the
/// capacity model 150 writes at once may push it past its ceiling, and a cancel or a
/// buy answered 503 changed nothing: stock, the day's sales, the audit and the balances
/// count exactly the 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_in_the_middle_of_a_rush_on_the_same_product_keep_stock_plus_sold_equal_to_the_initial() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=150, "100.00")).await;
    app.seed_products(1, "10.00", 300).await;
    // 50 buyers pay first; then they cancel while 100 more buy the same product.
    let early = join_all((1..=50).map(|u| place(&app, u, &[(1, 2)], None))).await;
    for (i, order) in early.iter().enumerate() {
        assert_eq!(pay(&app, i as u64 + 1, order).await.0, 200);
    }
    let late = join_all((51..=150).map(|u| place(&app, u, &[(1, 2)], None))).await;
    let cancels = early.iter().enumerate().map(|(i, order)| {
        let app = &app;
        async move { cancel(app, i as u64 + 1, order, None).await }
    });
    let buys = late.iter().enumerate().map(|(i, order)| {
        let app = &app;
        async move { pay(app, i as u64 + 51, order).await }
    });
    let (cancelled, bought) = tokio::join!(join_all(cancels), join_all(buys));
    assert!(cancelled.iter().all(|(s, b)| *s == 200 || unavailable(*s, b)), "{cancelled:?}");
    assert!(bought.iter().all(|(s, b)| *s == 200 || unavailable(*s, b)), "{bought:?}");
    let refunded = cancelled.iter().filter(|(s, _)| *s == 200).count() as u64;
    let sold_late = bought.iter().filter(|(s, _)| *s == 200).count() as u64;

    // 300 − 100 sold + 100 refunded − 200 sold (without the model: every one landed).
    assert_eq!(stock(&app, 1).await, 300 - 100 + 2 * refunded - 2 * sold_late);
    assert_eq!(sold_on(&app, OffsetDateTime::now_utc().date(), 1).await, 100 - 2 * refunded + 2 * sold_late);
    let found = audit(&app).await;
    let (paid, refunded) = ((50 - refunded + sold_late) as usize, refunded as usize);
    assert_eq!((found.orders, found.paid, found.refunded), (150, paid, refunded));
    for user in [1, 50] {
        let expected = if cancelled[user as usize - 1].0 == 200 { "100.00" } else { "80.00" };
        assert_eq!(app.balance(user).await, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_racing_balance_spends_of_the_same_user_leaves_the_balance_equal_to_its_ledger() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;
    app.seed_products(1, "50.00", 10).await;
    let order = place(&app, 1, &[(1, 1)], None).await;
    assert_eq!(pay(&app, 1, &order).await.0, 200);
    // 50.00 left; 20 spends of 5.00 (100.00) race the refund of 50.00: whatever the
    // order, the ledger explains the balance and no spend took it below zero.
    let spends = (0..20).map(|_| {
        let app = &app;
        async move { app.post("/api/v1/users/1/balance/use", r#"{"amount": "5.00"}"#, None).await.0 }
    });
    let (refund, spent) = tokio::join!(cancel(&app, 1, &order, None), join_all(spends));
    assert_eq!((refund.0, refund.1["status"].as_str()), (200, Some("REFUNDED")), "{}", refund.1);
    let accepted = spent.iter().filter(|s| **s == 200).count();
    assert!(spent.iter().all(|s| *s == 200 || *s == 409), "{spent:?}");
    assert!(accepted >= 10, "at least the 50.00 left before the refund was spendable: {accepted}");
    let expected = money("100.00") - money("5.00") * rust_decimal::Decimal::from(accepted as u64);
    assert_eq!(money(&app.balance(1).await), expected);
    assert_eq!(entries(&app, 1, "REFUND").await.len(), 1);
    audit(&app).await;
}

/// A paid order's refund window, expired orders, a coupon that expired before the
/// refund, and paying what is no longer payable — on a manual clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancels_follow_the_orders_clock_windows_and_expired_coupons_stay_used() {
    let clock = ManualClock::at(OffsetDateTime::now_utc());
    let app = TestApp::spawn_with_clock(Arc::new(clock.clone())).await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    app.seed_coupon(1, 10, "5.00", OffsetDateTime::now_utc() + Duration::hours(2)).await;
    assert_eq!(app.post("/api/v1/coupons/1?userId=1", "", None).await.0, 201);

    // Unpaid past its window: expired, then cancelled; nothing moved.
    let expired = place(&app, 1, &[(1, 1)], None).await;
    clock.advance(Duration::minutes(30));
    let (status, body) = cancel(&app, 1, &expired, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")), "{body}");
    assert!(body["cancelledAt"].is_string(), "{body}");
    let (status, body) = pay(&app, 1, &expired).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("ORDER_CANCELLED")), "{body}");

    // Paid with the coupon, refunded after the coupon's end: the money and stock come
    // back, the coupon stays used (nobody could use it any more).
    let with_coupon = place(&app, 1, &[(1, 2)], Some(1)).await;
    assert_eq!(pay(&app, 1, &with_coupon).await.0, 200);
    clock.advance(Duration::hours(3));
    let (status, body) = cancel(&app, 1, &with_coupon, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("REFUNDED")), "{body}");
    assert!(coupon_used(&app, 1, 1).await, "an expired coupon stays used");
    assert_eq!((app.balance(1).await, stock(&app, 1).await), ("1000.00".to_owned(), 100));

    // Paid, then past the 7-day refund window: refused, the order stays paid.
    let late = place(&app, 1, &[(1, 1)], None).await;
    assert_eq!(pay(&app, 1, &late).await.0, 200);
    clock.advance(Duration::days(7) - Duration::seconds(1));
    let (status, body) = cancel(&app, 1, &late, Some("late-1")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("REFUNDED")), "one second inside: {body}");
    let last = place(&app, 1, &[(1, 1)], None).await;
    assert_eq!(pay(&app, 1, &last).await.0, 200);
    clock.advance(Duration::days(7));
    let (status, body) = cancel(&app, 1, &last, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("REFUND_WINDOW_CLOSED")), "{body}");
    assert_eq!(app.get(&format!("/api/v1/orders/{last}")).await.1["status"], "PAID");
    assert_eq!(app.balance(1).await, "990.00");
    let found = audit(&app).await;
    assert_eq!((found.orders, found.paid, found.refunded, found.cancelled), (4, 1, 2, 1));
}

/// Every stranger's way at the two cancel routes: nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_cannot_cancel_an_order_and_bad_requests_change_nothing() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00"), (2, "1000.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let order = place(&app, 1, &[(1, 1)], None).await;
    assert_eq!(pay(&app, 1, &order).await.0, 200);
    let path = format!("/api/v1/orders/{order}/cancel");
    let admin = format!("/api/v1/admin/orders/{order}/cancel");
    let customer_2 = app.token(2);
    let customer_1 = app.token(1);
    for (path, body, token, key, status, code) in [
        (path.as_str(), "", None, None, 401, None),
        (admin.as_str(), "", None, None, 401, None),
        (path.as_str(), "", Some(customer_2.as_str()), None, 404, Some("ORDER_NOT_FOUND")),
        (path.as_str(), r#"{"userId": 2}"#, Some(customer_1.as_str()), None, 403, Some("FORBIDDEN")),
        (admin.as_str(), "", Some(customer_1.as_str()), None, 403, Some("FORBIDDEN")),
        (path.as_str(), r#"{"reason": "x"}"#, Some(customer_1.as_str()), None, 400, Some("UNKNOWN_FIELD")),
        (path.as_str(), "", Some(customer_1.as_str()), Some(" "), 400, Some("INVALID_IDEMPOTENCY_KEY")),
        ("/api/v1/orders/not-an-order/cancel", "", Some(customer_1.as_str()), None, 400, Some("INVALID_ORDER_ID")),
        (
            "/api/v1/orders/01JDQ3Z6Y0000000000000XYZ1/cancel",
            "",
            Some(customer_1.as_str()),
            None,
            404,
            Some("ORDER_NOT_FOUND"),
        ),
    ] {
        let (got, answer) = app.post_as(path, body, key, token).await;
        assert_eq!((got, answer["code"].as_str()), (status, code), "{path} {body}: {answer}");
    }
    assert_eq!(app.get(&format!("/api/v1/orders/{order}")).await.1["status"], "PAID");
    assert_eq!((app.balance(1).await, stock(&app, 1).await), ("990.00".to_owned(), 99));

    // A key used for one cancel cannot cancel another order; a payment's key cannot
    // cancel either.
    let other = place(&app, 1, &[(1, 1)], None).await;
    assert_eq!(cancel(&app, 1, &other, Some("k-1")).await.0, 200);
    let (status, reused) = cancel(&app, 1, &order, Some("k-1")).await;
    assert_eq!((status, reused["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")), "{reused}");
    let third = place(&app, 1, &[(1, 1)], None).await;
    let body = json!({"userId": 1, "orderId": third}).to_string();
    assert_eq!(app.post("/api/v1/payment", &body, Some("p-1")).await.0, 200);
    let (status, reused) = cancel(&app, 1, &third, Some("p-1")).await;
    assert_eq!((status, reused["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")), "{reused}");
    assert_eq!(app.get(&format!("/api/v1/orders/{order}")).await.1["status"], "PAID");

    // The operator refunds it for the customer; the operators' keys are theirs, apart
    // from the customer's (`k-1` here is new).
    let operator = app.operator_token(900);
    let (status, refunded) = app.post_as(&admin, "", Some("k-1"), Some(&operator)).await;
    assert_eq!((status, refunded["status"].as_str()), (200, Some("REFUNDED")), "{refunded}");
    assert_eq!(app.balance(1).await, "990.00", "the third order stays paid");
    audit(&app).await;
}

/// The two interleavings of a cancel and a payment, forced at the store: a cancel whose
/// read of the order is stale changes nothing and reads it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_that_read_the_order_before_a_payment_or_another_cancel_committed_changes_nothing() {
    use rushcart::ids::{OrderId, PaymentId};
    use rushcart::orders::use_cases::{cancel_as_read, pay_as_read, CancelAttempt};
    use rushcart::orders::Canceller;
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let id: OrderId = place(&app, 1, &[(1, 1)], None).await.parse().unwrap();
    let pending = app.store.order(id).await.unwrap().expect("the order");
    let now = OffsetDateTime::now_utc();
    pay_as_read(&app.store, &pending, None, PaymentId::generate(), now, None).await.expect("the payment commits first");

    let by = Canceller::Customer(UserId::new(1).unwrap());
    let stale = cancel_as_read(&app.store, &pending, by, now, None).await.expect("no fault");
    assert_eq!(stale, CancelAttempt::ReadAgain, "the order was paid meanwhile: nothing cancelled");
    let paid = app.store.order(id).await.unwrap().expect("the order");
    let refunded = cancel_as_read(&app.store, &paid, by, now, None).await.expect("no fault");
    assert!(
        matches!(refunded, CancelAttempt::Done(ref order) if order.status == rushcart::orders::OrderStatus::Refunded)
    );
    let again = cancel_as_read(&app.store, &paid, Canceller::Operator, now, None).await.expect("no fault");
    assert_eq!(again, CancelAttempt::ReadAgain, "refunded meanwhile: no second refund");
    assert_eq!((app.balance(1).await, stock(&app, 1).await), ("1000.00".to_owned(), 100));
    assert_eq!(entries(&app, 1, "REFUND").await.len(), 1);
    audit(&app).await;
}

/// A refund that would carry the balance past its maximum is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_past_the_balance_maximum_is_refused_and_moves_nothing() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "999999995.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let order = place(&app, 1, &[(1, 1)], None).await;
    assert_eq!(pay(&app, 1, &order).await.0, 200);
    let (status, _) = app.post("/api/v1/users/1/balance/charge", r#"{"amount": "10.00"}"#, None).await;
    assert_eq!(status, 200);
    let (status, refused) = cancel(&app, 1, &order, None).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("BALANCE_LIMIT_EXCEEDED")), "{refused}");
    assert_eq!(app.get(&format!("/api/v1/orders/{order}")).await.1["status"], "PAID");
    assert_eq!((app.balance(1).await, stock(&app, 1).await), ("999999995.00".to_owned(), 99));
    assert_eq!(sold_on(&app, OffsetDateTime::now_utc().date(), 1).await, 1);
    audit(&app).await;
}

/// An order paid before the day's sales figures were sharded counted on the day's one
/// figure (`SALES#<day>`), and its order item says nothing of shards: its refund takes
/// its quantities back from there, and the audit holds. Orders paid since count on
/// their own shard of the day.
#[tokio::test]
async fn an_order_paid_before_the_sales_were_sharded_is_refunded_from_the_days_one_figure() {
    use rushcart::adapters::dynamodb::{keys, s};
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(2, "10.00", 100).await;
    let (old, new) = (place(&app, 1, &[(1, 3)], None).await, place(&app, 1, &[(1, 2)], None).await);
    assert_eq!(pay(&app, 1, &old).await.0, 200);
    assert_eq!(pay(&app, 1, &new).await.0, 200);
    // The day the old order was paid on (a run across midnight UTC pays on two days).
    let (_, paid) = app.get(&format!("/api/v1/orders/{old}")).await;
    let paid_at = paid["paidAt"].as_str().expect("paidAt");
    let day = OffsetDateTime::parse(paid_at, &time::format_description::well_known::Rfc3339).expect("a time").date();
    let (_, other) = app.get(&format!("/api/v1/orders/{new}")).await;
    let both_that_day = other["paidAt"].as_str().is_some_and(|at| at.starts_with(&day.to_string()));
    let product = rushcart::ids::ProductId::new(1).unwrap();
    let old_id: rushcart::ids::OrderId = old.parse().unwrap();
    let (sharded, unsharded) = (keys::sales(day, product, Some(old_id)), keys::sales(day, product, None));
    assert_ne!(sharded.pk, unsharded.pk);

    // Rewrite the old order as a release before the shards left it.
    let (client, table) = (app.client(), app.table());
    client
        .update_item()
        .table_name(table)
        .set_key(Some(keys::order(old_id).item()))
        .update_expression("REMOVE salesSharded")
        .send()
        .await
        .unwrap();
    client
        .update_item()
        .table_name(table)
        .set_key(Some(sharded.item()))
        .update_expression("ADD quantity :minus")
        .expression_attribute_values(":minus", rushcart::adapters::dynamodb::n(-3))
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name(table)
        .set_item(Some(unsharded.item()))
        .item("day", s(day.to_string()))
        .item("productId", rushcart::adapters::dynamodb::n(1))
        .item("quantity", rushcart::adapters::dynamodb::n(3))
        .send()
        .await
        .unwrap();
    audit(&app).await;
    if both_that_day {
        assert_eq!(sold_on(&app, day, 1).await, 5);
    }

    let (status, body) = cancel(&app, 1, &old, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("REFUNDED")), "{body}");
    let (status, body) = cancel(&app, 1, &new, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("REFUNDED")), "{body}");
    assert_eq!(sold_on(&app, day, 1).await, 0);
    let row = |key: rushcart::adapters::dynamodb::keys::Key| async move {
        let item = client.get_item().table_name(table).set_key(Some(key.item())).send().await.unwrap().item.unwrap();
        item["quantity"].as_n().unwrap().parse::<i64>().unwrap()
    };
    assert_eq!(row(unsharded).await, 0, "the old order's 3 came off the day's one figure");
    audit(&app).await;
}
