//! A product's stock in buckets (issue 28), through the local API over HTTP: the
//! operator sets them, a rush buys exactly the stock, a line no bucket holds alone is
//! split, `OUT_OF_STOCK` only when the buckets together cannot cover a line, restocks
//! level the buckets and refunds put stock back; the stock invariant (over the buckets'
//! sum) is audited from the database after each.

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
        let item = app
            .client()
            .get_item()
            .table_name(app.table())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("PRODUCT#{id}#{k}")))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("STOCK".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("read a bucket")
            .item
            .unwrap_or_else(|| panic!("product {id} has no bucket {k}"));
        levels.push(item["stock"].as_n().unwrap().parse().unwrap());
    }
    levels
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
