//! The top 5 of the last 3 days (invariant 7) against the real local stack:
//! the answer equals a brute-force count over the paid orders, the cache never
//! stampedes, a dead Redis never fails the caller, and staleness is bounded by the
//! refresh period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use futures::future::join_all;
use rushcart::adapters::redis_top::RedisTopCache;
use rushcart::clock::ManualClock;
use rushcart_tests::invariants::users;
use rushcart_tests::{redis_url, OwnRedis, TestApp, REDIS_BUDGET};
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Date, Duration};

/// Redis-timing tests run one at a time (see the coupon gate's tests).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn buy(app: &TestApp, user: u64, lines: &[(u64, u64)], pay: bool) {
    let products: Vec<Value> = lines.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect();
    let (status, order) =
        app.post("/api/v1/orders", &json!({"userId": user, "products": products}).to_string(), None).await;
    assert_eq!(status, 201, "{order}");
    if pay {
        let body = json!({"userId": user, "orderId": order["orderId"]}).to_string();
        let (status, paid) = app.post("/api/v1/payment", &body, None).await;
        assert_eq!(status, 200, "{paid}");
    }
}

/// (productId, soldQuantity) of the API's answer, in rank order.
async fn top(app: &TestApp) -> Vec<(u64, u64)> {
    let (status, body) = app.get("/api/v1/products/top").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["windowDays"], 3);
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["rank"].as_u64(), Some(i as u64 + 1));
            assert!(item["name"].is_string() && item["price"].is_string() && item["stock"].is_u64());
            (item["productId"].as_u64().unwrap(), item["soldQuantity"].as_u64().unwrap())
        })
        .collect()
}

fn brute_force(sales: &[(Date, u64, u64)], today: Date) -> Vec<(u64, u64)> {
    let mut sold: HashMap<u64, u64> = HashMap::new();
    for (day, product, quantity) in sales {
        if *day <= today && *day > today - Duration::days(3) {
            *sold.entry(*product).or_default() += quantity;
        }
    }
    let mut ranked: Vec<(u64, u64)> = sold.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(5);
    ranked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_five_simulated_days_the_answer_equals_a_brute_force_count_of_paid_orders() {
    let clock = ManualClock::at(datetime!(2026-11-20 10:00 UTC));
    let app = TestApp::spawn_with_clock(Arc::new(clock.clone())).await;
    app.seed_users(&users(1..=40, "10000000.00")).await;
    app.seed_products(8, "1.00", 1_000_000).await;
    assert!(top(&app).await.is_empty(), "nothing sold yet");

    let mut rng = fastrand::Rng::with_seed(7);
    let mut paid: Vec<(Date, u64, u64)> = Vec::new();
    for day in 0..5 {
        for _ in 0..12 {
            let mut products: Vec<u64> = (1..=8).collect();
            rng.shuffle(&mut products);
            let lines: Vec<(u64, u64)> = products[..rng.usize(1..=3)].iter().map(|p| (*p, rng.u64(1..=20))).collect();
            let pay = rng.u8(0..10) < 7;
            buy(&app, rng.u64(1..=40), &lines, pay).await;
            if pay {
                let today = clock.now_date();
                paid.extend(lines.iter().map(|(p, q)| (today, *p, *q)));
            }
        }
        if day < 4 {
            clock.advance(Duration::days(1));
        }
    }
    // Sales either side of midnight UTC count on their own day.
    clock.advance(Duration::hours(13) + Duration::minutes(59) + Duration::seconds(59)); // 23:59:59
    buy(&app, 1, &[(8, 100)], true).await;
    paid.push((clock.now_date(), 8, 100));
    assert_eq!(top(&app).await, brute_force(&paid, clock.now_date()));
    clock.advance(Duration::seconds(1)); // 00:00:00, the window moves a day on
    buy(&app, 2, &[(7, 55)], true).await;
    paid.push((clock.now_date(), 7, 55));
    assert_eq!(top(&app).await, brute_force(&paid, clock.now_date()));
    // Unpaid orders never count: the brute force only saw paid ones, and it agreed.
    clock.advance(Duration::days(3));
    assert!(top(&app).await.is_empty(), "everything has left the window");
}

trait NowDate {
    fn now_date(&self) -> Date;
}

impl NowDate for ManualClock {
    fn now_date(&self) -> Date {
        rushcart::clock::Clock::now(self).date()
    }
}

async fn cached_app(url: &str) -> (TestApp, Arc<RedisTopCache>) {
    let mut cache = None;
    let app = TestApp::spawn_configured(|namespace, deps| {
        let built = RedisTopCache::with_call_timeout(url, namespace, StdDuration::from_secs(60), REDIS_BUDGET).unwrap();
        // Callers that miss wait for the one recomputing as long as its lock lives.
        let built = Arc::new(built.with_patience(StdDuration::from_secs(5)));
        deps.top_cache = Some(built.clone());
        cache = Some(built);
    })
    .await;
    let cache = cache.unwrap();
    assert!(cache.ready(StdDuration::from_secs(5)).await, "Redis answers");
    (app, cache)
}

fn computations(app: &TestApp) -> u64 {
    app.counters().top_computations()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_requests_on_a_cold_cache_compute_the_answer_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, _cache) = cached_app(&redis_url()).await;
    app.seed_users(&users(1..=3, "100000.00")).await;
    app.seed_products(6, "10.00", 1000).await;
    for (user, product, quantity) in [(1, 1, 5), (2, 2, 9), (3, 3, 1), (1, 4, 9), (2, 5, 2), (3, 6, 3)] {
        buy(&app, user, &[(product, quantity)], true).await;
    }

    let answers = join_all((0..200).map(|_| app.get("/api/v1/products/top"))).await;

    let odd = answers.iter().find(|(status, body)| *status != 200 || *body != answers[0].1);
    assert!(odd.is_none(), "{odd:?} where the first was {:?}", answers[0]);
    let items: Vec<u64> =
        answers[0].1["items"].as_array().unwrap().iter().map(|i| i["productId"].as_u64().unwrap()).collect();
    assert_eq!(items, [2, 4, 1, 6, 5]);
    assert_eq!(computations(&app), 1, "one recompute for 200 concurrent misses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_stopped_the_answer_still_comes_and_the_cache_is_used_again_once_it_is_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut redis = OwnRedis::start();
    let (app, _cache) = cached_app(&redis.url()).await;
    app.seed_users(&users(1..=1, "100000.00")).await;
    app.seed_products(2, "10.00", 1000).await;
    buy(&app, 1, &[(2, 3)], true).await;
    let expected = vec![(2, 3)];

    assert_eq!(top(&app).await, expected);
    assert_eq!(top(&app).await, expected);
    assert_eq!(computations(&app), 1, "the second answer came from the cache");

    redis.stop();
    for _ in 0..3 {
        assert_eq!(top(&app).await, expected, "answered from DynamoDB");
    }
    // One computation, which the process keeps standing in for the cache a few seconds.
    assert_eq!(computations(&app), 2, "computed once for three answers while Redis is down");

    redis.restart();
    let mut settled = false;
    for _ in 0..50 {
        let before = computations(&app);
        assert_eq!(top(&app).await, expected);
        if computations(&app) == before {
            settled = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert!(settled, "after Redis came back, answers come from the cache again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_sale_the_answer_is_stale_at_most_one_refresh_period() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, cache) = cached_app(&redis_url()).await;
    app.seed_users(&users(1..=1, "100000.00")).await;
    app.seed_products(2, "10.00", 1000).await;
    buy(&app, 1, &[(1, 5)], true).await;
    assert_eq!(top(&app).await, [(1, 5)]);

    buy(&app, 1, &[(2, 9)], true).await;
    assert_eq!(top(&app).await, [(1, 5)], "served from the cache until the next refresh");

    // The local run's refresher on a 300 ms period, as EventBridge runs it on AWS.
    let period = StdDuration::from_millis(300);
    let mut deps = rushcart::Deps::new(app.store.clone());
    deps.top_cache = Some(cache.clone());
    let refresher = tokio::spawn(rushcart_local_api::run_refresher(Arc::new(deps), period));
    let started = std::time::Instant::now();
    while top(&app).await != [(2, 9), (1, 5)] {
        assert!(started.elapsed() < period * 3, "still stale after {:?}", started.elapsed());
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    refresher.abort();
}
