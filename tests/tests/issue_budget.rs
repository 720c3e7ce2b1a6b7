//! Each user's budget of coupon issue requests, on the stack's real Redis: one client
//! firing many requests at once is turned away with 429 past its budget and holds one
//! coupon at most, while others still get theirs; with Redis gone the budget steps
//! aside and the rush is decided by DynamoDB alone.

use std::sync::Arc;

use futures::future::join_all;
use rushcart::adapters::redis_budget::RedisBudget;
use rushcart_tests::invariants::{coupon_audit, users};
use rushcart_tests::{dead_redis_url, redis_url, TestApp, REDIS_BUDGET};
use time::{Duration, OffsetDateTime};

const PER_SECOND: u32 = 5;

/// A test app with a budget on Redis at `url`, given `within` to connect first.
async fn budgeted_app(url: String, within: std::time::Duration) -> TestApp {
    let namespace = format!("budget-{}", ulid::Ulid::generate());
    let budget = Arc::new(RedisBudget::new(&url, namespace, PER_SECOND, REDIS_BUDGET).expect("a budget"));
    let connected = budget.ready(within).await;
    assert_eq!(connected, url == redis_url(), "the stack's Redis answers, the dead one does not");
    TestApp::spawn_configured(move |_, deps| deps.issue_budget = Some(budget)).await
}

/// One user's `count` issue requests at once: (201s, 429 TOO_MANY_REQUESTS, 409 already held).
async fn fire(app: &TestApp, user: u64, count: usize) -> (usize, usize, usize) {
    let token = app.token(user);
    let requests = (0..count).map(|_| app.http.post(app.url("/api/v1/coupons/1")).bearer_auth(&token).send());
    let mut answers = Vec::new();
    for response in join_all(requests).await {
        let response = response.expect("an answer");
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").is_some();
        let body: serde_json::Value = response.json().await.expect("JSON");
        if status == 429 {
            assert!(retry_after, "a 429 says when to retry: {body}");
        }
        answers.push((status, body["code"].as_str().unwrap_or_default().to_owned()));
    }
    let count = |status: u16, code: &str| {
        answers.iter().filter(|(s, c)| *s == status && (code.is_empty() || c == code)).count()
    };
    (count(201, ""), count(429, "TOO_MANY_REQUESTS"), count(409, "COUPON_ALREADY_ISSUED"))
}

#[tokio::test]
async fn one_client_firing_forty_requests_is_turned_away_past_its_budget_and_others_still_get_theirs() {
    let app = budgeted_app(redis_url(), std::time::Duration::from_secs(5)).await;
    app.seed_users(&users(1..=3, "0.00")).await;
    app.seed_coupon(1, 10, "100.00", OffsetDateTime::now_utc() + Duration::days(1)).await;

    let started = std::time::Instant::now();
    let (issued, over_budget, held) = fire(&app, 1, 40).await;
    // The budget is per wall-clock second: however slow the machine, at most PER_SECOND
    // get past it in each second the burst touched.
    let seconds_touched = started.elapsed().as_secs() + 2;
    assert_eq!(issued, 1, "one coupon per user");
    assert_eq!(issued + over_budget + held, 40, "every answer is one of the three");
    let passed = (issued + held) as u64;
    assert!(passed <= u64::from(PER_SECOND) * seconds_touched, "{passed} got past a budget of {PER_SECOND}/s");
    assert!(over_budget > 0, "the rest were turned away");
    for user in 2..=3 {
        assert_eq!(fire(&app, user, 1).await.0, 1, "user {user} is not starved");
    }
    assert_eq!(coupon_audit(&app, 1).await, (3, 3));
}

#[tokio::test]
async fn with_redis_gone_the_budget_steps_aside_and_dynamodb_decides() {
    let app = budgeted_app(dead_redis_url(), std::time::Duration::from_millis(200)).await;
    app.seed_users(&users(1..=1, "0.00")).await;
    app.seed_coupon(1, 10, "100.00", OffsetDateTime::now_utc() + Duration::days(1)).await;
    let (issued, over_budget, held) = fire(&app, 1, 20).await;
    assert_eq!((issued, over_budget, held), (1, 0, 19));
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
}
