//! Orders and payment against the real local stack, through the local API over HTTP;
//! invariants 1–5 checked from the database after every race.

use futures::future::join_all;
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

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/api/v1/orders", &body.to_string(), None).await
}

async fn order_id(app: &TestApp, body: Value) -> String {
    let (status, order) = create(app, body).await;
    assert_eq!(status, 201, "{order}");
    order["orderId"].as_str().unwrap().to_owned()
}

async fn pay(app: &TestApp, user: u64, order: &str) -> (u16, Value) {
    app.post("/api/v1/payment", &json!({"userId": user, "orderId": order}).to_string(), None).await
}

async fn stock(app: &TestApp, product: u64) -> u64 {
    let (_, body) = app.get(&format!("/api/v1/products/{product}")).await;
    body["stock"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_users_each_paying_three_products_times_ten_empty_the_stock_exactly() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=100, "1000000.00")).await;
    app.seed_products(3, "1000.00", 1000).await;
    let lines =
        json!([{"productId": 1, "quantity": 10}, {"productId": 2, "quantity": 10}, {"productId": 3, "quantity": 10}]);
    let orders = join_all((1..=100).map(|user| order_id(&app, json!({"userId": user, "products": lines})))).await;

    let results = join_all(orders.iter().zip(1..=100).map(|(order, user)| pay(&app, user, order))).await;

    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["status"], "SUCCEEDED");
        assert_eq!(body["amount"], "30000.00");
        assert_eq!(body["balanceAfter"], "970000.00");
    }
    for product in 1..=3 {
        assert_eq!(stock(&app, product).await, 0);
    }
    for user in [1, 50, 100] {
        assert_eq!(app.balance(user).await, "970000.00");
    }
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid, audit.failed_payments), (100, 100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_and_fifty_users_racing_for_stock_of_a_thousand_leave_fifty_refused_and_untouched() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=150, "50000.00")).await;
    app.seed_products(1, "1000.00", 1000).await;
    let orders = join_all(
        (1..=150).map(|user| order_id(&app, json!({"userId": user, "products": [{"productId": 1, "quantity": 10}]}))),
    )
    .await;

    let results = join_all(orders.iter().zip(1..=150).map(|(order, user)| pay(&app, user, order))).await;

    let paid: Vec<u64> = (1..=150).zip(&results).filter(|(_, (s, _))| *s == 200).map(|(u, _)| u).collect();
    let refused: Vec<u64> = (1..=150)
        .zip(&results)
        .filter(|(_, (s, b))| {
            *s == 409 && b["code"] == "OUT_OF_STOCK" && b["message"].as_str().unwrap().contains("product 1")
        })
        .map(|(u, _)| u)
        .collect();
    assert_eq!((paid.len(), refused.len()), (100, 50));
    assert_eq!(stock(&app, 1).await, 0);
    for user in &refused[..5] {
        assert_eq!(app.balance(*user).await, "50000.00", "a refused payment takes nothing");
    }
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid, audit.failed_payments), (150, 100, 50));
    // A refused order stays payable and says why it failed.
    let (_, order) =
        app.get(&format!("/api/v1/orders/{}?userId={}", orders[(refused[0] - 1) as usize], refused[0])).await;
    assert_eq!(order["status"], "PENDING_PAYMENT");
    assert_eq!(order["payments"][0]["status"], "FAILED");
    assert_eq!(order["payments"][0]["reason"], "OUT_OF_STOCK");
}

/// Under the capacity model a payment may be answered 503 (one order's item, one user's
/// partition); still exactly one answer is the payment, and the balance and stock show
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_order_paid_twenty_times_at_once_is_paid_once() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10000.00")]).await;
    app.seed_products(1, "1000.00", 100).await;
    let order = order_id(&app, json!({"userId": 1, "products": [{"productId": 1, "quantity": 2}]})).await;

    let results = join_all((0..20).map(|_| pay(&app, 1, &order))).await;

    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 1, "{results:?}");
    assert!(results
        .iter()
        .filter(|(s, _)| *s != 200)
        .all(|(s, b)| (*s == 409 && b["code"] == "ALREADY_PAID") || unavailable(*s, b)));
    assert_eq!(app.balance(1).await, "8000.00");
    assert_eq!(stock(&app, 1).await, 98);
    let (_, paid) = app.get(&format!("/api/v1/orders/{order}")).await;
    assert_eq!(paid["status"], "PAID");
    assert_eq!(paid["payments"].as_array().unwrap().len(), 1);
    audit(&app).await;
}

/// A payment commits from the balance it read with the order unless another change of
/// the user's came first (then it tries again, and at last pays without the read);
/// racing the user's own charges and uses, many try again, and every change still lands
/// exactly once, in one gapless ledger.
///
/// Under the capacity model all 130 land on one user's partition (`USER#1`, one ledger:
/// not shardable), so some may be answered 503; those changed nothing, and the balance,
/// stock, ledger and audit count exactly the 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_thirty_payments_racing_a_hundred_of_their_own_charges_and_uses_all_land_once() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(1, "10.00", 1000).await;
    let line = json!([{"productId": 1, "quantity": 1}]);
    let orders = join_all((0..30).map(|_| order_id(&app, json!({"userId": 1, "products": line})))).await;

    let payments = join_all(orders.iter().map(|order| pay(&app, 1, order)));
    let changes = join_all((0..100).map(|i| {
        let path = if i % 2 == 0 { "/api/v1/users/1/balance/charge" } else { "/api/v1/users/1/balance/use" };
        app.post(path, r#"{"amount":"5.00"}"#, None)
    }));
    let (payments, changes) = futures::join!(payments, changes);

    for (status, body) in payments.iter().chain(&changes) {
        assert!(*status == 200 || unavailable(*status, body), "{status} {body}");
    }
    let landed = |answers: &[(u16, Value)], parity: usize| {
        answers.iter().skip(parity).step_by(2).filter(|(status, _)| *status == 200).count() as u64
    };
    let paid = payments.iter().filter(|(status, _)| *status == 200).count() as u64;
    let (charged, used) = (landed(&changes, 0), landed(&changes, 1));
    let expected = money("1000.00") - money("10.00") * rust_decimal::Decimal::from(paid)
        + money("5.00") * (rust_decimal::Decimal::from(charged) - rust_decimal::Decimal::from(used));
    assert_eq!(
        money(&app.balance(1).await),
        expected,
        "{paid} payments of 10.00, {charged} charges and {used} uses of 5.00 (without the model: 30, 50, 50 → 700.00)"
    );
    assert_eq!(stock(&app, 1).await, 1000 - paid);
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_ledger_consistent(&ledger);
    let entries = 1 + paid + charged + used;
    assert_eq!(
        ledger.entries.len() as u64,
        entries,
        "the opening entry and one per change answered 200: seqs 1..=entries"
    );
    for (_, payment) in payments.iter().filter(|(status, _)| *status == 200) {
        let after = money(payment["balanceAfter"].as_str().unwrap());
        let entry = ledger.entries.values().find(|e| e.order.as_deref() == payment["orderId"].as_str());
        assert_eq!(entry.map(|e| e.balance_after), Some(after), "each payment answers its own entry's balance");
    }
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid as u64, audit.failed_payments), (30, paid, 0));
    let moved = app.counters().payments_moved();
    eprintln!("30 payments found the balance moved since they read it {moved} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_coupon_on_two_orders_paid_at_once_discounts_one() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10000.00")]).await;
    app.seed_products(1, "1000.00", 100).await;
    app.seed_coupon(1, 10, "1500.00", OffsetDateTime::now_utc() + Duration::days(1)).await;
    assert_eq!(app.post("/api/v1/coupons/1?userId=1", "", None).await.0, 201);
    let body = json!({"userId": 1, "products": [{"productId": 1, "quantity": 2}], "couponId": 1});
    let (status, first) = create(&app, body.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(
        (first["subtotal"].as_str(), first["discount"].as_str(), first["total"].as_str()),
        (Some("2000.00"), Some("1500.00"), Some("500.00"))
    );
    let second = order_id(&app, body).await;
    let first = first["orderId"].as_str().unwrap().to_owned();

    let results = join_all([pay(&app, 1, &first), pay(&app, 1, &second)]).await;

    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 1, "{results:?}");
    let (status, refused) = results.iter().find(|(s, _)| *s != 200).unwrap();
    assert_eq!((*status, refused["code"].as_str()), (409, Some("COUPON_UNAVAILABLE")));
    assert_eq!(app.balance(1).await, "9500.00", "one discounted payment of 500.00");
    assert_eq!(stock(&app, 1).await, 98);
    let (_, mine) = app.get("/api/v1/users/1/coupons").await;
    assert_eq!(mine["items"][0]["status"], "USED");
    // Once used, a new order cannot take the coupon either.
    let (status, body) =
        create(&app, json!({"userId": 1, "products": [{"productId": 1, "quantity": 1}], "couponId": 1})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("COUPON_UNAVAILABLE")));
    audit(&app).await;
}

#[tokio::test]
async fn an_insufficient_balance_leaves_only_a_failure_record() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "999.99")]).await;
    app.seed_products(1, "1000.00", 10).await;
    app.seed_coupon(1, 10, "0.01", OffsetDateTime::now_utc() + Duration::days(1)).await;
    assert_eq!(app.post("/api/v1/coupons/1?userId=1", "", None).await.0, 201);
    let order =
        order_id(&app, json!({"userId": 1, "products": [{"productId": 1, "quantity": 2}], "couponId": 1})).await;

    let (status, body) = pay(&app, 1, &order).await;

    assert_eq!((status, body["code"].as_str()), (409, Some("INSUFFICIENT_BALANCE")));
    assert_eq!(app.balance(1).await, "999.99");
    assert_eq!(stock(&app, 1).await, 10);
    let (_, mine) = app.get("/api/v1/users/1/coupons").await;
    assert_eq!(mine["items"][0]["status"], "AVAILABLE");
    let (_, order_now) = app.get(&format!("/api/v1/orders/{order}")).await;
    assert_eq!(order_now["status"], "PENDING_PAYMENT");
    assert_eq!(order_now["payments"][0]["reason"], "INSUFFICIENT_BALANCE");
    let found = audit(&app).await;
    assert_eq!((found.paid, found.failed_payments), (0, 1));
    // Topped up, the same order pays.
    assert_eq!(app.post("/api/v1/users/1/balance/charge", r#"{"amount":"1000.00"}"#, None).await.0, 200);
    let (status, paid) = pay(&app, 1, &order).await;
    assert_eq!((status, paid["balanceAfter"].as_str()), (200, Some("0.00")));
    audit(&app).await;
}

#[tokio::test]
async fn create_order_and_pay_honour_idempotency_keys() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10000.00")]).await;
    app.seed_products(2, "10.00", 100).await;
    let body = json!({"userId": 1, "products": [{"productId": 2, "quantity": 1}, {"productId": 1, "quantity": 2}, {"productId": 2, "quantity": 3}]}).to_string();

    let (first_status, first) = app.post("/api/v1/orders", &body, Some("order-1")).await;
    let (again_status, again) = app.post("/api/v1/orders", &body, Some("order-1")).await;
    assert_eq!((first_status, again_status), (201, 201));
    assert_eq!(first, again);
    let lines: Vec<(u64, u64)> = first["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["productId"].as_u64().unwrap(), l["quantity"].as_u64().unwrap()))
        .collect();
    assert_eq!(lines, [(1, 2), (2, 4)], "lines of one product are merged");
    assert_eq!(first["total"], "60.00");
    let (status, other) =
        app.post("/api/v1/orders", r#"{"userId":1,"products":[{"productId":1,"quantity":1}]}"#, Some("order-1")).await;
    assert_eq!((status, other["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")));

    let order = first["orderId"].as_str().unwrap();
    let pay_body = json!({"userId": 1, "orderId": order}).to_string();
    let results = join_all((0..10).map(|_| app.post("/api/v1/payment", &pay_body, Some("pay-1")))).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(*body, results[0].1, "every retry gets the first payment");
    }
    assert_eq!(app.balance(1).await, "9940.00");
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid), (1, 1));
}

#[tokio::test]
async fn bad_order_and_payment_requests_are_4xx_json_errors_and_write_nothing() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00"), (2, "1000.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let mine = order_id(&app, json!({"userId": 1, "products": [{"productId": 1, "quantity": 1}]})).await;
    let orders: Vec<(&str, u16, &str)> = vec![
        ("{}", 400, "INVALID_PRODUCTS"),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": 1}], "ammount": 1}"#, 400, "UNKNOWN_FIELD"),
        (r#"{"userId": 1, "userId": 1, "products": [{"productId": 1, "quantity": 1}]}"#, 400, "DUPLICATE_FIELD"),
        (r#"{"userId": 1}"#, 400, "INVALID_PRODUCTS"),
        (r#"{"userId": 1, "products": []}"#, 400, "INVALID_PRODUCTS"),
        (r#"{"userId": 1, "products": {"productId": 1}}"#, 400, "INVALID_PRODUCTS"),
        (r#"{"userId": 1, "products": [{"quantity": 1}]}"#, 400, "INVALID_PRODUCTS"),
        (r#"{"userId": 1, "products": [{"productId": "x", "quantity": 1}]}"#, 400, "INVALID_PRODUCT_ID"),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": 0}]}"#, 400, "INVALID_QUANTITY"),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": -2}]}"#, 400, "INVALID_QUANTITY"),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": 1.5}]}"#, 400, "INVALID_QUANTITY"),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": 1001}]}"#, 400, "INVALID_QUANTITY"),
        (
            r#"{"userId": 1, "products": [{"productId": 1, "quantity": 600}, {"productId": 1, "quantity": 600}]}"#,
            400,
            "INVALID_QUANTITY",
        ),
        (
            r#"{"userId": 1, "products": [{"productId": 1, "quantity": 1}], "couponId": "abc"}"#,
            400,
            "INVALID_COUPON_ID",
        ),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": 1}], "couponId": 9}"#, 409, "COUPON_UNAVAILABLE"),
        (r#"{"userId": 1, "products": [{"productId": 7, "quantity": 1}]}"#, 404, "PRODUCT_NOT_FOUND"),
        (r#"{"userId": 9, "products": [{"productId": 1, "quantity": 1}]}"#, 404, "USER_NOT_FOUND"),
        (r#"{"userId": 1, "products": [{"productId": 1, "quantity": 1000}]}"#, 201, ""),
        ("not json", 400, "MALFORMED_JSON"),
    ];
    let many: Vec<Value> = (1..=41).map(|p| json!({"productId": p, "quantity": 1})).collect();
    let too_many = json!({"userId": 1, "products": many}).to_string();
    for (body, status, code) in orders.into_iter().chain([(too_many.as_str(), 400, "INVALID_PRODUCTS")]) {
        let (got_status, got) = app.post("/api/v1/orders", body, None).await;
        assert_eq!(got_status, status, "{body}: {got}");
        if !code.is_empty() {
            assert_eq!(got["code"], code, "{body}: {got}");
        }
    }
    let payments: Vec<(String, u16, &str)> = vec![
        (r#"{"orderId": "x"}"#.into(), 400, "INVALID_ORDER_ID"),
        (r#"{"userId": 1}"#.into(), 400, "INVALID_ORDER_ID"),
        (r#"{"userId": 1, "orderId": 5}"#.into(), 400, "INVALID_ORDER_ID"),
        (r#"{"userId": 1, "orderId": "not-an-order"}"#.into(), 400, "INVALID_ORDER_ID"),
        (json!({"userId": 1, "orderId": "01JDQ3Z6Y0000000000000XYZ1"}).to_string(), 404, "ORDER_NOT_FOUND"),
        (json!({"userId": 2, "orderId": mine}).to_string(), 404, "ORDER_NOT_FOUND"),
        ("[]".into(), 400, "INVALID_BODY"),
    ];
    for (body, status, code) in &payments {
        let (got_status, got) = app.post("/api/v1/payment", body, None).await;
        assert_eq!((got_status, got["code"].as_str()), (*status, Some(*code)), "{body}: {got}");
    }
    for (path, status, code) in [
        ("/api/v1/orders/xyz", 400, "INVALID_ORDER_ID"),
        ("/api/v1/orders/01JDQ3Z6Y0000000000000XYZ1", 404, "ORDER_NOT_FOUND"),
    ] {
        let (got_status, got) = app.get(path).await;
        assert_eq!((got_status, got["code"].as_str()), (status, Some(code)), "{path}: {got}");
    }
    let (status, _) = app.get(&format!("/api/v1/orders/{mine}?userId=2")).await;
    assert_eq!(status, 404, "someone else's order is not revealed");
    assert_eq!(app.balance(2).await, "1000.00");
    assert_eq!(stock(&app, 1).await, 100);
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid, audit.failed_payments), (2, 0, 0));
}

/// Sends `requests` at most `at_once` at a time.
async fn in_waves<F: std::future::Future>(requests: impl Iterator<Item = F>, at_once: usize) -> Vec<F::Output> {
    use futures::StreamExt as _;
    futures::stream::iter(requests).buffer_unordered(at_once).collect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_retried_after_six_hundred_later_ledger_entries_gets_its_first_answer() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10000.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let order = order_id(&app, json!({"userId": 1, "products": [{"productId": 1, "quantity": 2}]})).await;
    let body = json!({"userId": 1, "orderId": order}).to_string();
    let (status, first) = app.post("/api/v1/payment", &body, Some("pay-late")).await;
    assert_eq!(status, 200, "{first}");

    // The payment's ledger entry sinks below the 600 newest history rows.
    let charges = (0..600).map(|_| app.post("/api/v1/users/1/balance/charge", r#"{"amount": "0.01"}"#, None));
    assert!(in_waves(charges, 50).await.iter().all(|(status, _)| *status == 200));

    let (status, again) = app.post("/api/v1/payment", &body, Some("pay-late")).await;
    assert_eq!((status, &again), (200, &first), "the retry is answered from the entry's key, not a search");
    assert_eq!(app.balance(1).await, "9986.00");
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_refused_payments_leave_the_order_one_small_item_and_it_can_still_be_paid() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "5.00")]).await;
    app.seed_products(1, "10.00", 100).await;
    let order = order_id(&app, json!({"userId": 1, "products": [{"productId": 1, "quantity": 1}]})).await;

    let refused = in_waves((0..2000).map(|_| pay(&app, 1, &order)), 50).await;
    assert!(refused.iter().all(|(status, body)| *status == 409 && body["code"] == "INSUFFICIENT_BALANCE"));

    let (status, read) = app.get(&format!("/api/v1/orders/{order}")).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["failedAttempts"], 2000, "every refusal is counted, exactly");
    let kept = read["payments"].as_array().unwrap();
    assert_eq!(kept.len(), 5, "the latest five are kept: {read}");
    assert!(kept.iter().all(|p| p["status"] == "FAILED" && p["reason"] == "INSUFFICIENT_BALANCE"));
    let item = app.order_item(&order).await;
    let size: usize = item.iter().map(|(name, value)| name.len() + format!("{value:?}").len()).sum();
    assert!(size < 4096, "the order item stays small: about {size} bytes");

    assert_eq!(app.post("/api/v1/users/1/balance/charge", r#"{"amount": "5.00"}"#, None).await.0, 200);
    let (status, paid) = pay(&app, 1, &order).await;
    assert_eq!(status, 200, "{paid}");
    let (_, read) = app.get(&format!("/api/v1/orders/{order}")).await;
    assert_eq!((read["status"].as_str(), read["failedAttempts"].as_u64()), (Some("PAID"), Some(2000)));
    let payments = read["payments"].as_array().unwrap();
    assert_eq!(payments.last().unwrap()["paymentId"], paid["paymentId"], "the success is listed last: {read}");
    assert_eq!(app.balance(1).await, "0.00");
    let audit = audit(&app).await;
    assert_eq!((audit.orders, audit.paid, audit.failed_payments), (1, 1, 2000));
}
