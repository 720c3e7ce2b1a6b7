//! An order's life after it is placed, against the real local stack through the local
//! API: its customer's list, its payment deadline, the operator's view of it, and the
//! ledger entry that names it. Time is a manual clock the tests move.

use std::sync::Arc;

use futures::future::join_all;
use rushcart::clock::{Clock, ManualClock};
use rushcart::ids::{IdempotencyKey, OrderId, PaymentId, UserId};
use rushcart::orders::use_cases::pay_as_read;
use rushcart::orders::{OrderError, OrderPayer};
use rushcart_testkit::audit::check_orders;
use rushcart_tests::invariants::{assert_ledger_consistent, money, read_ledger};
use rushcart_tests::TestApp;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

/// The default payment window.
const WINDOW: Duration = Duration::minutes(30);

/// An app on a manual clock: users 1 and 2 with 1,000.00, products 1–3 at 10.00 with
/// stock 100.
async fn shop() -> (TestApp, ManualClock) {
    let clock = ManualClock::at(OffsetDateTime::now_utc());
    let app = TestApp::spawn_with_clock(Arc::new(clock.clone())).await;
    app.seed_users(&[(1, "1000.00"), (2, "1000.00")]).await;
    app.seed_products(3, "10.00", 100).await;
    (app, clock)
}

async fn place(app: &TestApp, user: u64, product: u64) -> Value {
    let body = json!({"userId": user, "products": [{"productId": product, "quantity": 1}]});
    let (status, order) = app.post("/api/v1/orders", &body.to_string(), None).await;
    assert_eq!(status, 201, "{order}");
    order
}

async fn pay(app: &TestApp, user: u64, order: &str) -> (u16, Value) {
    app.post("/api/v1/payment", &json!({"userId": user, "orderId": order}).to_string(), None).await
}

async fn stock(app: &TestApp, product: u64) -> u64 {
    app.get(&format!("/api/v1/products/{product}")).await.1["stock"].as_u64().expect("stock")
}

/// Every page of user 1's orders, `limit` at a time: each page's `(orderId, status)`.
async fn pages(app: &TestApp, limit: u32) -> Vec<Vec<(String, String)>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/users/1/orders?limit={limit}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = app.get(&path).await;
        assert_eq!((status, page["userId"].as_u64()), (200, Some(1)), "{page}");
        let items = page["items"].as_array().expect("items");
        pages.push(
            items
                .iter()
                .map(|o| (o["orderId"].as_str().unwrap().into(), o["status"].as_str().unwrap().into()))
                .collect(),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customers_orders_are_listed_newest_first_in_pages_with_their_status_now() {
    let (app, clock) = shop().await;
    let mut placed = Vec::new();
    for i in 0..25u64 {
        placed.push(place(&app, 1, 1 + i % 3).await["orderId"].as_str().unwrap().to_owned());
        if i % 2 == 0 {
            place(&app, 2, 1).await;
        }
        clock.advance(Duration::seconds(1));
    }
    // Every fifth order is paid.
    for order in placed.iter().step_by(5) {
        assert_eq!(pay(&app, 1, order).await.0, 200);
    }
    placed.reverse();
    let status_of =
        |i: usize, unpaid: &str| if (24 - i).is_multiple_of(5) { "PAID".to_owned() } else { unpaid.to_owned() };
    let expected: Vec<(String, String)> =
        placed.iter().enumerate().map(|(i, id)| (id.clone(), status_of(i, "PENDING_PAYMENT"))).collect();

    let listed = pages(&app, 10).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(listed.concat(), expected, "newest first, only user 1's, each once");

    // Past the payment window the unpaid ones read as expired; the paid stay paid.
    clock.advance(WINDOW);
    let expired: Vec<(String, String)> =
        placed.iter().enumerate().map(|(i, id)| (id.clone(), status_of(i, "EXPIRED"))).collect();
    assert_eq!(pages(&app, 100).await.concat(), expired);

    let (_, first) = app.get("/api/v1/users/1/orders?limit=1").await;
    let order = &first["items"][0];
    assert_eq!(order["lines"][0]["unitPrice"], "10.00", "{order}");
    assert!(order["payBy"].is_string() && order["total"] == "10.00" && order["couponId"].is_null(), "{order}");

    for (path, status, code) in [
        ("/api/v1/users/1/orders?limit=0", 400, "INVALID_LIMIT"),
        ("/api/v1/users/1/orders?limit=101", 400, "INVALID_LIMIT"),
        ("/api/v1/users/1/orders?cursor=!!", 400, "INVALID_CURSOR"),
        ("/api/v1/users/1/orders?cursor=aDoz", 400, "INVALID_CURSOR"),
        ("/api/v1/users/9/orders", 404, "USER_NOT_FOUND"),
    ] {
        let (got, body) = app.get(path).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}: {body}");
    }
    let (status, _) = app.get_as("/api/v1/users/2/orders", Some(&app.token(1))).await;
    assert_eq!(status, 403, "another customer's list is forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_unpaid_past_its_window_expires_and_paying_it_changes_nothing() {
    let (app, clock) = shop().await;
    let order = place(&app, 1, 1).await;
    let id = order["orderId"].as_str().unwrap().to_owned();
    let created =
        OffsetDateTime::parse(order["createdAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let pay_by =
        OffsetDateTime::parse(order["payBy"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(pay_by - created, WINDOW, "{order}");

    clock.advance(WINDOW - Duration::seconds(1));
    assert_eq!(app.get(&format!("/api/v1/orders/{id}")).await.1["status"], "PENDING_PAYMENT");
    clock.advance(Duration::seconds(1));
    let (status, read) = app.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!((status, read["status"].as_str()), (200, Some("EXPIRED")), "{read}");

    // Many at once, with and without a key: every one refused, nothing moves.
    let tries = join_all((0..20).map(|i| {
        let body = json!({"userId": 1, "orderId": id}).to_string();
        let key = (i % 2 == 0).then(|| format!("late-{i}"));
        let app = &app;
        async move { app.post("/api/v1/payment", &body, key.as_deref()).await }
    }))
    .await;
    for (status, body) in &tries {
        assert_eq!((*status, body["code"].as_str()), (409, Some("ORDER_EXPIRED")), "{body}");
    }
    assert_eq!(app.balance(1).await, "1000.00");
    assert_eq!(stock(&app, 1).await, 100);
    let item = app.order_item(&id).await;
    assert_eq!(item["status"].as_s().unwrap(), "PENDING_PAYMENT", "expiry is decided when read, not written");
    assert_eq!(item["failedAttempts"].as_n().unwrap(), "0", "a closed window is not a refused payment");
    let audit = check_orders(app.client(), app.table()).await.expect("invariants hold");
    assert_eq!((audit.orders, audit.paid), (1, 0));
}

/// The deadline is a condition of the payment transaction itself: a payment whose
/// read of the order came before the deadline but whose write comes after it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_payment_transaction_itself_refuses_a_payment_past_the_deadline() {
    let (app, clock) = shop().await;
    let id: OrderId = place(&app, 1, 2).await["orderId"].as_str().unwrap().parse().unwrap();
    let (order, seen) = app.store.order_to_pay(id, UserId::new(1).unwrap()).await.unwrap();
    let (order, seen) = (order.expect("the order"), Some(seen.expect("the payer's balance")));
    let late = clock.now() + WINDOW;
    let key = IdempotencyKey::parse("late-pay").unwrap();
    let refused = pay_as_read(&app.store, &order, seen, PaymentId::generate(), late, Some(&key)).await;
    assert!(matches!(refused, Err(OrderError::Expired)), "{refused:?}");
    let refused = pay_as_read(&app.store, &order, None, PaymentId::generate(), late, None).await;
    assert!(matches!(refused, Err(OrderError::Expired)), "without the balance read too: {refused:?}");
    let just_in_time = late - Duration::milliseconds(1);
    let paid =
        pay_as_read(&app.store, &order, seen, PaymentId::generate(), just_in_time, None).await.expect("paid in time");
    assert_eq!((paid.payment.amount.to_string(), paid.balance_after.to_string()), ("10.00".into(), "990.00".into()));
    // Once paid, the deadline no longer matters: the order stays paid, never expires.
    clock.advance(WINDOW * 10);
    assert_eq!(app.get(&format!("/api/v1/orders/{id}")).await.1["status"], "PAID");
    let refused = pay_as_read(&app.store, &order, None, PaymentId::generate(), late, None).await;
    assert!(matches!(refused, Err(OrderError::AlreadyPaid)), "{refused:?}");
    assert_eq!((app.balance(1).await, stock(&app, 2).await), ("990.00".to_owned(), 99));
    check_orders(app.client(), app.table()).await.expect("invariants hold");
}

/// A payment reads the payer's balance with the order and commits only if it has not
/// moved since; when another change came in between, it tries again from the balance
/// the refusal returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_whose_balance_moved_after_its_read_still_pays_once_with_the_right_entry() {
    let (app, clock) = shop().await;
    let id: OrderId = place(&app, 1, 2).await["orderId"].as_str().unwrap().parse().unwrap();
    let (order, seen) = app.store.order_to_pay(id, UserId::new(1).unwrap()).await.unwrap();
    let (order, seen) = (order.expect("the order"), seen.expect("the payer's balance"));
    assert_eq!((seen.balance.to_string(), seen.seq), ("1000.00".to_owned(), 1));
    let (status, charged) = app.post("/api/v1/users/1/balance/charge", r#"{"amount":"5.00"}"#, None).await;
    assert_eq!(status, 200, "{charged}");

    let paid =
        pay_as_read(&app.store, &order, Some(seen), PaymentId::generate(), clock.now(), None).await.expect("paid");
    assert_eq!(paid.balance_after.to_string(), "995.00", "the balance after both changes, not the one seen");
    assert_eq!(app.counters().payments_moved(), 1, "it found the balance moved");
    let again = pay_as_read(&app.store, &order, Some(seen), PaymentId::generate(), clock.now(), None).await;
    assert!(matches!(again, Err(OrderError::AlreadyPaid)), "{again:?}");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_ledger_consistent(&ledger);
    let kinds: Vec<&str> = ledger.entries.values().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["CHARGE", "CHARGE", "PAYMENT"], "the opening entry, the charge, the payment: seqs 1, 2, 3");
    assert_eq!(ledger.entries[&3].balance_after, money("995.00"));
    check_orders(app.client(), app.table()).await.expect("invariants hold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payments_history_entry_names_its_order_and_a_later_price_change_does_not_touch_the_order() {
    let (app, _) = shop().await;
    let id = place(&app, 1, 3).await["orderId"].as_str().unwrap().to_owned();
    let op = app.operator_token(900);
    let (status, _) =
        app.send_as(reqwest::Method::PUT, "/api/v1/admin/products/3", r#"{"price": "25.00"}"#, None, Some(&op)).await;
    assert_eq!(status, 200);
    let (status, paid) = pay(&app, 1, &id).await;
    assert_eq!((status, paid["amount"].as_str()), (200, Some("10.00")), "the price the order was made at: {paid}");
    let (_, history) = app.get("/api/v1/users/1/balance/history?limit=2").await;
    let (payment, opening) = (&history["items"][0], &history["items"][1]);
    assert_eq!(
        (payment["type"].as_str(), payment["orderId"].as_str()),
        (Some("PAYMENT"), Some(id.as_str())),
        "{history}"
    );
    assert_eq!(payment["amount"], "10.00");
    assert!(opening.get("orderId").is_none(), "a charge names no order: {opening}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_reads_any_order_and_a_customer_or_stranger_cannot() {
    let (app, _) = shop().await;
    let id = place(&app, 2, 1).await["orderId"].as_str().unwrap().to_owned();
    assert_eq!(pay(&app, 2, &id).await.0, 200);
    let before = app.order_item(&id).await;
    let path = format!("/api/v1/admin/orders/{id}");

    let op = app.operator_token(900);
    let (status, order) = app.get_as(&path, Some(&op)).await;
    assert_eq!((status, order["userId"].as_u64(), order["status"].as_str()), (200, Some(2), Some("PAID")), "{order}");
    assert_eq!(order["payments"].as_array().map(Vec::len), Some(1), "{order}");

    let (status, refused) = app.get_as(&path, Some(&app.token(2))).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("FORBIDDEN")), "even the owner is not an operator");
    let (status, refused) = app.get_as(&path, None).await;
    assert_eq!((status, refused), (401, json!({"message": "Unauthorized"})));
    for (path, status, code) in [
        ("/api/v1/admin/orders/01JDQ3Z6Y0000000000000XYZ1", 404, "ORDER_NOT_FOUND"),
        ("/api/v1/admin/orders/nope", 400, "INVALID_ORDER_ID"),
    ] {
        let (got, body) = app.get_as(path, Some(&op)).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}: {body}");
    }
    assert_eq!(app.order_item(&id).await, before, "reading changed nothing");
}
