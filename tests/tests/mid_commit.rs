//! A commit whose answer is lost: DynamoDB acts on the transaction, the answer never
//! reaches the function (a proxy holds the answers to `TransactWriteItems`), the
//! function gives up within its bound and answers 503 — and the client that retries
//! with its `Idempotency-Key` gets the first outcome, applied once.

use std::time::{Duration, Instant};

use rushcart_tests::faults::{Fault, FaultProxy};
use rushcart_tests::invariants::{assert_ledger_consistent, money, read_ledger};
use rushcart_tests::{dynamodb_endpoint, TestApp};
use serde_json::json;

const COMMIT: &str = "DynamoDB_20120810.TransactWriteItems";

/// The longest a function may take: its deadline (9 s), with room for a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

async fn app() -> (FaultProxy, TestApp) {
    let proxy = FaultProxy::in_front_of(&dynamodb_endpoint().await).await;
    let app = TestApp::spawn_through(&proxy, true, |_, _| {}).await;
    app.seed_users(&[(1, "100.00")]).await;
    app.seed_products(1, "10.00", 50).await;
    (proxy, app)
}

/// Sends `body` to `path` with `key` as user 1; the status, `Idempotent-Replayed`,
/// the body, and how long the answer took.
async fn send(app: &TestApp, path: &str, body: &str, key: &str) -> (u16, bool, serde_json::Value, Duration) {
    let started = Instant::now();
    let answer = app.post_keyed(path, body, key, &app.token(1)).await;
    let took = started.elapsed();
    if answer.status == 503 {
        assert_eq!(answer.retry_after.as_deref(), Some("1"), "a 503 says when to retry");
    }
    (answer.status, answer.replayed, answer.body, took)
}

/// Sends with the commit's answer held until the function has answered; returns that
/// answer after lifting the hold.
async fn with_the_commit_answer_lost(proxy: &FaultProxy, app: &TestApp, path: &str, body: &str, key: &str) {
    proxy.set(Fault::HoldAnswersTo(COMMIT));
    let (status, _, answer, took) = send(app, path, body, key).await;
    proxy.set(Fault::None);
    assert_eq!(status, 503, "the function cannot know the commit happened: {answer}");
    assert_eq!(answer["code"], "SERVICE_UNAVAILABLE", "{answer}");
    assert!(took < BOUND, "the 503 took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_commit_answer_was_lost_is_replayed_to_the_retry_and_applied_once() {
    let (proxy, app) = app().await;
    let body = json!({"amount": "25.00"}).to_string();
    let path = "/api/v1/users/1/balance/charge";

    with_the_commit_answer_lost(&proxy, &app, path, &body, "charge-lost-answer").await;
    // The commit did happen: the table holds it though the client got a 503.
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_eq!(ledger.balance, money("125.00"));

    let (status, replayed, answer, _) = send(&app, path, &body, "charge-lost-answer").await;
    assert_eq!(status, 200, "{answer}");
    assert!(replayed, "the retry gets the first outcome, not a new one");
    assert_eq!(answer["balance"], "125.00");
    assert_eq!(answer["entry"]["amount"], "25.00");

    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_ledger_consistent(&ledger);
    assert_eq!(ledger.balance, money("125.00"), "charged once");
    // The seed's opening charge of 100.00, and this one.
    let charges = ledger.entries.values().filter(|e| e.kind == "CHARGE" && e.amount == money("25.00")).count();
    assert_eq!(charges, 1, "{:?}", ledger.entries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_commit_answer_was_lost_is_replayed_to_the_retry_and_taken_once() {
    let (proxy, app) = app().await;
    let order = json!({"userId": 1, "products": [{"productId": 1, "quantity": 2}]}).to_string();
    let (status, _, created, _) = send(&app, "/api/v1/orders", &order, "order-1").await;
    assert_eq!(status, 201, "{created}");
    let order_id = created["orderId"].as_str().expect("an order id").to_owned();
    let pay = json!({"userId": 1, "orderId": order_id}).to_string();

    with_the_commit_answer_lost(&proxy, &app, "/api/v1/payment", &pay, "pay-lost-answer").await;
    let stored = app.order_item(&order_id).await;
    assert_eq!(stored["status"].as_s().unwrap(), "PAID", "the payment committed though the client got a 503");

    let (status, replayed, paid, _) = send(&app, "/api/v1/payment", &pay, "pay-lost-answer").await;
    assert_eq!(status, 200, "{paid}");
    assert!(replayed, "the retry gets the first outcome: {paid}");
    assert_eq!(paid["amount"], "20.00");
    assert_eq!(paid["balanceAfter"], "80.00", "{paid}");
    assert_eq!(stored["paymentId"].as_s().unwrap(), paid["paymentId"].as_str().unwrap(), "the same payment");

    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_ledger_consistent(&ledger);
    assert_eq!(ledger.balance, money("80.00"), "paid once");
    let audit = rushcart_testkit::audit::check_orders(app.client(), app.table())
        .await
        .unwrap_or_else(|violation| panic!("{violation:#}"));
    assert_eq!(audit.paid, 1);
}
