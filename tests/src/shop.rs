//! A small shop every route can be called against, and a snapshot of its data to
//! prove that a refused request changed nothing (the sign-in and HTTP edge tests).

use serde_json::{json, Value};

use crate::TestApp;

/// A shop of users 1 and 2 (1000.00 each), products 1..3 (10.00, stock 100), coupon 1
/// (10 units), and an order of user 2's.
pub async fn shop() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000.00"), (2, "1000.00")]).await;
    app.seed_products(3, "10.00", 100).await;
    app.seed_coupon(1, 10, "5.00", time::OffsetDateTime::now_utc() + time::Duration::days(30)).await;
    let (status, order) =
        app.post("/api/v1/orders", r#"{"userId": 2, "products": [{"productId": 1, "quantity": 1}]}"#, None).await;
    assert_eq!(status, 201, "{order}");
    let order = order["orderId"].as_str().unwrap().to_owned();
    (app, order)
}

/// What the shop's data looks like, read from the table: balances, stock, coupon 1's
/// count, the number of products and coupons, and the order's status.
pub async fn snapshot(app: &TestApp, order: &str) -> Value {
    let balances: Vec<String> = futures::future::join_all([1, 2].map(|user| read_balance(app, user))).await;
    let (_, products) = app.get("/api/v1/products?limit=100").await;
    let stock: Vec<Value> = products["items"].as_array().unwrap().iter().map(|p| p["stock"].clone()).collect();
    let (_, coupon) = app.get("/api/v1/coupons/1").await;
    let (status_2, _) = app.get("/api/v1/coupons/2").await;
    let item = app.order_item(order).await;
    json!({
        "balances": balances,
        "stock": stock,
        "products": products["items"].as_array().unwrap().len(),
        "coupon1": coupon["issued"],
        "coupon2": status_2,
        "order": format!("{:?}", item.get("status")),
    })
}

async fn read_balance(app: &TestApp, user: u64) -> String {
    crate::invariants::read_ledger(app.client(), app.table(), user).await.balance.to_string()
}

/// A concrete request for every route, with a body it would accept.
pub fn request_for(path: &str, function: &str, order: &str) -> (String, String) {
    let path = path
        .replace("{userId}", "1")
        .replace("{productId}", "1")
        .replace("{couponId}", "1")
        .replace("{orderId}", order);
    let body = match function {
        "charge-balance" | "use-balance" | "charge-user-balance" => json!({"amount": "1.00"}),
        "create-order" => json!({"products": [{"productId": 1, "quantity": 1}]}),
        "pay-order" => json!({"orderId": order}),
        "create-product" => json!({"name": "Kettle", "price": "1.00", "stock": 1}),
        "change-product" => json!({"price": "2.00"}),
        "restock-product" => json!({"add": 1}),
        "create-coupon" => json!({"name": "New", "discount": "1.00", "total": 1, "endsAt": "2099-01-01T00:00:00Z"}),
        _ => Value::Null,
    };
    let body = if body.is_null() { String::new() } else { body.to_string() };
    (path, body)
}
