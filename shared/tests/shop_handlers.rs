//! Handler tests for the catalogue and coupon routes: recorded API Gateway events from
//! `events/` through `lambda_http`'s parser into the handlers, on the DynamoDB adapter over an in-process engine.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::catalog::Product;
use rushcart::clock::ManualClock;
use rushcart::coupons::Coupon;
use rushcart::http::respond;
use rushcart::http::{catalog, coupons};
use rushcart::ids::{CouponId, ProductId};
use rushcart::money::Money;
use rushcart::Deps;
use serde_json::Value;
use time::macros::datetime;

mod support;

fn event(name: &str) -> Request {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("JSON body")
}

async fn shop() -> (Deps<DynamoStore>, ManualClock) {
    let shop = support::store().await;
    for id in 1..=3 {
        let product = Product {
            product_id: ProductId::new(id).unwrap(),
            name: format!("Product {id}"),
            price: Money::parse("1000.00").unwrap(),
            stock: 1000,
            buckets: rushcart::shards::default_shards(1000),
        };
        support::add_product(&shop, product).await;
    }
    let coupon = Coupon {
        id: CouponId::new(1).unwrap(),
        name: "Rush".into(),
        discount: Money::parse("1000.00").unwrap(),
        total: 1,
        issued: 0,
        ends_at: datetime!(2026-12-24 00:00 UTC),
        shards: 1,
    };
    support::add_coupon(&shop, coupon).await;
    support::add_user(&shop, 1, "0.00").await;
    let clock = ManualClock::at(datetime!(2026-11-24 10:00 UTC));
    (Deps::with_clock(shop, Arc::new(clock.clone())), clock)
}

#[tokio::test]
async fn the_list_products_event_returns_a_page_and_a_cursor() {
    let (deps, _) = shop().await;
    let response = respond(catalog::list_products(event("list-products"), &deps).await);
    assert_eq!(response.status(), 200);
    let body = json(&response);
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["items"][0],
        serde_json::json!({"productId": 1, "name": "Product 1", "price": "1000.00", "stock": 1000, "buckets": 16})
    );
    assert!(body["nextCursor"].is_string());
}

#[tokio::test]
async fn the_get_product_event_returns_the_product() {
    let (deps, _) = shop().await;
    let response = respond(catalog::get_product(event("get-product"), &deps).await);
    assert_eq!(response.status(), 200);
    assert_eq!(json(&response)["productId"], 1);
}

#[tokio::test]
async fn the_issue_coupon_event_issues_once_then_the_coupon_shows_none_left() {
    let (deps, _) = shop().await;
    let response = respond(coupons::issue_coupon(event("issue-coupon"), &deps).await);
    assert_eq!(response.status(), 201);
    let copy = json(&response);
    assert_eq!((copy["couponId"].as_u64(), copy["userId"].as_u64()), (Some(1), Some(1)));
    assert_eq!(copy["status"], "AVAILABLE");
    assert_eq!(copy["issuedAt"], "2026-11-24T10:00:00.000Z");
    assert_eq!(copy["expiresAt"], "2026-12-24T00:00:00.000Z");

    let again = respond(coupons::issue_coupon(event("issue-coupon"), &deps).await);
    assert_eq!((again.status().as_u16(), json(&again)["code"].clone()), (409, Value::from("COUPON_ALREADY_ISSUED")));

    let coupon = json(&respond(coupons::get_coupon(event("get-coupon"), &deps).await));
    assert_eq!((coupon["issued"].as_u64(), coupon["remaining"].as_u64()), (Some(1), Some(0)));
    assert_eq!(coupon["discount"], "1000.00");
}

#[tokio::test]
async fn the_user_coupons_event_shows_the_status_the_clock_implies() {
    let (deps, clock) = shop().await;
    respond(coupons::issue_coupon(event("issue-coupon"), &deps).await);
    let listed = json(&respond(coupons::user_coupons(event("user-coupons"), &deps).await));
    assert_eq!(listed["items"][0]["status"], "AVAILABLE");
    clock.advance(time::Duration::days(40));
    let listed = json(&respond(coupons::user_coupons(event("user-coupons"), &deps).await));
    assert_eq!(listed["items"][0]["status"], "EXPIRED");
}

#[tokio::test]
async fn an_issue_event_after_the_end_date_is_refused() {
    let (deps, clock) = shop().await;
    clock.advance(time::Duration::days(40));
    let response = respond(coupons::issue_coupon(event("issue-coupon"), &deps).await);
    assert_eq!(response.status(), 409);
    assert_eq!(json(&response)["code"], "COUPON_EXPIRED");
}
