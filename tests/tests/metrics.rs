//! The metrics the alarms and the dashboard read: requests by route and status class
//! with latency, and the business outcomes, summed at `/_local/metrics` from the EMF
//! records the handlers wrote. One test: the sink is the process's, shared by every
//! app in it.

use rushcart_tests::TestApp;
use serde_json::Value;

/// The sum of the series `name` whose dimensions include every `(name, value)` given.
fn sum(snapshot: &Value, name: &str, dimensions: &[(&str, &str)]) -> f64 {
    snapshot["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter(|m| m["name"] == name && dimensions.iter().all(|(d, v)| m["dimensions"][*d] == *v))
        .filter_map(|m| m["sum"].as_f64())
        .sum()
}

#[tokio::test]
async fn what_happened_is_counted_by_route_and_outcome() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "5000.00"), (2, "10.00"), (3, "10.00")]).await;
    app.seed_products(2, "1000.00", 100).await;
    app.seed_coupon(1, 2, "100.00", time::OffsetDateTime::now_utc() + time::Duration::days(1)).await;
    let reset = app.http.delete(app.url("/_local/metrics")).send().await.unwrap();
    assert_eq!(reset.status(), 204);

    for _ in 0..3 {
        let ok = app.http.get(app.url("/api/v1/users/1/balance")).bearer_auth(app.token(1)).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
    let missing = app.http.get(app.url("/api/v1/users/404/balance")).bearer_auth(app.token(404)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    // Two coupons, three customers: two issued, one sold out.
    for user in 1..=3 {
        app.http.post(app.url("/api/v1/coupons/1")).bearer_auth(app.token(user)).send().await.unwrap();
    }
    // An order paid, paid again (refused), then refunded.
    let order: Value = app
        .http
        .post(app.url("/api/v1/orders"))
        .bearer_auth(app.token(1))
        .json(&serde_json::json!({"products": [{"productId": 1, "quantity": 2}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["orderId"].as_str().expect("an order id");
    for expected in [200, 409] {
        let paid = app
            .http
            .post(app.url("/api/v1/payment"))
            .bearer_auth(app.token(1))
            .json(&serde_json::json!({"orderId": order_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), expected);
    }
    let cancelled = app
        .http
        .post(app.url(&format!("/api/v1/orders/{order_id}/cancel")))
        .bearer_auth(app.token(1))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    let snapshot: Value = app.http.get(app.url("/_local/metrics")).send().await.unwrap().json().await.unwrap();
    assert_eq!(sum(&snapshot, "Requests", &[("Route", "get-balance"), ("StatusClass", "2xx")]), 3.0, "{snapshot}");
    assert_eq!(sum(&snapshot, "Requests", &[("Route", "get-balance"), ("StatusClass", "4xx")]), 1.0);
    assert_eq!(sum(&snapshot, "Requests", &[("Route", "pay-order")]), 2.0);
    let latency = snapshot["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Latency" && m["dimensions"]["Route"] == "get-balance")
        .expect("get-balance's latency");
    assert_eq!((latency["count"].as_u64(), latency["unit"].as_str()), (Some(4), Some("Milliseconds")));
    assert!(latency["p99"].as_f64().unwrap() >= latency["p50"].as_f64().unwrap());
    assert_eq!(sum(&snapshot, "CouponIssues", &[("Outcome", "Issued")]), 2.0);
    assert_eq!(sum(&snapshot, "CouponIssues", &[("Outcome", "SoldOut")]), 1.0);
    assert_eq!(sum(&snapshot, "Payments", &[("Outcome", "Succeeded")]), 1.0);
    assert_eq!(sum(&snapshot, "Payments", &[("Outcome", "Failed")]), 1.0);
    assert_eq!(sum(&snapshot, "PaymentFailures", &[("Reason", "ALREADY_PAID")]), 1.0);
    assert_eq!(sum(&snapshot, "Cancellations", &[("Outcome", "Refunded")]), 1.0);
    for metric in snapshot["metrics"].as_array().unwrap() {
        assert_eq!(metric["namespace"], "rushcart");
        let name = metric["name"].as_str().unwrap();
        assert!(rushcart::metrics::spec(name).is_some(), "{name} is in the catalogue");
    }
}
