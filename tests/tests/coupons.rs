//! Products and first-come coupons against the real local stack, through the local
//! API over HTTP; coupon invariants checked from the database after every race.

use std::sync::Arc;

use futures::future::join_all;
use rushcart::clock::ManualClock;
use rushcart::ids::CouponId;
use rushcart_tests::capacity::{count_unavailable, rush_outcome, unavailable, under_capacity};
use rushcart_tests::invariants::{coupon_audit, users};
use rushcart_tests::TestApp;
use time::{Duration, OffsetDateTime};

fn in_days(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(days)
}

/// A coupon of 100 copies is one counter item by default (sharding starts at 1,000), and
/// it stays so here: the unsharded path is what most coupons take. Under the capacity
/// model 300 issues at once push that one item past its ceiling, which the test shows
/// (the model throttled), and an issue still throttled after the retries is answered
/// 503 and issued nothing: exactly min(100, the rest) are issued, held and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_users_racing_for_a_hundred_coupons_get_exactly_a_hundred() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=300, "0.00")).await;
    app.seed_coupon(1, 100, "1000.00", in_days(30)).await;

    let paths: Vec<String> = (1..=300).map(|user| format!("/api/v1/coupons/1?userId={user}")).collect();
    let results = join_all(paths.iter().map(|path| app.post(path, "", None))).await;

    let issued = results.iter().filter(|(status, _)| *status == 201).count();
    let sold_out = results.iter().filter(|(status, body)| *status == 409 && body["code"] == "COUPON_SOLD_OUT").count();
    let unavailable = count_unavailable(&results);
    let (expected, refused) = rush_outcome(100, 300, unavailable);
    assert_eq!(
        (issued, sold_out),
        (expected, refused),
        "{:?}",
        results.iter().find(|(s, b)| *s != 201 && *s != 409 && !self::unavailable(*s, b))
    );
    assert_eq!(coupon_audit(&app, 1).await, (expected as u64, expected as u64));
    let (status, coupon) = app.get("/api/v1/coupons/1").await;
    assert_eq!(status, 200);
    assert_eq!(
        (coupon["issued"].as_u64(), coupon["remaining"].as_u64()),
        (Some(expected as u64), Some(100 - expected as u64))
    );
    if under_capacity() {
        let throttled = app.throttled();
        eprintln!("300 issues of one counter item: {issued} issued, {unavailable} answered 503, {throttled} throttled");
        assert!(throttled > 0, "one item took 300 issues at once and the model never throttled it");
    }
}

/// Under the capacity model one of the fifty may be answered 503 (one counter item, one
/// user's copy); it issued nothing: still exactly one 201, and one copy held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_firing_fifty_requests_gets_exactly_one_coupon() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(7, "0.00")]).await;
    app.seed_coupon(1, 100, "1000.00", in_days(30)).await;

    let results = join_all((0..50).map(|_| app.post("/api/v1/coupons/1", r#"{"userId": 7}"#, None))).await;

    assert_eq!(results.iter().filter(|(status, _)| *status == 201).count(), 1, "{results:?}");
    assert!(results.iter().filter(|(status, _)| *status != 201).all(|(status, body)| (*status == 409
        && body["code"] == "COUPON_ALREADY_ISSUED")
        || unavailable(*status, body)));
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
}

/// A coupon whose copies are counted in shards: a rush gets exactly its total, over
/// every shard, and the shards add up to what users hold. Under the capacity model too,
/// with no 503 accepted: eight shards take the rush within their ceilings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hundred_users_racing_for_a_coupon_of_eight_shards_get_exactly_its_total() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=400, "0.00")).await;
    app.seed_sharded_coupon(1, 150, 8, "1000.00", in_days(30)).await;

    let paths: Vec<String> = (1..=400).map(|user| format!("/api/v1/coupons/1?userId={user}")).collect();
    let results = join_all(paths.iter().map(|path| app.post(path, "", None))).await;

    let issued = results.iter().filter(|(status, _)| *status == 201).count();
    let sold_out = results.iter().filter(|(status, body)| *status == 409 && body["code"] == "COUPON_SOLD_OUT").count();
    assert_eq!((issued, sold_out), (150, 250), "{:?}", results.iter().find(|(s, _)| *s != 201 && *s != 409));
    assert_eq!(coupon_audit(&app, 1).await, (150, 150));
    let (status, coupon) = app.get("/api/v1/coupons/1").await;
    assert_eq!(status, 200);
    assert_eq!(
        (coupon["issued"].as_u64(), coupon["remaining"].as_u64(), coupon["shards"].as_u64()),
        (Some(150), Some(0), Some(8))
    );
}

/// One copy in each of five shards: however the picks fall, each of five users finds
/// the shard with a copy left, and only then is the coupon sold out. A holder asking
/// again is told it holds one, sold out or not.
#[tokio::test]
async fn an_issue_tries_every_shard_before_it_answers_sold_out() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=6, "0.00")).await;
    app.seed_sharded_coupon(1, 5, 5, "1.00", in_days(30)).await;

    for user in 1..=5 {
        let (status, body) = app.post(&format!("/api/v1/coupons/1?userId={user}"), "", None).await;
        assert_eq!(status, 201, "user {user}: {body}");
    }
    let (status, body) = app.post("/api/v1/coupons/1?userId=6", "", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("COUPON_SOLD_OUT")), "{body}");
    let (status, body) = app.post("/api/v1/coupons/1?userId=3", "", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("COUPON_ALREADY_ISSUED")), "{body}");
    assert_eq!(coupon_audit(&app, 1).await, (5, 5));
}

/// An operator's coupon of 1,000 copies or more is sharded unless they say how; a
/// number of shards outside 1..=64, or above the total, is refused and makes nothing.
#[tokio::test]
async fn an_operator_chooses_a_coupons_shards_or_gets_them_from_its_total() {
    let app = TestApp::spawn().await;
    let operator = app.operator_token(900);
    let coupon = |total: u64, shards: Option<serde_json::Value>| {
        let mut body =
            serde_json::json!({"name": "Rush", "discount": "1.00", "total": total, "endsAt": "2099-01-01T00:00:00Z"});
        if let Some(shards) = shards {
            body["shards"] = shards;
        }
        body.to_string()
    };
    for (total, shards, expected) in
        [(999, None, 1), (1_000, None, 16), (1_000, Some(1.into()), 1), (64, Some(64.into()), 64)]
    {
        let (status, made) =
            app.post_as("/api/v1/admin/coupons", &coupon(total, shards.clone()), None, Some(&operator)).await;
        assert_eq!((status, made["shards"].as_u64()), (201, Some(expected)), "{total} {shards:?}: {made}");
        let (_, read) = app.get(&format!("/api/v1/coupons/{}", made["couponId"])).await;
        assert_eq!((read["shards"].as_u64(), read["remaining"].as_u64()), (Some(expected), Some(total)), "{read}");
    }
    for (total, shards) in [
        (100, serde_json::json!(0)),
        (100, 65.into()),
        (3, 4.into()),
        (100, serde_json::Value::Null),
        (100, "2".into()),
    ] {
        let (status, body) =
            app.post_as("/api/v1/admin/coupons", &coupon(total, Some(shards.clone())), None, Some(&operator)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_QUANTITY")), "{shards}: {body}");
    }
    assert_eq!(app.get("/api/v1/coupons/5").await.0, 404, "the refused ones made nothing");
}

/// A keyed issue retried answers its copy again (`Idempotent-Replayed`), even once
/// the coupon is sold out; an unkeyed retry is told the user holds one; the key on
/// another coupon is refused.
#[tokio::test]
async fn a_keyed_issue_retried_answers_its_copy_again_even_sold_out() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=2, "0.00")).await;
    app.seed_coupon(1, 1, "1.00", in_days(30)).await;
    app.seed_coupon(2, 10, "1.00", in_days(30)).await;
    let token = app.token(1);

    let first = app.post_keyed("/api/v1/coupons/1", "", "grab-1", &token).await;
    assert_eq!((first.status, first.replayed), (201, false), "{}", first.body);
    let (status, _) = app.post("/api/v1/coupons/1?userId=2", "", None).await;
    assert_eq!(status, 409, "sold out now");
    let again = app.post_keyed("/api/v1/coupons/1", "", "grab-1", &token).await;
    assert_eq!((again.status, again.replayed, &again.body), (201, true, &first.body));
    let (status, body) = app.post("/api/v1/coupons/1?userId=1", "", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("COUPON_ALREADY_ISSUED")), "{body}");
    let reused = app.post_keyed("/api/v1/coupons/2", "", "grab-1", &token).await;
    assert_eq!((reused.status, reused.body["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")), "{}", reused.body);
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
    assert_eq!(coupon_audit(&app, 2).await, (0, 0));
}

#[tokio::test]
async fn an_issued_coupon_is_described_and_listed_with_its_status_as_the_clock_moves() {
    let clock = ManualClock::at(OffsetDateTime::now_utc());
    let app = TestApp::spawn_with_clock(Arc::new(clock.clone())).await;
    app.seed_users(&[(5, "0.00"), (6, "0.00")]).await;
    let ends = OffsetDateTime::now_utc() + Duration::hours(1);
    app.seed_coupon(1, 10, "1000.00", ends).await;
    app.seed_coupon(2, 10, "50.50", ends + Duration::days(1)).await;

    // The baseline client's shape: ?userId= and no body.
    let (status, copy) = app.post("/api/v1/coupons/1?userId=5", "", None).await;
    assert_eq!(status, 201, "{copy}");
    assert_eq!(copy["couponId"], 1);
    assert_eq!(copy["userId"], 5);
    assert_eq!(copy["discount"], "1000.00");
    assert_eq!(copy["status"], "AVAILABLE");
    assert_eq!(copy["expiresAt"], rushcart::clock::rfc3339(ends));
    assert!(copy["issuedAt"].as_str().unwrap().ends_with('Z'));
    // Both places at once, when they agree.
    let (status, _) = app.post("/api/v1/coupons/2?userId=5", r#"{"userId":"5"}"#, None).await;
    assert_eq!(status, 201);

    let (status, coupon) = app.get("/api/v1/coupons/1").await;
    assert_eq!(status, 200);
    assert_eq!(coupon["name"], "Coupon 1");
    assert_eq!(
        (coupon["total"].as_u64(), coupon["issued"].as_u64(), coupon["remaining"].as_u64()),
        (Some(10), Some(1), Some(9))
    );
    assert_eq!(coupon["endsAt"], rushcart::clock::rfc3339(ends));

    let statuses = |body: serde_json::Value| -> Vec<(u64, String)> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["couponId"].as_u64().unwrap(), c["status"].as_str().unwrap().to_owned()))
            .collect()
    };
    let (_, mine) = app.get("/api/v1/users/5/coupons").await;
    assert_eq!(statuses(mine), [(1, "AVAILABLE".into()), (2, "AVAILABLE".into())]);

    // Mark coupon 2 used (payment will do this), then move past coupon 1's end.
    app.client()
        .update_item()
        .table_name(app.table())
        .key("pk", rushcart::adapters::dynamodb::s("USER#5"))
        .key(
            "sk",
            rushcart::adapters::dynamodb::s(rushcart::adapters::dynamodb::keys::coupon_copy_sk(
                CouponId::new(2).unwrap(),
            )),
        )
        .update_expression("SET usedAt = :at")
        .expression_attribute_values(
            ":at",
            rushcart::adapters::dynamodb::s(rushcart::clock::rfc3339(OffsetDateTime::now_utc())),
        )
        .send()
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    let (_, mine) = app.get("/api/v1/users/5/coupons?limit=1").await;
    assert_eq!(statuses(mine.clone()), [(1, "EXPIRED".into())]);
    let cursor = mine["nextCursor"].as_str().expect("a second page").to_owned();
    let (_, rest) = app.get(&format!("/api/v1/users/5/coupons?limit=1&cursor={cursor}")).await;
    assert_eq!(statuses(rest.clone()), [(2, "USED".into())]);
    assert!(rest["nextCursor"].is_null());

    // An ended coupon issues nothing.
    let (status, body) = app.post("/api/v1/coupons/1?userId=6", "", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("COUPON_EXPIRED")));
    assert_eq!(coupon_audit(&app, 1).await, (1, 1));
    let (_, theirs) = app.get("/api/v1/users/6/coupons").await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_coupon_requests_are_4xx_json_errors_and_issue_nothing() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "0.00")]).await;
    app.seed_coupon(1, 100, "1000.00", in_days(30)).await;
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("/api/v1/coupons/1?userId=abc", "", 400, "INVALID_USER_ID"),
        ("/api/v1/coupons/1?userId=0", "", 400, "INVALID_USER_ID"),
        ("/api/v1/coupons/1?userId=-3", "", 400, "INVALID_USER_ID"),
        ("/api/v1/coupons/1", r#"{"userId": -1}"#, 400, "INVALID_USER_ID"),
        ("/api/v1/coupons/1", r#"{"userId": 1.5}"#, 400, "INVALID_USER_ID"),
        ("/api/v1/coupons/1", r#"{"userId": true}"#, 400, "INVALID_USER_ID"),
        ("/api/v1/coupons/1", r#"{"userId": 1"#, 400, "MALFORMED_JSON"),
        ("/api/v1/coupons/1", r#"[1]"#, 400, "INVALID_BODY"),
        ("/api/v1/coupons/1?userId=1", r#"{"userId": 2}"#, 403, "FORBIDDEN"),
        ("/api/v1/coupons/abc?userId=1", "", 400, "INVALID_COUPON_ID"),
        ("/api/v1/coupons/0?userId=1", "", 400, "INVALID_COUPON_ID"),
        ("/api/v1/coupons/2?userId=1", "", 404, "COUPON_NOT_FOUND"),
        ("/api/v1/coupons/1?userId=99", "", 404, "USER_NOT_FOUND"),
    ];
    for (path, body, status, code) in cases {
        let (got_status, got) = app.post(path, body, None).await;
        assert_eq!((got_status, got["code"].as_str()), (status, Some(code)), "{path} {body}: {got}");
    }
    for (path, status, code) in [
        ("/api/v1/coupons/x", 400, "INVALID_COUPON_ID"),
        ("/api/v1/coupons/9", 404, "COUPON_NOT_FOUND"),
        ("/api/v1/users/x/coupons", 400, "INVALID_USER_ID"),
        ("/api/v1/users/99/coupons", 404, "USER_NOT_FOUND"),
        ("/api/v1/users/1/coupons?limit=0", 400, "INVALID_LIMIT"),
        ("/api/v1/users/1/coupons?cursor=eHl6", 400, "INVALID_CURSOR"),
    ] {
        let (got_status, got) = app.get(path).await;
        assert_eq!((got_status, got["code"].as_str()), (status, Some(code)), "{path}: {got}");
    }
    assert_eq!(coupon_audit(&app, 1).await, (0, 0));

    // Trusting the client (AUTH=off), the request must name the user, in agreement.
    let app = TestApp::spawn_trusting_the_client().await;
    app.seed_users(&[(1, "0.00")]).await;
    app.seed_coupon(1, 100, "1000.00", in_days(30)).await;
    for (path, body) in
        [("/api/v1/coupons/1", ""), ("/api/v1/coupons/1", "{}"), ("/api/v1/coupons/1?userId=1", r#"{"userId": 2}"#)]
    {
        let (status, got) = app.post_as(path, body, None, None).await;
        assert_eq!((status, got["code"].as_str()), (400, Some("INVALID_USER_ID")), "{path} {body}: {got}");
    }
    assert_eq!(coupon_audit(&app, 1).await, (0, 0));
}

#[tokio::test]
async fn products_are_listed_in_id_order_page_by_page_and_read_one_by_one() {
    let app = TestApp::spawn().await;
    app.seed_products(25, "1000.00", 1000).await;

    let mut ids = Vec::new();
    let mut path = "/api/v1/products?limit=10".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for product in page["items"].as_array().unwrap() {
            assert_eq!(product["price"], "1000.00");
            assert_eq!(product["stock"], 1000);
            ids.push(product["productId"].as_u64().unwrap());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/products?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(ids, (1..=25).collect::<Vec<_>>());

    let (status, product) = app.get("/api/v1/products/7").await;
    assert_eq!(status, 200);
    assert_eq!(
        product,
        serde_json::json!({"productId": 7, "name": "Product 7", "price": "1000.00", "stock": 1000, "buckets": 16})
    );
    for (path, status, code) in [
        ("/api/v1/products/99", 404, "PRODUCT_NOT_FOUND"),
        ("/api/v1/products/seven", 400, "INVALID_PRODUCT_ID"),
        ("/api/v1/products/-1", 400, "INVALID_PRODUCT_ID"),
        ("/api/v1/products?limit=1000", 400, "INVALID_LIMIT"),
        ("/api/v1/products?cursor=eHl6", 400, "INVALID_CURSOR"),
    ] {
        let (got_status, got) = app.get(path).await;
        assert_eq!((got_status, got["code"].as_str()), (status, Some(code)), "{path}: {got}");
    }
}
