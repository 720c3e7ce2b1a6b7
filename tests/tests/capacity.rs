//! The shop behind DynamoDB's capacity model (`CAPACITY=aws`; localstack/capacity):
//! what a partition's limits do to a rush, through the local API as a client sees it.

use futures::future::join_all;
use rushcart_tests::invariants::{coupon_audit, users};
use rushcart_tests::TestApp;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// At scale 0.01 one coupon counter takes 10 write units a second, 5 issues (a
/// transaction's write costs two). Sixty users at once on one counter are throttled:
/// the functions retry, then answer 503, and a 503 issued nothing (the model decides
/// before it forwards). `/_local/metrics` shows the model's counters as the model does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rush_on_one_counter_item_is_throttled_exactly_and_local_metrics_show_it() {
    let (app, model) = TestApp::spawn_under_capacity(0.01).await;
    app.seed_users(&users(1..=60, "0.00")).await;
    app.seed_sharded_coupon(1, 100, 1, "1.00", OffsetDateTime::now_utc() + Duration::days(1)).await;

    let paths: Vec<String> = (1..=60).map(|user| format!("/api/v1/coupons/1?userId={user}")).collect();
    let answers = join_all(paths.iter().map(|path| app.post(path, "", None))).await;

    let issued = answers.iter().filter(|(status, _)| *status == 201).count() as u64;
    let unavailable = answers.iter().filter(|(status, _)| *status == 503).count() as u64;
    assert_eq!(issued + unavailable, 60, "{:?}", answers.iter().find(|(s, _)| *s != 201 && *s != 503));
    assert!(issued >= 5, "the counter's burst alone issues five: {issued}");
    assert_eq!(coupon_audit(&app, 1).await, (issued, issued), "a 503 issued nothing");

    let snapshot: Value = app.http.get(app.url("/_local/metrics")).send().await.unwrap().json().await.unwrap();
    let throttled = snapshot["capacity"]["requests"]["throttled"].as_u64().expect("the model's counters");
    assert!(throttled > 0, "{}", snapshot["capacity"]);
    assert!(throttled <= model.metrics()["requests"]["throttled"].as_u64().unwrap());
    let by_partition = snapshot["capacity"]["throttled"].as_array().expect("the throttled partitions");
    assert!(by_partition.iter().any(|p| p.to_string().contains("COUPON#1")), "{by_partition:?}");
}
