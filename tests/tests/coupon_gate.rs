//! The Redis admission gate in front of coupon issue, against the stack's real
//! redis-server and the local DynamoDB engine: invariants hold with it, it keeps DynamoDB's write
//! count near the number of units, and when Redis is gone it steps aside.

use std::sync::Arc;

use futures::future::join_all;
use rushcart::adapters::redis_gate::RedisGate;
use rushcart_tests::capacity::{rush_outcome, unavailable};
use rushcart_tests::invariants::{coupon_audit, users};
use rushcart_tests::{dead_redis_url, redis_url, OwnRedis, TestApp, REDIS_BUDGET};
use time::{Duration, OffsetDateTime};

/// A test app behind a gate on the stack's Redis, connected before it is used.
async fn gated_app() -> (TestApp, Arc<RedisGate>) {
    let _ = tracing_subscriber::fmt().with_test_writer().with_max_level(tracing::Level::WARN).try_init();
    let mut gate = None;
    let app = TestApp::spawn_with_gate(|namespace| {
        let built = Arc::new(RedisGate::with_call_timeout(redis_url(), namespace, REDIS_BUDGET).unwrap());
        gate = Some(built.clone());
        built
    })
    .await;
    let gate = gate.unwrap();
    assert!(gate.ready(std::time::Duration::from_secs(5)).await, "the stack's Redis answers");
    (app, gate)
}

/// The rushes here measure how the gate answers under load, so they run one at a
/// time: two bursts at once on a 2-core machine only measure the scheduler.
static ONE_RUSH_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn writes(app: &TestApp) -> u64 {
    app.counters().coupon_issue_writes()
}

/// A rush of `users` on coupon 1: how many were issued a copy, told it is sold out, told
/// they hold one, and (under the capacity model only) answered 503 — which issued
/// nothing; see [`rush_outcome`].
async fn rush(app: &TestApp, users: std::ops::RangeInclusive<u64>) -> (usize, usize, usize, usize) {
    let paths: Vec<String> = users.map(|user| format!("/api/v1/coupons/1?userId={user}")).collect();
    let results = join_all(paths.iter().map(|path| app.post(path, "", None))).await;
    let count = |status: u16, code: &str| results.iter().filter(|(s, b)| *s == status && b["code"] == code).count();
    let issued = results.iter().filter(|(status, _)| *status == 201).count();
    let unavailable = results.iter().filter(|(status, body)| unavailable(*status, body)).count();
    (issued, count(409, "COUPON_SOLD_OUT"), count(409, "COUPON_ALREADY_ISSUED"), unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_gate_a_thousand_user_rush_issues_exactly_a_hundred_with_few_writes() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let (app, gate) = gated_app().await;
    app.seed_users(&users(1..=1000, "0.00")).await;
    app.seed_coupon(1, 100, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;

    let (issued, sold_out, _, unavailable) = rush(&app, 1..=1000).await;

    assert_eq!((issued, sold_out), rush_outcome(100, 1000, unavailable));
    assert_eq!(coupon_audit(&app, 1).await, (issued as u64, issued as u64));
    // With Redis up and a budget no queue reaches, the gate answers every request, and
    // DynamoDB sees one write per unit (plus conflict retries).
    assert_eq!(gate.bypassed(), 0, "Redis answered every request");
    let writes = writes(&app);
    assert!((100..=200).contains(&writes), "{writes} issue writes reached DynamoDB for 100 units");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_gate_one_user_firing_fifty_requests_gets_one_coupon() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let (app, gate) = gated_app().await;
    app.seed_users(&[(7, "0.00")]).await;
    app.seed_coupon(1, 100, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;

    let results = join_all((0..50).map(|_| app.post("/api/v1/coupons/1?userId=7", "", None))).await;

    assert_eq!(results.iter().filter(|(status, _)| *status == 201).count(), 1);
    assert!(results
        .iter()
        .filter(|(s, _)| *s != 201)
        .all(|(s, b)| (*s == 409 && b["code"] == "COUPON_ALREADY_ISSUED") || unavailable(*s, b)));
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
    assert!(
        writes(&app) < 50,
        "the gate answered most duplicates ({} writes, {} bypassed)",
        writes(&app),
        gate.bypassed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_redis_is_down_the_gate_steps_aside_and_dynamodb_alone_stays_exact() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let mut gate = None;
    let app = TestApp::spawn_with_gate(|namespace| {
        let built = Arc::new(RedisGate::new(dead_redis_url(), namespace).unwrap());
        gate = Some(built.clone());
        built
    })
    .await;
    app.seed_users(&users(1..=300, "0.00")).await;
    app.seed_coupon(1, 100, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;
    let gate = gate.unwrap();
    assert!(!gate.ready(std::time::Duration::from_millis(200)).await, "nothing listens there");

    let (issued, sold_out, _, unavailable) = rush(&app, 1..=300).await;

    // Under the capacity model the one counter item (100 copies: unsharded) takes the
    // whole rush without the gate, and some issues may be answered 503.
    assert_eq!((issued, sold_out), rush_outcome(100, 300, unavailable));
    assert_eq!(coupon_audit(&app, 1).await, (issued as u64, issued as u64));
    assert_eq!(gate.bypassed(), 300, "every request went past the gate");
}

#[tokio::test]
async fn a_gate_that_lost_its_state_learns_sold_out_from_dynamodb() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let plain = TestApp::spawn().await;
    plain.seed_users(&users(1..=20, "0.00")).await;
    plain.seed_coupon(1, 10, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;
    assert_eq!(rush(&plain, 1..=10).await.0, 10);

    // Same table, now behind a gate that has never seen this coupon.
    let gated = {
        let gate = Arc::new(
            RedisGate::with_call_timeout(redis_url(), format!("{}-late", plain.table()), REDIS_BUDGET).unwrap(),
        );
        assert!(gate.ready(std::time::Duration::from_secs(5)).await);
        let mut deps = rushcart::Deps::new(plain.store.clone());
        deps.coupon_gate = Some(gate);
        deps
    };
    let before = writes(&plain);
    for user in 11..=20 {
        let request = issue_event(user);
        let response = rushcart::http::routes::dispatch("issue-coupon", request, &gated).await.expect("a route");
        assert_eq!(response.status(), 409);
    }
    assert_eq!(writes(&plain) - before, 1, "only the first refusal reached DynamoDB");
    assert_eq!(coupon_audit(&plain, 1).await, (10, 10));
}

#[tokio::test]
async fn a_reservation_refused_by_dynamodb_is_released() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let (app, gate) = gated_app().await;
    app.seed_users(&[(1, "0.00")]).await;
    app.seed_coupon(1, 1, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;

    let (status, body) = app.post("/api/v1/coupons/1?userId=99", "", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("USER_NOT_FOUND")));
    let (status, body) = app.post("/api/v1/coupons/1?userId=1", "", None).await;
    assert_eq!(status, 201, "the unknown user's reservation was given back: {body}");
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
    assert_eq!(gate.bypassed(), 0);
}

/// The gate answers for the coupon, not for a key: a keyed retry whose first request
/// was issued gets its copy again when the gate knows the user holds one, and when it
/// says sold out (here a gate that never saw the first request, made without it).
#[tokio::test]
async fn through_the_gate_a_keyed_retry_answers_its_copy_held_or_sold_out() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let (app, gate) = gated_app().await;
    app.seed_users(&users(1..=3, "0.00")).await;
    app.seed_coupon(1, 1, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;
    app.seed_coupon(2, 1, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;
    let token = app.token(1);

    let first = app.post_keyed("/api/v1/coupons/1", "", "k-1", &token).await;
    assert_eq!((first.status, first.replayed), (201, false), "{}", first.body);
    let again = app.post_keyed("/api/v1/coupons/1", "", "k-1", &token).await;
    assert_eq!((again.status, again.replayed, &again.body), (201, true, &first.body), "the gate: user 1 holds one");
    let (status, body) = app.post("/api/v1/coupons/1?userId=1", "", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("COUPON_ALREADY_ISSUED")), "unkeyed: {body}");
    assert_eq!(gate.bypassed(), 0);

    // Coupon 2's one copy goes to user 1 with no gate in front; a gate of its own then
    // learns from user 2 that it is sold out.
    let plain = rushcart::Deps::new(app.store.clone());
    let response = rushcart::http::routes::dispatch("issue-coupon", issue_event_of(1, 2, Some("k-2")), &plain).await;
    let response = response.expect("a route");
    assert_eq!(response.status(), 201);
    let issued: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    let late =
        Arc::new(RedisGate::with_call_timeout(redis_url(), format!("{}-late", app.table()), REDIS_BUDGET).unwrap());
    assert!(late.ready(std::time::Duration::from_secs(5)).await);
    let mut gated = rushcart::Deps::new(app.store.clone());
    gated.coupon_gate = Some(late.clone());
    let refused = rushcart::http::routes::dispatch("issue-coupon", issue_event_of(2, 2, Some("k-3")), &gated).await;
    assert_eq!(refused.expect("a route").status(), 409);
    let replayed = rushcart::http::routes::dispatch("issue-coupon", issue_event_of(1, 2, Some("k-2")), &gated).await;
    let replayed = replayed.expect("a route");
    assert_eq!(replayed.status(), 201, "the gate said sold out; the key found its copy");
    assert_eq!(replayed.headers().get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(replayed.body()).unwrap(), issued);
    // Unkeyed, the gate's "sold out" is checked against the user's own copy: a retry of
    // an issue that was made is told it holds one, never that none are left.
    let unkeyed = rushcart::http::routes::dispatch("issue-coupon", issue_event_of(1, 2, None), &gated).await;
    let unkeyed = unkeyed.expect("a route");
    let body: serde_json::Value = serde_json::from_slice(unkeyed.body()).unwrap();
    assert_eq!((unkeyed.status().as_u16(), body["code"].as_str()), (409, Some("COUPON_ALREADY_ISSUED")), "{body}");
    assert_eq!(late.bypassed(), 0);
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
    assert_eq!(coupon_audit(&app, 2).await, (1, 1));
}

/// The recorded issue event, as `user` signed in asks it (of coupon 1).
fn issue_event(user: u64) -> lambda_http::Request {
    issue_event_of(user, 1, None)
}

/// The recorded issue event of coupon `coupon`, as `user` signed in asks it, under
/// `key` if any.
fn issue_event_of(user: u64, coupon: u64, key: Option<&str>) -> lambda_http::Request {
    let path = format!("{}/../events/issue-coupon.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["requestContext"]["authorizer"]["jwt"]["claims"]["shop_user_id"] = user.to_string().into();
    event["queryStringParameters"] = serde_json::json!({ "userId": user.to_string() });
    event["rawQueryString"] = format!("userId={user}").into();
    event["pathParameters"]["couponId"] = coupon.to_string().into();
    event["rawPath"] = format!("/api/v1/coupons/{coupon}").into();
    event["requestContext"]["http"]["path"] = format!("/api/v1/coupons/{coupon}").into();
    if let Some(key) = key {
        event["headers"]["idempotency-key"] = key.into();
    }
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gate_steps_aside_while_redis_is_down_and_is_used_again_once_it_is_back() {
    let _one_at_a_time = ONE_RUSH_AT_A_TIME.lock().await;
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let mut gate = None;
    let app = TestApp::spawn_with_gate(|namespace| {
        let built = Arc::new(RedisGate::with_call_timeout(&url, namespace, REDIS_BUDGET).unwrap());
        gate = Some(built.clone());
        built
    })
    .await;
    let gate = gate.unwrap();
    app.seed_users(&users(1..=90, "0.00")).await;
    app.seed_coupon(1, 50, "1000.00", OffsetDateTime::now_utc() + Duration::days(30)).await;
    assert!(gate.ready(std::time::Duration::from_secs(5)).await);

    assert_eq!(rush(&app, 1..=10).await.0, 10);
    assert_eq!(gate.bypassed(), 0);

    redis.stop();
    assert_eq!(rush(&app, 11..=20).await.0, 10, "DynamoDB alone keeps issuing");
    assert!(gate.bypassed() >= 10);

    redis.restart();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let bypassed = gate.bypassed();
    // The restarted Redis knows nothing: it admits, DynamoDB refuses what is gone.
    let (issued, sold_out, _, unavailable) = rush(&app, 21..=90).await;
    assert_eq!((issued, sold_out), rush_outcome(30, 70, unavailable));
    let since = gate.bypassed() - bypassed;
    assert!(since < 35, "the gate answers again, but {since} of 70 requests bypassed it");
    assert_eq!(coupon_audit(&app, 1).await, (50, 50));
}
