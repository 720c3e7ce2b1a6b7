//! Handler tests: recorded API Gateway (HTTP API, payload 2.0) events from `events/`
//! go through `lambda_http`'s own parser into the handlers, on the DynamoDB adapter over
//! an in-process engine. They prove the wiring an API Gateway request takes; the
//! integration tests prove the whole local API.

use lambda_http::{Body, Request, Response};
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::http::balance;
use rushcart::http::respond;
use rushcart::Deps;
use serde_json::Value;

mod support;

fn event(name: &str) -> Request {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn with_body(request: Request, body: &str) -> Request {
    let (parts, _) = request.into_parts();
    Request::from_parts(parts, Body::Text(body.to_owned()))
}

async fn deps(balance: &str) -> Deps<DynamoStore> {
    let store = support::store().await;
    support::add_user(&store, 1, balance).await;
    Deps::new(store)
}

fn json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("JSON body")
}

#[tokio::test]
async fn the_get_balance_event_returns_the_balance_as_a_string() {
    let response = respond(balance::get_balance(event("get-balance"), &deps("1000000.00").await).await);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(json(&response), serde_json::json!({"userId": 1, "balance": "1000000.00"}));
}

#[tokio::test]
async fn the_charge_event_adds_to_the_balance_and_returns_the_entry() {
    let deps = deps("1000000.00").await;
    let response = respond(balance::charge(event("charge-balance"), &deps).await);
    assert_eq!(response.status(), 200);
    let body = json(&response);
    assert_eq!(body["balance"], "1001000.00");
    assert_eq!(body["entry"]["type"], "CHARGE");
    assert_eq!(body["entry"]["amount"], "1000.00");
    assert_eq!(body["entry"]["balanceAfter"], "1001000.00");
    assert_eq!(body["entry"]["seq"], 2);
}

#[tokio::test]
async fn replaying_the_charge_event_with_its_idempotency_key_changes_nothing() {
    let deps = deps("1000000.00").await;
    let first = respond(balance::charge(event("charge-balance"), &deps).await);
    let second = respond(balance::charge(event("charge-balance"), &deps).await);
    assert_eq!(json(&first), json(&second));
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let balance = respond(balance::get_balance(event("get-balance"), &deps).await);
    assert_eq!(json(&balance)["balance"], "1001000.00");
}

#[tokio::test]
async fn the_same_key_with_another_amount_is_refused() {
    let deps = deps("1000000.00").await;
    respond(balance::charge(event("charge-balance"), &deps).await);
    let response = respond(balance::charge(with_body(event("charge-balance"), r#"{"amount":"5.00"}"#), &deps).await);
    assert_eq!(response.status(), 409);
    assert_eq!(json(&response)["code"], "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn the_use_event_deducts_and_refuses_to_go_below_zero() {
    let deps = deps("1500.00").await;
    let response = respond(balance::use_balance(event("use-balance"), &deps).await);
    assert_eq!(response.status(), 200);
    assert_eq!(json(&response)["balance"], "500.00");
    let response = respond(balance::use_balance(event("use-balance"), &deps).await);
    assert_eq!(response.status(), 409);
    assert_eq!(json(&response)["code"], "INSUFFICIENT_BALANCE");
}

#[tokio::test]
async fn the_history_event_pages_newest_first() {
    let deps = deps("1000000.00").await;
    for _ in 0..3 {
        respond(balance::use_balance(event("use-balance"), &deps).await);
    }
    let response = respond(balance::history(event("balance-history"), &deps).await);
    assert_eq!(response.status(), 200);
    let body = json(&response);
    let seqs: Vec<_> = body["items"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [4, 3]);
    assert!(body["nextCursor"].is_string());
}

#[tokio::test]
async fn a_json_number_amount_is_parsed_exactly() {
    let deps = deps("0.30").await;
    let response = respond(balance::use_balance(with_body(event("use-balance"), r#"{"amount": 0.1}"#), &deps).await);
    assert_eq!(json(&response)["balance"], "0.20");
}

#[tokio::test]
async fn a_non_numeric_user_id_in_the_path_is_a_400() {
    let request = event("get-balance");
    let request = lambda_http::RequestExt::with_path_parameters(
        request,
        std::collections::HashMap::from([("userId".to_owned(), "abc".to_owned())]),
    );
    let response = respond(balance::get_balance(request, &deps("1.00").await).await);
    assert_eq!(response.status(), 400);
    assert_eq!(json(&response)["code"], "INVALID_USER_ID");
}
