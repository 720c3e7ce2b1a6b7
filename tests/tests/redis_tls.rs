//! Redis over TLS (`rediss://`), as deployed (issue 17): against a redis-server of the
//! test's own that speaks only TLS, with a certificate from a private CA the test made.
//! Trusting that CA (`REDIS_CA_FILE`), the top-5 cache and the coupon gate store and
//! read through TLS; not trusting it, nothing panics or hangs: the connect task logs
//! the refusal, counts it and retries, and the shop answers from DynamoDB meanwhile.

use std::sync::Arc;
use std::time::Duration;

use rushcart::adapters::redis_connection::RedisEndpoint;
use rushcart::adapters::redis_gate::RedisGate;
use rushcart::adapters::redis_top::RedisTopCache;
use rushcart::coupons::{Admission, AdmissionGate, Coupon};
use rushcart::ids::{CouponId, UserId};
use rushcart::money::Money;
use rushcart::top::{Cached, TopItem, TopProducts, TopProductsCache};
use rushcart_tests::logs::Captured;
use rushcart_tests::tls::TestCertificates;
use rushcart_tests::{OwnRedis, TestApp, REDIS_BUDGET};
use serde_json::Value;
use time::OffsetDateTime;

/// A TLS redis-server with a certificate from the test's own CA.
fn tls_redis() -> (TestCertificates, OwnRedis) {
    let certificates = TestCertificates::generate();
    let redis = OwnRedis::start_tls(&certificates);
    (certificates, redis)
}

/// A test app whose top-5 cache and coupon gate are on `endpoint`.
async fn app_on(endpoint: &RedisEndpoint) -> (TestApp, Arc<RedisTopCache>, Arc<RedisGate>) {
    let mut built = None;
    let app = TestApp::spawn_configured(|namespace, deps| {
        let cache = Arc::new(
            RedisTopCache::with_call_timeout(endpoint.clone(), namespace, Duration::from_secs(60), REDIS_BUDGET)
                .expect("a cache"),
        );
        let gate = Arc::new(RedisGate::with_call_timeout(endpoint.clone(), namespace, REDIS_BUDGET).expect("a gate"));
        deps.top_cache = Some(cache.clone());
        deps.coupon_gate = Some(gate.clone());
        built = Some((cache, gate));
    })
    .await;
    let (cache, gate) = built.expect("configured");
    (app, cache, gate)
}

/// The sum of the process's `RedisConnect` records with `outcome`, as the local API
/// summed them.
async fn redis_connects(app: &TestApp, outcome: &str) -> f64 {
    let snapshot: Value = app.http.get(app.url("/_local/metrics")).send().await.unwrap().json().await.unwrap();
    snapshot["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter(|m| m["name"] == "RedisConnect" && m["dimensions"]["Outcome"] == outcome)
        .filter_map(|m| m["sum"].as_f64())
        .sum()
}

fn coupon(id: u64, total: u64) -> Coupon {
    Coupon {
        id: CouponId::new(id).unwrap(),
        name: format!("Coupon {id}"),
        discount: Money::parse("10.00").unwrap(),
        total,
        issued: 0,
        ends_at: OffsetDateTime::now_utc() + time::Duration::days(1),
        shards: 1,
    }
}

fn user(id: u64) -> UserId {
    UserId::new(id).unwrap()
}

#[tokio::test]
async fn with_its_private_ca_trusted_a_rediss_url_carries_the_top_5_cache_and_the_coupon_gate() {
    let (certificates, redis) = tls_redis();
    assert!(redis.url().starts_with("rediss://"));
    let endpoint = RedisEndpoint::new(redis.url()).trusting_ca_file(certificates.ca_cert()).expect("the test's CA");
    let (app, cache, gate) = app_on(&endpoint).await;
    assert!(cache.ready(Duration::from_secs(5)).await, "the cache connects over TLS");
    assert!(gate.ready(Duration::from_secs(5)).await, "the gate connects over TLS");

    // The cache stores and reads a value only Redis holds, and the app answers it.
    assert_eq!(cache.get().await, Cached::Miss);
    let top = TopProducts {
        window_days: 3,
        generated_at: "2025-01-02T03:04:05Z".to_owned(),
        items: vec![TopItem {
            rank: 1,
            product_id: 42,
            name: "Only in Redis".to_owned(),
            price: "12.50".to_owned(),
            stock: 7,
            sold_quantity: 99,
        }],
    };
    cache.put(&top).await;
    assert_eq!(cache.get().await, Cached::Hit(top.clone()));
    let (status, body) = app.get("/api/v1/products/top").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generatedAt"], "2025-01-02T03:04:05Z", "the app read the cache: {body}");
    assert_eq!(body["items"][0]["name"], "Only in Redis");
    assert_eq!(body["items"][0]["soldQuantity"], 99);
    assert!(cache.try_lock().await, "the single-flight lock is free");
    assert!(!cache.try_lock().await, "and then held");
    cache.unlock().await;
    assert!(cache.try_lock().await, "and free again once released");

    // The gate admits exactly the coupon's total, once per user, and remembers.
    let two = coupon(9, 2);
    assert_eq!(gate.admit(&two, user(1)).await, Admission::Admitted);
    assert_eq!(gate.admit(&two, user(1)).await, Admission::AlreadyHolds);
    assert_eq!(gate.admit(&two, user(2)).await, Admission::Admitted);
    assert_eq!(gate.admit(&two, user(3)).await, Admission::SoldOut);
    gate.release(&two, user(2)).await;
    assert_eq!(gate.admit(&two, user(3)).await, Admission::Admitted, "a released place is free again");
    gate.mark_sold_out(&two).await;
    assert_eq!(gate.admit(&two, user(4)).await, Admission::SoldOut);
    assert_eq!(gate.bypassed(), 0, "the gate answered every time");

    // A coupon issued through the app went through the gate: it holds the user now.
    app.seed_users(&[(5, "0.00")]).await;
    app.seed_coupon(1, 10, "100.00", OffsetDateTime::now_utc() + time::Duration::days(1)).await;
    let (status, body) = app.post("/api/v1/coupons/1?userId=5", "", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(gate.admit(&coupon(1, 10), user(5)).await, Admission::AlreadyHolds);
    assert_eq!(gate.bypassed(), 0);

    // What they wrote is on the server: a fresh connection reads it.
    let namespace = app.table().to_owned();
    let again = RedisTopCache::with_call_timeout(endpoint.clone(), &namespace, Duration::from_secs(60), REDIS_BUDGET)
        .expect("a cache");
    assert!(again.ready(Duration::from_secs(5)).await);
    assert_eq!(again.get().await, Cached::Hit(top));
    assert!(redis_connects(&app, "Connected").await >= 3.0, "each connection counted");
}

#[test]
fn an_untrusted_certificate_fails_the_connect_loudly_and_the_shop_answers_from_dynamodb() {
    let logs = Captured::default();
    let subscriber = logs.subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (certificates, redis) = tls_redis();
    let address = redis.url().trim_start_matches("rediss://").to_owned();

    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            // The public roots only, as deployed without REDIS_CA_FILE: the test's CA is
            // not among them.
            let (app, cache, gate) = app_on(&RedisEndpoint::new(redis.url())).await;
            app.seed_users(&[(1, "0.00")]).await;
            app.seed_products(3, "10.00", 100).await;
            app.seed_coupon(1, 10, "100.00", OffsetDateTime::now_utc() + time::Duration::days(1)).await;
            assert!(!cache.ready(Duration::from_millis(500)).await, "a server it does not trust");

            // Nothing waits on Redis: the answers come from DynamoDB, at once.
            let within = Duration::from_secs(10);
            let (status, body) = tokio::time::timeout(within, app.get("/api/v1/products/top")).await.expect("no hang");
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["windowDays"], 3);
            let (status, body) =
                tokio::time::timeout(within, app.post("/api/v1/coupons/1?userId=1", "", None)).await.expect("no hang");
            assert_eq!(status, 201, "DynamoDB alone issues it: {body}");
            assert!(gate.bypassed() >= 1, "the gate stepped aside");
            assert_eq!(cache.get().await, Cached::Unavailable);

            // The connect tasks keep at it, with backoff, and count every failure.
            let mut failed = 0.0;
            for _ in 0..100 {
                failed = redis_connects(&app, "Failed").await;
                if failed >= 6.0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(failed >= 6.0, "the cache's and the gate's tasks retried: {failed} failures counted");
            assert_eq!(cache.get().await, Cached::Unavailable, "still refused");

            // The server itself is fine: trusting its CA, a client gets through.
            let trusting = RedisEndpoint::new(redis.url()).trusting_ca_file(certificates.ca_cert()).unwrap();
            let cache = RedisTopCache::new(trusting, app.table(), Duration::from_secs(60)).unwrap();
            assert!(cache.ready(Duration::from_secs(5)).await, "the same server, its CA trusted");
        })
    });

    let logs = logs.text();
    let failures: Vec<&str> = logs.lines().filter(|line| line.contains("cannot connect to Redis")).collect();
    assert!(failures.len() >= 6, "every failed attempt is logged: {logs}");
    for line in &failures {
        assert!(line.contains("WARN") && line.contains(&format!("redis={address}")), "{line}");
        assert!(line.contains("UnknownIssuer"), "the log keeps the TLS cause: {line}");
        assert!(line.contains("retrying in"), "{line}");
    }
    assert!(failures.iter().any(|line| line.contains("failures=3")), "attempts are numbered: {logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn a_ca_file_beside_a_plain_redis_url_is_refused_at_start() {
    let certificates = TestCertificates::generate();
    let refused =
        RedisEndpoint::new("redis://127.0.0.1:6379").trusting_ca_file(certificates.ca_cert()).err().expect("refused");
    assert!(format!("{refused:#}").contains("rediss://"), "says what is wrong: {refused:#}");
}
