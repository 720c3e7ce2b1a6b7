//! Every customer route's handler, fed its recorded API Gateway event: as recorded (user
//! 1's verified claims) it acts for user 1; with no claims it answers 401 as API Gateway's
//! authorizer would; with another customer's claims it refuses (403 for a named user,
//! 404 for an order that is not theirs) and changes nothing. On the DynamoDB adapter over an in-process engine.

use lambda_http::{Body, Request, Response};
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::balance::BalanceReader;
use rushcart::catalog::Product;
use rushcart::coupons::Coupon;
use rushcart::http::{balance, coupons, orders, respond};
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::money::Money;
use rushcart::Deps;
use serde_json::Value;
use time::macros::datetime;

mod support;

const CUSTOMER_ROUTES: [&str; 9] = [
    "get-balance",
    "charge-balance",
    "use-balance",
    "balance-history",
    "issue-coupon",
    "user-coupons",
    "create-order",
    "get-order",
    "pay-order",
];

/// The order id the recorded events name.
const RECORDED_ORDER: &str = "01JDQ3Z6Y0000000000000XYZ1";

/// The recorded event of `function` about `order`, its claims changed by `claims`.
fn event_about(function: &str, order: &str, claims: impl FnOnce(&mut Value)) -> Request {
    let path = format!("{}/../events/{function}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap().replace(RECORDED_ORDER, order);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    claims(&mut event["requestContext"]["authorizer"]);
    lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn event(function: &str, claims: impl FnOnce(&mut Value)) -> Request {
    event_about(function, RECORDED_ORDER, claims)
}

async fn handle(function: &str, request: Request, deps: &Deps<DynamoStore>) -> Response<Body> {
    respond(match function {
        "get-balance" => balance::get_balance(request, deps).await,
        "charge-balance" => balance::charge(request, deps).await,
        "use-balance" => balance::use_balance(request, deps).await,
        "balance-history" => balance::history(request, deps).await,
        "issue-coupon" => coupons::issue_coupon(request, deps).await,
        "user-coupons" => coupons::user_coupons(request, deps).await,
        "create-order" => orders::create_order(request, deps).await,
        "get-order" => orders::get_order(request, deps).await,
        "pay-order" => orders::pay(request, deps).await,
        other => panic!("{other} is not a customer route"),
    })
}

/// Users 1 and 2 with 1,000,000.00; products 1..3; coupon 1.
async fn shop() -> Deps<DynamoStore> {
    let store = support::store().await;
    for user in [1, 2] {
        support::add_user(&store, user, "1000000.00").await;
    }
    for id in 1..=3 {
        let price = Money::parse("1000.00").unwrap();
        let product =
            Product { product_id: ProductId::new(id).unwrap(), name: format!("P{id}"), price, stock: 10, buckets: 1 };
        support::add_product(&store, product).await;
    }
    let discount = Money::parse("1000.00").unwrap();
    let ends_at = datetime!(2099-01-01 00:00 UTC);
    let coupon =
        Coupon { id: CouponId::new(1).unwrap(), name: "C".into(), discount, total: 10, issued: 0, ends_at, shards: 1 };
    support::add_coupon(&store, coupon).await;
    Deps::new(store)
}

async fn balances(deps: &Deps<DynamoStore>) -> Vec<Money> {
    let mut all = Vec::new();
    for user in [1, 2] {
        all.push(deps.store.balance(UserId::new(user).unwrap()).await.unwrap());
    }
    all
}

#[tokio::test]
async fn without_verified_claims_every_customer_route_is_401() {
    let deps = shop().await;
    for function in CUSTOMER_ROUTES {
        let response = handle(function, event(function, |authorizer| *authorizer = Value::Null), &deps).await;
        assert_eq!(response.status(), 401, "{function}");
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body, serde_json::json!({"message": "Unauthorized"}), "{function}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    }
    assert_eq!(balances(&deps).await, [Money::parse("1000000.00").unwrap(); 2]);
}

#[tokio::test]
async fn another_customers_claims_are_refused_and_change_nothing() {
    let deps = shop().await;
    // User 1's order (with the coupon the recorded order uses), which the order events
    // are made to name.
    assert_eq!(handle("issue-coupon", event("issue-coupon", |_| {}), &deps).await.status(), 201);
    let created = handle("create-order", event("create-order", |_| {}), &deps).await;
    let created: Value = serde_json::from_slice(created.body().as_ref()).unwrap();
    let order = created["orderId"].as_str().expect("user 1 made an order").to_owned();
    let before = balances(&deps).await;
    for function in CUSTOMER_ROUTES {
        let as_user_2 = |authorizer: &mut Value| authorizer["jwt"]["claims"]["shop_user_id"] = "2".into();
        let response = handle(function, event_about(function, &order, as_user_2), &deps).await;
        // Every recorded event names user 1 (the payment in its body), except the read
        // of an order, which is not found for anyone but its owner.
        let expected = if function == "get-order" { 404 } else { 403 };
        assert_eq!(response.status(), expected, "{function}: {:?}", response.body());
    }
    assert_eq!(balances(&deps).await, before);
    let owned = handle("get-order", event_about("get-order", &order, |_| {}), &deps).await;
    assert_eq!(owned.status(), 200, "the owner reads it");
    assert!(
        support::copy(&deps.store, UserId::new(2).unwrap(), CouponId::new(1).unwrap()).await.is_none(),
        "no coupon for user 2"
    );
}

#[tokio::test]
async fn as_recorded_each_route_acts_for_the_tokens_user() {
    let deps = shop().await;
    for function in [
        "get-balance",
        "charge-balance",
        "use-balance",
        "balance-history",
        "issue-coupon",
        "user-coupons",
        "create-order",
    ] {
        let response = handle(function, event(function, |_| {}), &deps).await;
        assert!(response.status().is_success(), "{function}: {} {:?}", response.status(), response.body());
    }
    assert!(support::copy(&deps.store, UserId::new(1).unwrap(), CouponId::new(1).unwrap()).await.is_some());
}
