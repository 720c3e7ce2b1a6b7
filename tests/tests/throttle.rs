//! The route throttles of template.yaml, enforced by the local API as API Gateway
//! enforces them: a token bucket per route, 429 `{"message":"Too Many Requests"}`
//! past it, before the authorizer or any function.

use rushcart_local_api::throttle::{Limit, Throttles};
use rushcart_tests::TestApp;

fn template() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(path).expect("read template.yaml")
}

#[test]
fn the_coupon_rush_route_is_throttled_harder_than_the_rest() {
    let throttles = Throttles::from_template(&template(), None, None).expect("the template's throttles");
    let default = throttles.default_limit();
    let coupon = throttles.limit_of("POST /api/v1/coupons/{couponId}");
    assert!(coupon.rate < default.rate && coupon.burst <= default.burst, "{coupon:?} vs {default:?}");
    assert_eq!(throttles.limit_of("GET /api/v1/products"), default);
}

#[tokio::test]
async fn past_its_burst_a_route_answers_api_gateways_429_before_the_authorizer() {
    // The template's routes, the default one cut to a burst of 3 and no refill to speak of.
    let throttles = Throttles::from_template(&template(), Some(0.001), Some(3.0)).expect("the template's throttles");
    assert_eq!(throttles.default_limit(), Limit { rate: 0.001, burst: 3.0 });
    let app = TestApp::spawn_throttled(throttles).await;
    app.seed_users(&[(1, "10.00")]).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app.http.get(app.url("/api/v1/users/1/balance")).bearer_auth(app.token(1)).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Without a token too: the throttle answers before the authorizer would (401).
    let response = app.http.get(app.url("/api/v1/users/1/balance")).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"message": "Too Many Requests"}));
    // Each route has its own bucket.
    let other = app.http.get(app.url("/api/v1/products")).send().await.unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn an_operator_sheds_a_route_at_run_time_and_the_gateway_counts_what_it_turned_away() {
    let throttles = Throttles::from_template(&template(), None, None).expect("the template's throttles");
    let app = TestApp::spawn_throttled(throttles).await;
    let top = || app.http.get(app.url("/api/v1/products/top")).send();
    assert_eq!(top().await.unwrap().status(), 200);

    let shed = serde_json::json!({"route": "GET /api/v1/products/top", "rate": 0, "burst": 0});
    let response = app.http.put(app.url("/_local/throttles")).json(&shed).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let limits: serde_json::Value = response.json().await.unwrap();
    assert_eq!(limits["routes"]["GET /api/v1/products/top"], serde_json::json!({"rate": 0.0, "burst": 0.0}));
    for _ in 0..3 {
        assert_eq!(top().await.unwrap().status(), 429);
    }
    assert_eq!(app.http.get(app.url("/api/v1/products")).send().await.unwrap().status(), 200, "only that route");

    let metrics: serde_json::Value =
        app.http.get(app.url("/_local/metrics")).send().await.unwrap().json().await.unwrap();
    let turned_away = metrics["gateway"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["route"] == "GET /api/v1/products/top" && g["status"] == 429)
        .and_then(|g| g["count"].as_u64());
    assert!(turned_away >= Some(3), "{metrics}");

    let nonsense = serde_json::json!({"route": "GET /nowhere", "rate": 1, "burst": 1});
    let response = app.http.put(app.url("/_local/throttles")).json(&nonsense).send().await.unwrap();
    assert_eq!(response.status(), 400);
}
