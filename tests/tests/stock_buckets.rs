//! A product's stock in buckets (issue 28), through the local API over HTTP: the
//! operator sets them, a rush buys exactly the stock, a line no bucket holds alone is
//! split, `OUT_OF_STOCK` only when the buckets together cannot cover a line, restocks
//! level the buckets and refunds put stock back; the stock invariant (over the buckets'
//! sum) is audited from the database after each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use rushcart_testkit::audit::{check_orders, OrdersAudit};
use rushcart_tests::invariants::users;
use rushcart_tests::TestApp;
use serde_json::{json, Value};

async fn audit(app: &TestApp) -> OrdersAudit {
    check_orders(app.client(), app.table())
        .await
        .unwrap_or_else(|violation| panic!("invariant violated: {violation:#}"))
}

/// A product made by an operator with `stock` and `buckets` (the default when `None`);
/// its id.
async fn make_product(app: &TestApp, stock: u64, buckets: Option<u64>) -> u64 {
    let mut body = json!({"name": "Hot item", "price": "10.00", "stock": stock});
    if let Some(buckets) = buckets {
        body["buckets"] = buckets.into();
    }
    let op = app.operator_token(900);
    let (status, product) = app.post_as("/api/v1/admin/products", &body.to_string(), None, Some(&op)).await;
    assert_eq!(status, 201, "{product}");
    product["productId"].as_u64().unwrap()
}

async fn product(app: &TestApp, id: u64) -> Value {
    let (status, product) = app.get(&format!("/api/v1/products/{id}")).await;
    assert_eq!(status, 200, "{product}");
    product
}

/// The stock of each of the product's `n` buckets, read from the table.
async fn levels(app: &TestApp, id: u64, n: u32) -> Vec<u64> {
    let mut levels = Vec::new();
    for k in 0..n {
        let bucket = app.stored(&format!("PRODUCT#{id}#{k}"), "STOCK").await;
        levels.push(bucket["stock"].as_n().unwrap().parse().unwrap());
    }
    levels
}

/// Sets the product's buckets to `levels` in the table, behind the API's back, as
/// another process's payments and refunds would.
async fn set_levels(app: &TestApp, id: u64, levels: &[u64]) {
    for (k, level) in levels.iter().enumerate() {
        app.client()
            .update_item()
            .table_name(app.table())
            .key("pk", AttributeValue::S(format!("PRODUCT#{id}#{k}")))
            .key("sk", AttributeValue::S("STOCK".into()))
            .update_expression("SET stock = :level")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":level", AttributeValue::N(level.to_string()))
            .send()
            .await
            .expect("set a bucket");
    }
}

/// The DynamoDB calls the app's client sends, by operation (every attempt counts).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Calls {
    /// The calls counted since the last take.
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "stock-bucket-test-calls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}

async fn order(app: &TestApp, user: u64, product: u64, quantity: u64) -> String {
    let body = json!({"userId": user, "products": [{"productId": product, "quantity": quantity}]});
    let (status, order) = app.post("/api/v1/orders", &body.to_string(), None).await;
    assert_eq!(status, 201, "{order}");
    order["orderId"].as_str().unwrap().to_owned()
}

async fn pay(app: &TestApp, user: u64, order: &str) -> (u16, Value) {
    app.post("/api/v1/payment", &json!({"userId": user, "orderId": order}).to_string(), None).await
}

#[tokio::test]
async fn an_operator_sets_the_buckets_or_gets_them_from_the_stock_and_a_product_shows_their_sum() {
    let app = TestApp::spawn().await;
    let op = app.operator_token(900);
    let default = make_product(&app, 1_000, None).await;
    let (small, four, empty) = (
        make_product(&app, 999, None).await,
        make_product(&app, 10, Some(4)).await,
        make_product(&app, 0, Some(64)).await,
    );
    for (id, stock, buckets) in [(default, 1_000, 16), (small, 999, 1), (four, 10, 4), (empty, 0, 64)] {
        let shown = product(&app, id).await;
        assert_eq!((shown["stock"].as_u64(), shown["buckets"].as_u64()), (Some(stock), Some(buckets)), "{shown}");
    }
    assert_eq!(levels(&app, four, 4).await, [3, 3, 2, 2], "shares as even as they go");
    let (_, listed) = app.get("/api/v1/products?limit=10").await;
    let stocks: Vec<u64> = listed["items"].as_array().unwrap().iter().map(|p| p["stock"].as_u64().unwrap()).collect();
    assert_eq!(stocks, [1_000, 999, 10, 0], "a page sums every product's buckets");

    for bad in [json!(0), json!(65), json!(null), json!("4"), json!(2.5)] {
        let body = json!({"name": "Refused", "price": "1.00", "stock": 10, "buckets": bad}).to_string();
        let (status, answer) = app.post_as("/api/v1/admin/products", &body, None, Some(&op)).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("INVALID_QUANTITY")), "{bad}: {answer}");
    }
    assert_eq!(app.get(&format!("/api/v1/products/{}", empty + 1)).await.0, 404, "refused creations made nothing");
    audit(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_users_racing_for_a_product_in_eight_buckets_buy_exactly_its_stock() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=300, "1000.00")).await;
    let id = make_product(&app, 200, Some(8)).await;
    // Lines of 1 to 3: once buckets run low, a line often needs more than one.
    let quantity = |user: u64| user % 3 + 1;
    let orders = join_all((1..=300).map(|user| order(&app, user, id, quantity(user)))).await;

    let answers = join_all((1..=300).zip(&orders).map(|(user, order)| pay(&app, user, order))).await;

    let mut sold = 0;
    let mut refused = Vec::new();
    for (user, (status, body)) in (1..=300).zip(&answers) {
        match (*status, body["code"].as_str()) {
            (200, _) => sold += quantity(user),
            (409, Some("OUT_OF_STOCK")) => refused.push(quantity(user)),
            _ => panic!("user {user}: {status} {body}"),
        }
    }
    let left = product(&app, id).await["stock"].as_u64().unwrap();
    assert_eq!(sold + left, 200, "sold exactly from the stock");
    assert_eq!(levels(&app, id, 8).await.iter().sum::<u64>(), left);
    // Stock only went down: a line refused then cannot be covered by what is left now.
    assert!(!refused.is_empty() && refused.iter().all(|q| left < *q), "left {left}, refused lines {refused:?}");
    let audit = audit(&app).await;
    assert_eq!((audit.paid, audit.failed_payments), (300 - refused.len(), refused.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_process_reads_the_buckets_once_for_a_rush_and_spreads_its_payers_over_them_with_none_refused() {
    let calls = Calls::default();
    let app = TestApp::spawn_intercepted(calls.clone()).await;
    app.seed_users(&users(1..=100, "1000.00")).await;
    // 1,000 in 16 buckets of 62 or 63: six lines of 10 each, and the last lines split.
    let id = make_product(&app, 1000, None).await;
    let orders = join_all((1..=100).map(|user| order(&app, user, id, 10))).await;
    calls.take();

    let answers = join_all((1..=100).zip(&orders).map(|(user, order)| pay(&app, user, order))).await;

    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let made = calls.take();
    // Each payment: one read of its order and payer, one transaction; the first
    // payers' one read of the buckets, shared by the rest.
    assert_eq!(
        (made.get("TransactWriteItems"), made.get("BatchGetItem")),
        (Some(&100), Some(&101)),
        "no transaction refused, one read of the buckets: {made:?}"
    );
    assert_eq!(levels(&app, id, 16).await, [0; 16]);
    assert_eq!(audit(&app).await.paid, 100);
}

#[tokio::test]
async fn a_payment_from_a_stale_view_of_the_buckets_is_refused_reads_them_again_and_is_paid() {
    let calls = Calls::default();
    let app = TestApp::spawn_intercepted(calls.clone()).await;
    app.seed_users(&users(1..=1, "1000.00")).await;
    let id = make_product(&app, 40, Some(4)).await;
    let paying = order(&app, 1, id, 25).await;
    assert_eq!(product(&app, id).await["stock"], 40, "the API has seen buckets of 10");
    // Meanwhile other processes leave all 40 in the last bucket (the sum, and so the
    // audit, unchanged).
    set_levels(&app, id, &[0, 0, 0, 40]).await;
    calls.take();

    let (status, paid) = pay(&app, 1, &paying).await;

    assert_eq!(status, 200, "{paid}");
    let made = calls.take();
    assert_eq!(made.get("TransactWriteItems"), Some(&2), "refused from the buckets as seen, then paid: {made:?}");
    assert_eq!(levels(&app, id, 4).await, [0, 0, 0, 15]);
    audit(&app).await;
}

#[tokio::test]
async fn a_line_no_bucket_holds_alone_is_split_and_out_of_stock_only_when_together_they_fall_short() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=3, "1000.00")).await;
    let id = make_product(&app, 40, Some(4)).await;
    assert_eq!(levels(&app, id, 4).await, [10; 4]);

    let (status, paid) = pay(&app, 1, &order(&app, 1, id, 25).await).await;
    assert_eq!(status, 200, "25 from buckets of 10: {paid}");
    let after = levels(&app, id, 4).await;
    assert_eq!((after.iter().sum::<u64>(), after.iter().filter(|l| **l == 0).count()), (15, 2), "{after:?}");

    let too_many = order(&app, 2, id, 16).await;
    let (status, refused) = pay(&app, 2, &too_many).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("OUT_OF_STOCK")), "{refused}");
    assert_eq!(levels(&app, id, 4).await, after, "a refused payment takes nothing");

    let (status, paid) = pay(&app, 3, &order(&app, 3, id, 15).await).await;
    assert_eq!(status, 200, "every unit left: {paid}");
    assert_eq!(product(&app, id).await["stock"], 0);
    audit(&app).await;
}

#[tokio::test]
async fn a_restock_levels_the_buckets_a_refund_puts_stock_back_and_a_keyed_restock_answers_once() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=1, "1000.00")).await;
    let op = app.operator_token(900);
    let id = make_product(&app, 40, Some(4)).await;
    let paid = order(&app, 1, id, 25).await;
    assert_eq!(pay(&app, 1, &paid).await.0, 200);

    let path = format!("/api/v1/admin/products/{id}/stock");
    let (status, restocked) = app.post_as(&path, r#"{"add": 25}"#, None, Some(&op)).await;
    assert_eq!((status, restocked["stock"].as_u64()), (200, Some(40)), "{restocked}");
    assert_eq!(levels(&app, id, 4).await, [10; 4], "filled from the emptiest");

    let cancel = format!("/api/v1/orders/{paid}/cancel");
    let (status, refunded) = app.post(&cancel, "{}", None).await;
    assert_eq!((status, refunded["status"].as_str()), (200, Some("REFUNDED")), "{refunded}");
    let after = levels(&app, id, 4).await;
    assert_eq!(after.iter().sum::<u64>(), 65, "the refund's 25 back, in one bucket: {after:?}");
    assert_eq!(after.iter().filter(|l| **l == 35).count(), 1, "{after:?}");

    let answers = join_all((0..20).map(|_| app.post_keyed(&path, r#"{"add": 7}"#, "restock-1", &op))).await;
    assert!(answers.iter().all(|a| a.status == 200 && a.body["stock"] == 72), "{answers:?}");
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1, "one restock, the others replay it");
    assert_eq!(product(&app, id).await["stock"], 72);
    audit(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restocks_during_a_payment_rush_on_buckets_keep_the_stock_exact() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=100, "1000.00")).await;
    let id = make_product(&app, 100, Some(8)).await;
    let orders = join_all((1..=100).map(|user| order(&app, user, id, 2))).await;
    let op = app.operator_token(900);
    let path = format!("/api/v1/admin/products/{id}/stock");
    let pays = (1..=100).zip(&orders).map(|(user, order)| pay(&app, user, order));
    let restocks = (0..10).map(|i| {
        let (app, op, path) = (&app, &op, &path);
        async move { app.post_as(path, r#"{"add": 10}"#, Some(&format!("restock-{i}")), Some(op)).await.0 }
    });

    let (paid, restocked) = futures::join!(join_all(pays), join_all(restocks));

    assert!(restocked.iter().all(|status| *status == 200), "{restocked:?}");
    assert!(paid.iter().all(|(status, body)| *status == 200 || body["code"] == "OUT_OF_STOCK"), "{paid:?}");
    let sold = 2 * paid.iter().filter(|(status, _)| *status == 200).count() as u64;
    let left = product(&app, id).await["stock"].as_u64().unwrap();
    assert_eq!(left + sold, 100 + 100, "stock + sold = initial + restocked");
    let audit = audit(&app).await;
    assert_eq!(audit.paid as u64 * 2, sold);
}
