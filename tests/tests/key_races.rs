//! Fifty requests at once under one `Idempotency-Key`, on every keyed route: one makes
//! the change, and every answer is exactly the one that change made, never a state read
//! before it committed (issue 29, defect 2).

use futures::future::join_all;
use rushcart_tests::capacity::unavailable;
use rushcart_tests::invariants::{assert_ledger_consistent, read_ledger};
use rushcart_tests::TestApp;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const AT_ONCE: usize = 50;

/// One answer: the status, `Idempotent-Replayed`, the body.
type Answer = (u16, bool, Value);

async fn send(app: &TestApp, path: &str, body: &str, key: &str, token: &str) -> Answer {
    let answer = app.post_keyed(path, body, key, token).await;
    (answer.status, answer.replayed, answer.body)
}

/// [`AT_ONCE`] sends of one keyed request at the same moment: every answer is the same
/// success, and exactly one of them made it (the others say they are replays).
///
/// Under the capacity model the fifty land on one key's item in one user's partition,
/// so some may be answered 503 (with `Retry-After`); a client told so sends again once
/// the second has passed. That later send is held to the same rule: the one change, made
/// once in all, and the callers check from the table that nothing else changed.
async fn at_once(app: &TestApp, path: &str, body: &str, key: &str, token: &str, status: u16) -> Value {
    let mut answers: Vec<Answer> = join_all((0..AT_ONCE).map(|_| send(app, path, body, key, token))).await;
    for answer in &answers {
        assert!(!unavailable(answer.0, &answer.2) || !answer.1, "a 503 is no replay: {answer:?}");
    }
    let throttled = answers.iter().filter(|(got, _, answer)| unavailable(*got, answer)).count();
    if throttled > 0 {
        eprintln!("{path}: {throttled} of {AT_ONCE} answered 503 by the capacity model; one retry after Retry-After");
        answers.retain(|(got, _, answer)| !unavailable(*got, answer));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        answers.push(send(app, path, body, key, token).await);
    }
    let first = answers.iter().find(|(_, replayed, _)| !replayed).map(|(_, _, body)| body.clone());
    let first = first.unwrap_or_else(|| panic!("{path}: no answer made the change: {answers:?}"));
    for (got, _, answer) in &answers {
        assert_eq!((*got, answer), (status, &first), "{path}: every answer is the one the change made");
    }
    let made = answers.iter().filter(|(_, replayed, _)| !replayed).count();
    assert_eq!(made, 1, "{path}: one answer made the change, the others replayed it");
    first
}

async fn shop() -> TestApp {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00")]).await;
    app.seed_products(2, "10.00", 100).await;
    app.seed_coupon(1, 10, "5.00", OffsetDateTime::now_utc() + Duration::days(1)).await;
    app
}

async fn place(app: &TestApp, coupon: bool) -> String {
    let mut body = json!({"userId": 1, "products": [{"productId": 1, "quantity": 2}]});
    if coupon {
        body["couponId"] = 1.into();
    }
    let (status, order) = app.post("/api/v1/orders", &body.to_string(), None).await;
    assert_eq!(status, 201, "{order}");
    order["orderId"].as_str().expect("orderId").to_owned()
}

async fn pay(app: &TestApp, order: &str) {
    let (status, paid) = app.post("/api/v1/payment", &json!({"userId": 1, "orderId": order}).to_string(), None).await;
    assert_eq!(status, 200, "{paid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_cancels_under_one_key_all_answer_the_cancel_or_refund_it_made() {
    let app = shop().await;
    let customer = app.token(1);
    let operator = app.operator_token(900);

    let unpaid = place(&app, false).await;
    let path = format!("/api/v1/orders/{unpaid}/cancel");
    let answer = at_once(&app, &path, "", "cancel-unpaid", &customer, 200).await;
    assert_eq!(answer["status"], "CANCELLED", "{answer}");

    assert_eq!(app.post("/api/v1/coupons/1?userId=1", "", None).await.0, 201);
    let paid = place(&app, true).await;
    pay(&app, &paid).await;
    let path = format!("/api/v1/orders/{paid}/cancel");
    let answer = at_once(&app, &path, "", "cancel-paid", &customer, 200).await;
    assert_eq!(answer["status"], "REFUNDED", "{answer}");

    let by_operator = place(&app, false).await;
    pay(&app, &by_operator).await;
    let path = format!("/api/v1/admin/orders/{by_operator}/cancel");
    let answer = at_once(&app, &path, "", "cancel-for-them", &operator, 200).await;
    assert_eq!(answer["status"], "REFUNDED", "{answer}");

    assert_eq!(app.balance(1).await, "1000.00", "two refunds, each once");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_ledger_consistent(&ledger);
    assert_eq!(ledger.entries.values().filter(|entry| entry.kind == "REFUND").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_orders_payments_and_balance_changes_under_one_key_each_make_one_change() {
    let app = shop().await;
    let customer = app.token(1);

    let order = json!({"userId": 1, "products": [{"productId": 2, "quantity": 1}]}).to_string();
    let placed = at_once(&app, "/api/v1/orders", &order, "order-1", &customer, 201).await;
    let id = placed["orderId"].as_str().expect("orderId");
    let (_, orders) = app.get("/api/v1/users/1/orders").await;
    assert_eq!(orders["items"].as_array().map(Vec::len), Some(1), "one order: {orders}");

    let payment = json!({"userId": 1, "orderId": id}).to_string();
    let paid = at_once(&app, "/api/v1/payment", &payment, "pay-1", &customer, 200).await;
    assert_eq!(paid["balanceAfter"], "990.00", "{paid}");

    let charge = r#"{"amount": "5.00"}"#;
    let charged = at_once(&app, "/api/v1/users/1/balance/charge", charge, "charge-1", &customer, 200).await;
    assert_eq!(charged["balance"], "995.00", "{charged}");
    let used = at_once(&app, "/api/v1/users/1/balance/use", charge, "use-1", &customer, 200).await;
    assert_eq!(used["balance"], "990.00", "{used}");

    assert_eq!(app.balance(1).await, "990.00");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_ledger_consistent(&ledger);
    assert_eq!(ledger.entries.len(), 4, "the opening entry, one payment, one charge, one use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_coupon_issues_under_one_key_issue_one_copy() {
    let app = shop().await;
    app.seed_sharded_coupon(2, 40, 4, "1.00", OffsetDateTime::now_utc() + Duration::days(1)).await;
    let customer = app.token(1);
    for coupon in [1, 2] {
        let issued =
            at_once(&app, &format!("/api/v1/coupons/{coupon}"), "", &format!("grab-{coupon}"), &customer, 201).await;
        assert_eq!((issued["couponId"].as_u64(), issued["status"].as_str()), (Some(coupon), Some("AVAILABLE")));
        assert_eq!(rushcart_tests::invariants::coupon_audit(&app, coupon).await, (1, 1), "coupon {coupon}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_operator_writes_under_one_key_each_make_one_change() {
    let app = shop().await;
    let operator = app.operator_token(900);

    let product = r#"{"name": "Kettle", "price": "39.90", "stock": 50}"#;
    let created = at_once(&app, "/api/v1/admin/products", product, "new-kettle", &operator, 201).await;
    // Each request draws an id before its key decides, so the id is any of those drawn;
    // the catalogue shows that one product was made.
    let id = created["productId"].as_u64().expect("productId");
    let (_, listed) = app.get("/api/v1/products?limit=100").await;
    let ids: Vec<u64> =
        listed["items"].as_array().expect("items").iter().filter_map(|p| p["productId"].as_u64()).collect();
    assert_eq!(ids, [1, 2, id], "the two seeded and the one made");

    let restock = r#"{"add": 25}"#;
    let restocked =
        at_once(&app, &format!("/api/v1/admin/products/{id}/stock"), restock, "restock", &operator, 200).await;
    assert_eq!(restocked["stock"], 75, "{restocked}");

    let coupon = json!({"name": "Winter", "discount": "5.00", "total": 2, "endsAt": "2099-01-01T00:00:00Z"});
    let made = at_once(&app, "/api/v1/admin/coupons", &coupon.to_string(), "winter", &operator, 201).await;
    let id = made["couponId"].as_u64().expect("couponId");
    // The ids the fifty requests drew are within fifty of the seeded coupon's.
    for other in (2..=1 + AT_ONCE as u64).filter(|other| *other != id) {
        assert_eq!(app.get(&format!("/api/v1/coupons/{other}")).await.0, 404, "coupon {other}: one coupon made");
    }

    let credit = r#"{"amount": "100.00"}"#;
    let path = "/api/v1/admin/users/1/balance/charge";
    let credited = at_once(&app, path, credit, "credit-1", &operator, 200).await;
    assert_eq!(credited["balance"], "1100.00", "{credited}");
    assert_eq!(app.balance(1).await, "1100.00");
}

/// A replay long after the change answers what the change answered, not what happened
/// to the resource since: a product and a coupon as created, a restock's stock, an order
/// as placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_later_replay_answers_the_first_answer_not_the_resource_as_it_is_now() {
    let app = shop().await;
    let operator = app.operator_token(900);
    let customer = app.token(1);

    let product = r#"{"name": "Kettle", "price": "39.90", "stock": 50}"#;
    let created = send(&app, "/api/v1/admin/products", product, "kettle", &operator).await;
    let id = created.2["productId"].as_u64().expect("productId");
    let restock = r#"{"add": 25}"#;
    let stock_path = format!("/api/v1/admin/products/{id}/stock");
    let restocked = send(&app, &stock_path, restock, "restock", &operator).await;
    assert_eq!((restocked.0, restocked.2["stock"].as_u64()), (200, Some(75)), "{:?}", restocked.2);

    let coupon = json!({"name": "Winter", "discount": "5.00", "total": 2, "endsAt": "2099-01-01T00:00:00Z"});
    let made = send(&app, "/api/v1/admin/coupons", &coupon.to_string(), "winter", &operator).await;
    let coupon_id = made.2["couponId"].as_u64().expect("couponId");

    let order = json!({"userId": 1, "products": [{"productId": id, "quantity": 5}]}).to_string();
    let placed = send(&app, "/api/v1/orders", &order, "order", &customer).await;
    let order_id = placed.2["orderId"].as_str().expect("orderId").to_owned();

    // What happens next: a price change, a coupon issued, the order paid (stock 70).
    let price = r#"{"price": "35.00"}"#;
    let product_path = format!("/api/v1/admin/products/{id}");
    let changed = app.send_as(reqwest::Method::PUT, &product_path, price, None, Some(&operator)).await;
    assert_eq!(changed.0, 200, "{}", changed.1);
    assert_eq!(app.post(&format!("/api/v1/coupons/{coupon_id}?userId=1"), "", None).await.0, 201);
    pay(&app, &order_id).await;
    assert_eq!(app.get(&format!("/api/v1/products/{id}")).await.1["stock"], 70);

    for (path, body, key, token, first) in [
        ("/api/v1/admin/products", product, "kettle", &operator, &created),
        (stock_path.as_str(), restock, "restock", &operator, &restocked),
        ("/api/v1/admin/coupons", &coupon.to_string(), "winter", &operator, &made),
        ("/api/v1/orders", &order, "order", &customer, &placed),
    ] {
        let again = send(&app, path, body, key, token).await;
        assert!(again.1, "{path}: a replay says so");
        assert_eq!((again.0, &again.2), (first.0, &first.2), "{path}: the first answer, exactly");
    }
}
