//! The local API's DynamoDB call counter (`GET /_local/dynamodb-calls`), which
//! `make bench` uses to put each scenario beside the storage's own floor. The counts are
//! process-wide, so this file holds one test and runs alone in its binary.

use rushcart_local_api::calls::CallCounter;
use rushcart_tests::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_is_charged_exactly_the_dynamodb_calls_its_requests_made() {
    let app = TestApp::spawn_intercepted(CallCounter).await;
    // Seeding goes through the same client but outside any request: not counted.
    app.seed_users(&[(1, "100.00")]).await;
    let (_, before) = app.get("/_local/dynamodb-calls").await;
    assert_eq!(before, json!({}), "nothing counted before the first request");

    for _ in 0..2 {
        assert_eq!(app.get("/api/v1/users/1/balance").await.0, 200);
    }
    for key in ["a", "b", "c"] {
        let (status, body) = app.post("/api/v1/users/1/balance/charge", r#"{"amount":"1.00"}"#, Some(key)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(app.get("/api/v1/nowhere").await.0, 404);
    app.seed_products(3, "10.00", 100).await;
    let order = json!({"userId": 1, "products": [{"productId": 1, "quantity": 1}, {"productId": 2, "quantity": 1},
        {"productId": 3, "quantity": 2}]});
    let (status, body) = app.post("/api/v1/orders", &order.to_string(), None).await;
    assert_eq!(status, 201, "{body}");
    // Product 4's 1,000 units are in 16 buckets.
    app.seed_products(4, "10.00", 1000).await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/products/4").await.0, 200);
    }

    let (status, counted) = app.get("/_local/dynamodb-calls").await;
    assert_eq!(status, 200);
    assert_eq!(counted["get-balance"], json!({"requests": 2, "calls": {"GetItem": 2}}));
    // A keyed charge: one transaction (the balance update carrying the pending entry,
    // and the key's record), a read of the entry DynamoDB computed, then materialising
    // it: the history row, the key's sequence number, clearing the pending entry.
    assert_eq!(
        counted["charge-balance"],
        json!({"requests": 3, "calls": {"GetItem": 3, "PutItem": 3, "TransactWriteItems/2": 3, "UpdateItem": 6}})
    );
    // An order of three products: two batch reads at once, the user (and a coupon, had
    // it named one) strongly consistent and the products eventually consistent, then the
    // order.
    assert_eq!(counted["create-order"], json!({"requests": 1, "calls": {"BatchGetItem": 2, "PutItem": 1}}));
    // A product in buckets: read first by its item, then its buckets; once the process
    // knows it has buckets (they never change), the item and its buckets in one read.
    assert_eq!(counted["get-product"], json!({"requests": 3, "calls": {"GetItem": 1, "BatchGetItem": 3}}));
    assert_eq!(counted.as_object().map(|routes| routes.len()), Some(4), "only routes that ran: {counted}");
}
