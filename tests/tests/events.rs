//! Every recorded event in `events/` goes through the handler its function runs, against
//! the real local stack (the DynamoDB engine, moto's SQS and Kinesis, Redis): the HTTP events
//! through `lambda_http`'s parser into the route handlers, the stream, SQS and schedule
//! events into `rushcart::triggers`. Where a recorded event names an order that only
//! exists once the test has made it, the test swaps in the real order id and says so.
//!
//! Every DynamoDB call each function makes here is held to the IAM policy
//! `template.yaml` gives that function ([`rushcart_tests::policy`]), so a call the
//! deployed function would be denied fails here first.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::Request;
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::adapters::feed_aws::{AwsPublisher, HttpPlatform};
use rushcart::adapters::redis_top::RedisTopCache;
use rushcart::clock::{Clock, ManualClock, SystemClock};
use rushcart::http::routes::{dispatch, ROUTES};
use rushcart::top::{Cached, TopProductsCache};
use rushcart::{triggers, Deps};
use rushcart_testkit::channels::provision;
use rushcart_tests::feed::{kinesis_client, moto_endpoint, sqs_client, Behaviour, Receiver};
use rushcart_tests::policy::{with_calls, Policies};
use rushcart_tests::{redis_url, TestApp};
use serde_json::Value;

/// The recorded events' order id; the test replaces it with an order it made.
const RECORDED_ORDER: &str = "01JDQ3Z6Y0000000000000XYZ1";

fn recorded(name: &str) -> String {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn http_event(name: &str) -> Request {
    http_event_for(name, RECORDED_ORDER)
}

/// The recorded HTTP event with the recorded order id replaced by `order`.
fn http_event_for(name: &str, order: &str) -> Request {
    let text = recorded(name).replace(RECORDED_ORDER, order);
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

static POLICIES: LazyLock<Policies> = LazyLock::new(Policies::from_template);

/// Runs `work` as `function` would on AWS: every DynamoDB call it makes must be one
/// the function's policy allows (its store must be a [`TestApp::recording_store`]).
async fn as_function<T>(function: &str, work: impl std::future::Future<Output = T>) -> T {
    let (output, calls) = with_calls(work).await;
    POLICIES.assert_allowed(function, &calls);
    output
}

/// The recorded HTTP event with an `Idempotency-Key` header.
fn keyed_event_for(name: &str, order: &str, key: &str) -> Request {
    let mut event: Value = serde_json::from_str(&recorded(name).replace(RECORDED_ORDER, order)).expect("JSON");
    event["headers"]["idempotency-key"] = key.into();
    lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

fn json_event(name: &str) -> Value {
    serde_json::from_str(&recorded(name)).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

/// A (recorded, maybe edited) DynamoDB stream event as the Lambda runtime hands it to
/// `feed-relay`.
fn stream_event(event: &Value) -> StreamEvent {
    serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("a DynamoDB stream event: {e}\n{event}"))
}

/// A (recorded, maybe edited) SQS event as the Lambda runtime hands it to
/// `feed-consumer`.
fn sqs_event(event: &Value) -> SqsEvent {
    serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("an SQS event: {e}\n{event}"))
}

/// Runs a recorded HTTP event through the route its function serves, as its `main`
/// does: the function is named by the event's route.
///
/// Every span rushcart opened while it ran must be the request span: JSON log lines
/// carry the current span only (`rushcart::telemetry`), so a span inside it would hide
/// the request's ids from the lines logged there.
async fn run(deps: &Deps<DynamoStore>, request: Request) -> (u16, Value) {
    use lambda_http::RequestExt as _;
    rushcart_tests::logs::record_spans();
    let route_key = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context.route_key.clone(),
        _ => None,
    };
    let route_key = route_key.expect("a recorded HTTP API event carries its route key");
    let route = ROUTES
        .iter()
        .find(|r| format!("{} {}", r.method, r.path) == route_key)
        .unwrap_or_else(|| panic!("no route for {route_key}"));
    // Boxed: the route table's future is too deep a type to nest in another.
    let response = as_function(route.function, Box::pin(dispatch(route.function, request, deps)))
        .await
        .expect("the route's function serves it");
    assert_eq!(rushcart_tests::logs::spans_seen(), ["request"], "the spans rushcart opened");
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// A table seeded with the demo shop the recorded events assume: user 1 with
/// 1,000,000.00, products 1..20 at 1000.00 with stock 1000, coupon 1 of 100 units
/// taking 1000.00 off.
async fn demo_shop() -> TestApp {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000000.00")]).await;
    app.seed_products(20, "1000.00", 1000).await;
    app.seed_coupon(1, 100, "1000.00", time::OffsetDateTime::now_utc() + time::Duration::days(30)).await;
    app
}

/// The ORDER_PAID outbox item of order `id`, which the payment wrote.
async fn outbox_item(app: &TestApp, id: &str) -> std::collections::HashMap<String, AttributeValue> {
    outbox_event(app, id, "ORDER_PAID").await
}

/// The outbox item of order `id`'s event of type `kind`.
async fn outbox_event(app: &TestApp, id: &str, kind: &str) -> std::collections::HashMap<String, AttributeValue> {
    app.client()
        .get_item()
        .table_name(app.store.outbox_table())
        .key("pk", AttributeValue::S(format!("ORDER#{id}")))
        .key("sk", AttributeValue::S(kind.into()))
        .send()
        .await
        .expect("read the outbox")
        .item
        .expect("the payment wrote its outbox event")
}

fn cached_deps(store: &DynamoStore, clock: Arc<dyn Clock>) -> (Deps<DynamoStore>, Arc<RedisTopCache>) {
    let cache = Arc::new(RedisTopCache::new(redis_url(), store.table(), Duration::from_secs(60)).expect("cache"));
    let mut deps = Deps::with_clock(store.clone(), clock);
    deps.top_cache = Some(cache.clone());
    (deps, cache)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_balance_catalogue_and_coupon_events_run_through_their_handlers() {
    let app = demo_shop().await;
    let deps = Deps::new(app.recording_store());

    let (status, charged) = run(&deps, http_event("charge-balance")).await;
    assert_eq!((status, charged["balance"].as_str()), (200, Some("1001000.00")), "{charged}");
    let (status, used) = run(&deps, http_event("use-balance")).await;
    assert_eq!((status, used["balance"].as_str()), (200, Some("1000000.00")), "{used}");
    let (status, got) = run(&deps, http_event("get-balance")).await;
    assert_eq!((status, got["balance"].as_str()), (200, Some("1000000.00")), "{got}");
    let (status, history) = run(&deps, http_event("balance-history")).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["items"].as_array().map(Vec::len), Some(2), "limit=2: {history}");
    assert!(history["nextCursor"].is_string(), "the seed entry is on the next page: {history}");

    // The keyed path, its replay and a refusal, each within the function's policy.
    let (status, used) = run(&deps, keyed_event_for("use-balance", RECORDED_ORDER, "use-1")).await;
    assert_eq!((status, used["balance"].as_str()), (200, Some("999000.00")), "{used}");
    let (status, again) = run(&deps, keyed_event_for("use-balance", RECORDED_ORDER, "use-1")).await;
    assert_eq!((status, &again), (200, &used), "a replay");
    let (status, charged) = run(&deps, http_event("charge-balance")).await;
    let first = Some("1001000.00");
    assert_eq!((status, charged["balance"].as_str()), (200, first), "the recorded key replays: {charged}");

    let (status, listed) = run(&deps, http_event("list-products")).await;
    assert_eq!(status, 200, "{listed}");
    assert!(!listed["items"].as_array().expect("items").is_empty());
    let (status, product) = run(&deps, http_event("get-product")).await;
    assert_eq!((status, product["price"].as_str()), (200, Some("1000.00")), "{product}");

    let (status, issued) = run(&deps, http_event("issue-coupon")).await;
    assert_eq!(status, 201, "{issued}");
    let (status, again) = run(&deps, http_event("issue-coupon")).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("COUPON_ALREADY_ISSUED")), "{again}");
    let (status, coupon) = run(&deps, http_event("get-coupon")).await;
    assert_eq!((status, coupon["remaining"].as_u64()), (200, Some(99)), "{coupon}");
    let (status, mine) = run(&deps, http_event("user-coupons")).await;
    assert_eq!((status, mine["items"].as_array().map(Vec::len)), (200, Some(1)), "{mine}");

    // A sharded coupon, issued under a key and replayed, and read: each call within the
    // functions' policies too.
    app.seed_coupon(5, 1_000, "10.00", time::OffsetDateTime::now_utc() + time::Duration::days(30)).await;
    let (status, issued) = run(&deps, coupon_event("issue-coupon", 5, Some("grab-5"))).await;
    assert_eq!(status, 201, "{issued}");
    let (status, again) = run(&deps, coupon_event("issue-coupon", 5, Some("grab-5"))).await;
    assert_eq!((status, &again), (201, &issued), "a replay");
    let (status, coupon) = run(&deps, coupon_event("get-coupon", 5, None)).await;
    assert_eq!((status, coupon["shards"].as_u64(), coupon["issued"].as_u64()), (200, Some(16), Some(1)), "{coupon}");
}

/// The recorded coupon event `name` for coupon `coupon`, under `key` if any.
fn coupon_event(name: &str, coupon: u64, key: Option<&str>) -> Request {
    let mut event: Value = serde_json::from_str(&recorded(name)).expect("JSON");
    let path = format!("/api/v1/coupons/{coupon}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["pathParameters"]["couponId"] = coupon.to_string().into();
    if let Some(key) = key {
        event["headers"]["idempotency-key"] = key.into();
    }
    lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("events/{name}.json: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_order_payment_top_and_refresh_events_run_through_their_handlers() {
    let app = demo_shop().await;
    let (deps, cache) = cached_deps(&app.recording_store(), Arc::new(SystemClock));
    assert!(cache.ready(Duration::from_secs(5)).await, "Redis answers");
    run(&deps, http_event("issue-coupon")).await;

    // The recorded body: products 1 × 2 and 2 × 1 with coupon 1.
    let (status, order) = run(&deps, http_event("create-order")).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!((order["subtotal"].as_str(), order["discount"].as_str()), (Some("3000.00"), Some("1000.00")));
    let id = order["orderId"].as_str().expect("orderId").to_owned();

    // As recorded, the order id is unknown to this table.
    let (status, missing) = run(&deps, http_event("get-order")).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "{missing}");
    let (status, unpaid) = run(&deps, http_event("pay-order")).await;
    assert_eq!(status, 404, "{unpaid}");
    let (status, fetched) = run(&deps, http_event_for("get-order", &id)).await;
    assert_eq!((status, fetched["status"].as_str()), (200, Some("PENDING_PAYMENT")), "{fetched}");

    // A refused payment is counted: a second order of the same lines, paid with 1.00 left.
    let (status, big) = run(&deps, keyed_event_for("create-order", RECORDED_ORDER, "big-1")).await;
    assert_eq!(status, 201, "{big}");
    let (status, replayed) = run(&deps, keyed_event_for("create-order", RECORDED_ORDER, "big-1")).await;
    assert_eq!((status, &replayed["orderId"]), (201, &big["orderId"]), "a keyed retry: {replayed}");
    let mut broke = json_event("use-balance");
    broke["body"] = r#"{"amount": "999999.00"}"#.into();
    let request = lambda_http::request::from_str(&broke.to_string()).expect("the event with another amount");
    assert_eq!(run(&deps, request).await.0, 200, "user 1 keeps 1.00");
    let big = big["orderId"].as_str().expect("orderId").to_owned();
    let (status, refused) = run(&deps, http_event_for("pay-order", &big)).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("INSUFFICIENT_BALANCE")), "{refused}");
    let (status, read) = run(&deps, http_event_for("get-order", &big)).await;
    assert_eq!((status, read["failedAttempts"].as_u64()), (200, Some(1)), "{read}");
    let mut refill = json_event("charge-balance");
    refill["headers"]["idempotency-key"] = "refill-1".into();
    refill["body"] = r#"{"amount": "999999.00"}"#.into();
    let request = lambda_http::request::from_str(&refill.to_string()).expect("the event with another amount");
    assert_eq!(run(&deps, request).await.0, 200);

    let (status, paid) = run(&deps, keyed_event_for("pay-order", &id, "pay-1")).await;
    assert_eq!((status, paid["amount"].as_str()), (200, Some("2000.00")), "{paid}");
    assert_eq!(paid["balanceAfter"].as_str(), Some("998000.00"), "{paid}");
    let (status, again) = run(&deps, keyed_event_for("pay-order", &id, "pay-1")).await;
    assert_eq!((status, &again), (200, &paid), "a replay answers as the first");
    let (status, fetched) = run(&deps, http_event_for("get-order", &id)).await;
    assert_eq!((status, fetched["status"].as_str()), (200, Some("PAID")), "{fetched}");
    let (status, listed) = run(&deps, http_event("user-orders")).await;
    assert_eq!(status, 200, "{listed}");
    let listed: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| (o["orderId"].as_str().unwrap_or_default(), o["status"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(listed, [(big.as_str(), "PENDING_PAYMENT"), (id.as_str(), "PAID")], "newest first");

    // The schedule event fills the cache with the answer the top route then serves.
    let _ = json_event("refresh-top-products");
    let refresh = triggers::refresh_top_on_schedule(&deps.store, cache.as_ref(), deps.clock.as_ref());
    let refreshed = as_function("refresh-top-products", refresh).await.expect("refresh");
    assert_eq!(refreshed["items"], 2, "{refreshed}");
    let Cached::Hit(cached) = cache.get().await else { panic!("the refresh wrote the cache") };
    let ranked: Vec<(u64, u64)> = cached.items.iter().map(|i| (i.product_id, i.sold_quantity)).collect();
    assert_eq!(ranked, [(1, 2), (2, 1)]);
    let (status, answered) = run(&deps, http_event("products-top")).await;
    assert_eq!(status, 200, "{answered}");
    let products: Vec<u64> =
        answered["items"].as_array().expect("items").iter().filter_map(|i| i["productId"].as_u64()).collect();
    assert_eq!(products, [1, 2], "{answered}");

    // The customer's cancel refunds the paid order (a keyed retry replays it), the
    // operator's cancels the unpaid one; each within its function's policy.
    let (status, refunded) = run(&deps, keyed_event_for("cancel-order", &id, "cancel-1")).await;
    assert_eq!((status, refunded["status"].as_str()), (200, Some("REFUNDED")), "{refunded}");
    let (status, again) = run(&deps, keyed_event_for("cancel-order", &id, "cancel-1")).await;
    assert_eq!((status, &again), (200, &refunded), "a replay answers as the first");
    let (status, got) = run(&deps, http_event("get-balance")).await;
    assert_eq!((status, got["balance"].as_str()), (200, Some("1000000.00")), "the 2000.00 came back: {got}");
    let (status, missing) = run(&deps, http_event("cancel-order")).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "as recorded: {missing}");
    let (status, cancelled) = run(&deps, keyed_event_for("cancel-any-order", &big, "op-cancel-1")).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("CANCELLED")), "{cancelled}");
    let (status, paid_late) = run(&deps, http_event_for("pay-order", &big)).await;
    assert_eq!((status, paid_late["code"].as_str()), (409, Some("ORDER_CANCELLED")), "{paid_late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_stream_sqs_and_schedule_events_carry_a_paid_order_to_the_platform_once() {
    let app = demo_shop().await;
    let deps = Deps::new(app.recording_store());
    let moto = moto_endpoint();
    let (sqs, kinesis) = (sqs_client(&moto).await, kinesis_client(&moto).await);
    let prefix = app.table().trim_end_matches("-main").to_owned();
    let channels = provision(&sqs, &kinesis, &prefix, 30).await.expect("provision the feed");
    let publisher = AwsPublisher { sqs: sqs.clone(), kinesis, channels: channels.clone() };
    let receiver = Receiver::start(Behaviour::Accept).await;
    let platform = HttpPlatform::new(&receiver.url).expect("platform");

    // The recorded order uses coupon 1, so user 1 takes it first.
    assert_eq!(run(&deps, http_event("issue-coupon")).await.0, 201);
    let (status, order) = run(&deps, http_event("create-order")).await;
    assert_eq!(status, 201, "{order}");
    let id = order["orderId"].as_str().expect("orderId").to_owned();
    let (status, _) = run(&deps, http_event_for("pay-order", &id)).await;
    assert_eq!(status, 200);

    // The recorded stream record, carrying this order's outbox item as its new image.
    let item = outbox_item(&app, &id).await;
    let payload = item["payload"].as_s().expect("payload").clone();
    let mut stream_json = json_event("feed-relay");
    let record = &mut stream_json["Records"][0]["dynamodb"];
    record["NewImage"]["orderId"]["S"] = id.clone().into();
    record["NewImage"]["eventId"]["S"] = format!("{id}:ORDER_PAID").into();
    record["NewImage"]["payload"]["S"] = payload.clone().into();
    let store = app.recording_store();
    let relay = triggers::relay_stream_batch(&publisher, &store, &SystemClock, stream_event(&stream_json));
    let response = serde_json::to_value(as_function("feed-relay", relay).await).expect("JSON");
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    let item = outbox_item(&app, &id).await;
    assert!(item.contains_key("publishedAt"), "the relay marked the event published");

    // Nothing is left for the sweeper, even once the grace period has passed.
    let later = ManualClock::at(SystemClock.now() + time::Duration::minutes(5));
    let _ = json_event("feed-sweeper");
    let swept =
        as_function("feed-sweeper", triggers::sweep_on_schedule(&publisher, &store, &later)).await.expect("sweep");
    assert_eq!(swept, serde_json::json!({"republished": 0, "failed": 0}));

    // The message the relay put on SQS, delivered in the recorded SQS event's shape.
    let received = sqs
        .receive_message()
        .queue_url(&channels.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1, "one event on the queue");
    assert_eq!(messages[0].body.as_deref(), Some(payload.as_str()));
    let mut sqs_json = json_event("feed-consumer");
    sqs_json["Records"][0]["messageId"] = messages[0].message_id.clone().expect("message id").into();
    sqs_json["Records"][0]["body"] = payload.into();
    for _ in 0..2 {
        let consume = triggers::consume_sqs_batch(&store, &platform, &SystemClock, sqs_event(&sqs_json));
        let response = serde_json::to_value(as_function("feed-consumer", consume).await).expect("JSON");
        assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    }
    assert_eq!(receiver.paid().get(&id), Some(&1), "delivered once though consumed twice");

    // As recorded, the stream record names an order whose outbox item this table does
    // not hold: the relay reports it as a failed batch item (for the stream to retry)
    // instead of failing the batch or claiming success.
    let recorded_relay = json_event("feed-relay");
    let relay = triggers::relay_stream_batch(&publisher, &store, &SystemClock, stream_event(&recorded_relay));
    let response = serde_json::to_value(as_function("feed-relay", relay).await).expect("JSON");
    assert_eq!(response["batchItemFailures"], serde_json::json!([{"itemIdentifier": "111"}]), "{response}");

    // The recorded SQS event as is: its order goes to the platform once.
    let recorded_sqs = json_event("feed-consumer");
    let consume = triggers::consume_sqs_batch(&store, &platform, &SystemClock, sqs_event(&recorded_sqs));
    let response = serde_json::to_value(as_function("feed-consumer", consume).await).expect("JSON");
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    let delivered: BTreeSet<String> = receiver.paid().keys().cloned().collect();
    assert_eq!(delivered, BTreeSet::from([id.clone(), RECORDED_ORDER.to_owned()]));

    // Messages the SQS event carries but the consumer cannot read (a body that is no
    // JSON, an event without its id) are failed items, for SQS to dead-letter, and
    // never reach the platform; the readable one beside them is acknowledged.
    let mut mixed = json_event("feed-consumer");
    let mut unreadable = Vec::new();
    for (message_id, body) in [("m-not-json", "{\"eventId\": "), ("m-no-id", "{\"orderId\": \"x\"}")] {
        let mut record = mixed["Records"][0].clone();
        record["messageId"] = message_id.into();
        record["body"] = body.into();
        unreadable.push(record);
    }
    mixed["Records"].as_array_mut().expect("records").extend(unreadable);
    let attempts_before = receiver.attempts.lock().expect("attempts").values().sum::<u32>();
    let consume = triggers::consume_sqs_batch(&store, &platform, &SystemClock, sqs_event(&mixed));
    let response = serde_json::to_value(as_function("feed-consumer", consume).await).expect("JSON");
    let mut failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["m-no-id", "m-not-json"], "{response}");
    let attempts_after = receiver.attempts.lock().expect("attempts").values().sum::<u32>();
    assert_eq!(attempts_after, attempts_before, "the recorded event is a duplicate; the broken ones are not posted");

    // A refund's ORDER_REFUNDED in the recorded stream record's shape: the relay looks
    // up the order's ORDER_PAID first (published already here), within its policy.
    let (status, refunded) = run(&deps, http_event_for("cancel-order", &id)).await;
    assert_eq!((status, refunded["status"].as_str()), (200, Some("REFUNDED")), "{refunded}");
    let item = outbox_event(&app, &id, "ORDER_REFUNDED").await;
    let mut stream_json = json_event("feed-relay");
    let record = &mut stream_json["Records"][0]["dynamodb"];
    record["NewImage"]["orderId"]["S"] = id.clone().into();
    record["NewImage"]["eventId"]["S"] = format!("{id}:ORDER_REFUNDED").into();
    record["NewImage"]["payload"]["S"] = item["payload"].as_s().expect("payload").clone().into();
    let relay = triggers::relay_stream_batch(&publisher, &store, &SystemClock, stream_event(&stream_json));
    let response = serde_json::to_value(as_function("feed-relay", relay).await).expect("JSON");
    assert_eq!(response["batchItemFailures"], serde_json::json!([]), "{response}");
    assert!(outbox_event(&app, &id, "ORDER_REFUNDED").await.contains_key("publishedAt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_operator_events_run_through_their_handlers_with_the_operators_claims() {
    let app = demo_shop().await;
    let deps = Deps::new(app.recording_store());

    let (status, product) = run(&deps, http_event("create-product")).await;
    assert_eq!((status, product["productId"].as_u64()), (201, Some(21)), "after the 20 seeded: {product}");
    let (status, again) = run(&deps, http_event("create-product")).await;
    assert_eq!((status, &again), (201, &product), "the recorded key makes a retry the first answer");
    let (status, changed) = run(&deps, http_event("change-product")).await;
    assert_eq!((status, changed["price"].as_str()), (200, Some("1100.00")), "{changed}");
    let (status, restocked) = run(&deps, http_event("restock-product")).await;
    assert_eq!((status, restocked["stock"].as_u64()), (200, Some(1100)), "{restocked}");
    let (status, coupon) = run(&deps, http_event("create-coupon")).await;
    assert_eq!((status, coupon["couponId"].as_u64(), coupon["total"].as_u64()), (201, Some(2), Some(50)), "{coupon}");
    let (status, credited) = run(&deps, http_event("charge-user-balance")).await;
    assert_eq!((status, credited["balance"].as_str()), (200, Some("1000250.00")), "{credited}");
    let (status, again) = run(&deps, http_event("charge-user-balance")).await;
    assert_eq!((status, &again), (200, &credited), "the recorded key replays");
    let (status, restocked) = run(&deps, http_event("restock-product")).await;
    assert_eq!((status, restocked["stock"].as_u64()), (200, Some(1100)), "the recorded key replays: {restocked}");

    // An operator's keyed credit whose writer died before finishing it: the customer's
    // history read finishes it, recording its seq among the operators' keys.
    let abandoned = rushcart::balance::BalanceChange {
        id: rushcart::ids::EntryId::generate(),
        user: rushcart::ids::UserId::new(1).expect("an id"),
        kind: rushcart::balance::EntryKind::Credit,
        amount: rushcart::money::Amount::parse("5.00").expect("an amount"),
        order: None,
        at: time::OffsetDateTime::now_utc() - time::Duration::minutes(5),
        idempotency_key: Some(rushcart::ids::IdempotencyKey::parse("credit-abandoned").expect("a key")),
    };
    app.store.commit_change(&abandoned).await.expect("committed, left pending");
    let (status, history) = run(&Deps::new(app.recording_store()), http_event("balance-history")).await;
    assert_eq!((status, history["items"][0]["type"].as_str()), (200, Some("CREDIT")), "{history}");
    let (status, missing) = run(&deps, http_event("get-any-order")).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "as recorded: {missing}");
    let customers = Deps::new(app.recording_store());
    run(&customers, http_event("issue-coupon")).await;
    let (_, order) = run(&customers, http_event("create-order")).await;
    let id = order["orderId"].as_str().expect("the customer's order");
    let (status, read) = run(&deps, http_event_for("get-any-order", id)).await;
    assert_eq!((status, read["userId"].as_u64(), read["status"].as_str()), (200, Some(1), Some("PENDING_PAYMENT")));

    // A customer's claims on an operator route: refused, nothing written.
    let mut customer = json_event("create-product");
    let claims = customer["requestContext"]["authorizer"]["jwt"]["claims"].as_object_mut().expect("claims");
    assert!(claims.remove("cognito:groups").is_some(), "the recorded operator is in the group");
    let request = lambda_http::request::from_str(&customer.to_string()).expect("the event without the group");
    let (status, refused) = run(&deps, request).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("FORBIDDEN")), "{refused}");
    let unmade = rushcart::ids::ProductId::new(22).expect("an id");
    let lookup = rushcart::catalog::ProductCatalog::product(&app.store, unmade).await;
    assert!(matches!(lookup, Err(rushcart::catalog::CatalogError::UnknownProduct(_))), "no product was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorded_cognito_events_sign_a_user_up_once_and_put_their_id_in_the_tokens() {
    let app = demo_shop().await;
    let clock = SystemClock;

    // Post-confirmation: the next id after the seeded user, an empty balance, the event
    // returned as Cognito expects it. Cognito may call it again: same user.
    let store = app.recording_store();
    let event = json_event("user-signup");
    let sign_up = triggers::sign_up_confirmed(&store, &clock, event.clone());
    let answered = as_function("user-signup", sign_up).await.expect("sign up");
    assert_eq!(answered, event);
    let again = as_function("user-signup", triggers::sign_up_confirmed(&store, &clock, event)).await;
    assert_eq!(again.expect("again"), answered);
    assert_eq!(app.balance(2).await, "0.00", "user 2 exists with an empty balance");

    // Pre-token generation: the user's id as a string claim in both tokens.
    let claims = triggers::token_claims(&store, &clock, "shop_user_id", json_event("token-claims"));
    let answered = as_function("token-claims", claims).await.expect("claims");
    let details = &answered["response"]["claimsAndScopeOverrideDetails"];
    assert_eq!(details["accessTokenGeneration"]["claimsToAddOrOverride"]["shop_user_id"], "2", "{answered}");
    assert_eq!(details["idTokenGeneration"]["claimsToAddOrOverride"]["shop_user_id"], "2");

    // A subject Cognito knows but the shop not yet (made by an administrator) is
    // registered when it first gets a token.
    let mut stranger = json_event("token-claims");
    stranger["request"]["userAttributes"]["sub"] = "0f0e0d0c-admin-made".into();
    let claims = triggers::token_claims(&store, &clock, "shop_user_id", stranger);
    let answered = as_function("token-claims", claims).await.expect("claims");
    assert_eq!(
        answered["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
            ["shop_user_id"],
        "3"
    );

    // Many confirmations of new subjects at once: distinct ids, each with a profile.
    let subjects: Vec<String> = (0..50).map(|i| format!("rush-{i}")).collect();
    let ids = futures::future::join_all(subjects.iter().map(|subject| {
        let mut event = json_event("token-claims");
        event["request"]["userAttributes"]["sub"] = subject.clone().into();
        let store = &store;
        async move {
            let claims = triggers::token_claims(store, &SystemClock, "shop_user_id", event);
            let answered = as_function("token-claims", claims).await.expect("claims");
            answered["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
                ["shop_user_id"]
                .as_str()
                .expect("an id")
                .to_owned()
        }
    }))
    .await;
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 50, "{ids:?}");
}
