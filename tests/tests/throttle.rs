//! The route throttles of template.yaml, enforced by the local API as API Gateway
//! enforces them: a token bucket per route, 429 `{"message":"Too Many Requests"}`
//! past it, before the authorizer or any function.

use rushcart_local_api::throttle::{Limit, Throttles};
use rushcart_tests::TestApp;

fn template() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(path).expect("read template.yaml")
}

/// The rush route is sized by what takes the rush, not by one item: a coupon's default
/// shards at half their ceiling (one counter item issues about 500 a second on AWS).
#[test]
fn the_coupon_rush_route_takes_what_a_coupons_default_shards_take_at_half_their_ceiling() {
    let throttles = Throttles::from_template(&template(), None, None).expect("the template's throttles");
    let default = throttles.default_limit();
    let coupon = throttles.limit_of("POST /api/v1/coupons/{couponId}");
    let shards = f64::from(rushcart::coupons::DEFAULT_SHARDS);
    assert_eq!(coupon.rate, shards * 500.0 / 2.0, "{coupon:?}");
    assert!(coupon.burst <= coupon.rate && coupon.rate > default.rate, "{coupon:?} vs {default:?}");
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

/// A flood without tokens from addresses of its own (127.0.0.2 to 127.0.0.20, 100
/// requests each) on the coupon route, and a signed-in rush of 100 users from
/// 127.0.0.1 once the flood is under way. The route's bucket holds 300 and barely
/// refills. Without the flood rules the flood spends it and the users get 429s. With
/// them (10 requests without a token per address per minute), each flooding address
/// gets exactly 10 past the edge and 403 after, so the route keeps room for every user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_without_tokens_starves_a_signed_in_rush_unless_the_flood_rules_stand_in_front() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::join_all;
    use futures::StreamExt as _;
    use rushcart_local_api::flood::{FloodLimits, FloodRules};

    let limits =
        FloodLimits { window: std::time::Duration::from_secs(60), anonymous: 10, per_token: 100, per_address: 1_000 };
    for protected in [false, true] {
        let default = Limit { rate: 1_000.0, burst: 1_000.0 };
        let coupon_route = Limit { rate: 1.0, burst: 300.0 };
        let routes = HashMap::from([("POST /api/v1/coupons/{couponId}".to_owned(), coupon_route)]);
        let app =
            TestApp::spawn_behind(Some(Throttles::new(default, routes)), protected.then(|| FloodRules::new(limits)))
                .await;
        app.seed_users(&rushcart_tests::invariants::users(1..=100, "0.00")).await;
        app.seed_coupon(1, 100, "1.00", time::OffsetDateTime::now_utc() + time::Duration::days(1)).await;

        let answered = AtomicUsize::new(0);
        let flood = (2..=20u8).map(|last| {
            let (app, answered) = (&app, &answered);
            async move {
                let address = std::net::IpAddr::from([127, 0, 0, last]);
                let client =
                    reqwest::Client::builder().local_address(address).build().expect("a client on its address");
                let sent = (0..100).map(|user| {
                    let client = &client;
                    async move {
                        let url = app.url(&format!("/api/v1/coupons/1?userId={user}"));
                        let status = client.post(url).send().await.expect("an answer").status().as_u16();
                        answered.fetch_add(1, Ordering::SeqCst);
                        status
                    }
                });
                // Ten at a time from each address: a few hundred sockets in all.
                (last, futures::stream::iter(sent).buffer_unordered(10).collect::<Vec<u16>>().await)
            }
        });
        let rush = async {
            while answered.load(Ordering::SeqCst) < 600 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let paths: Vec<String> = (1..=100u64).map(|user| format!("/api/v1/coupons/1?userId={user}")).collect();
            join_all(paths.iter().map(|path| app.post(path, "", None))).await
        };
        let (flooded, rushed) = tokio::join!(join_all(flood), rush);

        let issued = rushed.iter().filter(|(status, _)| *status == 201).count();
        if protected {
            assert_eq!(issued, 100, "every signed-in user is served: {:?}", rushed.iter().find(|(s, _)| *s != 201));
            for (last, statuses) in &flooded {
                let past = statuses.iter().filter(|status| **status != 403).count();
                assert_eq!(past, 10, "127.0.0.{last}: its limit past the edge, then 403: {statuses:?}");
                assert!(statuses.iter().all(|status| [401, 403].contains(status)), "127.0.0.{last}: {statuses:?}");
            }
        } else {
            let throttled = rushed.iter().filter(|(status, _)| *status == 429).count();
            assert!(
                throttled >= 50 && issued + throttled == 100,
                "the flood starved the rush: {issued} issued, {throttled} 429"
            );
        }
        assert_eq!(rushcart_tests::invariants::coupon_audit(&app, 1).await, (issued as u64, issued as u64));
    }
}
