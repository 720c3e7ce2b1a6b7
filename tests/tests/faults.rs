//! Faults: a dependency that is down gives the client a clear, opaque error and the
//! log the whole cause; nothing panics and nothing changes.

use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::http::{balance, respond_to};
use rushcart::Deps;
use rushcart_tests::dynamodb_client;
use rushcart_tests::logs::Captured;

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A handler's result answered as its function answers the recorded event `name`.
fn answered(name: &str, handled: rushcart::http::Handled) -> lambda_http::Response<lambda_http::Body> {
    respond_to(rushcart::http::gateway_request_id(&event(name)).as_deref(), handled)
}

/// A loopback port with nothing listening.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn an_unreachable_dynamodb_gives_an_opaque_503_and_logs_the_cause() {
    let logs = Captured::default();
    let subscriber = logs.subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let responses = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let endpoint = dead_endpoint();
            let deps = Deps::new(DynamoStore::new(dynamodb_client(&endpoint).await, "rushcart-main"));
            vec![
                answered("charge-balance", balance::charge(event("charge-balance"), &deps).await),
                answered("use-balance", balance::use_balance(event("use-balance"), &deps).await),
                answered("get-balance", balance::get_balance(event("get-balance"), &deps).await),
                answered("balance-history", balance::history(event("balance-history"), &deps).await),
            ]
        })
    });

    for response in responses {
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1", "a 503 says when to retry");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
        assert!(body["requestId"].as_str().is_some_and(|id| id.starts_with("c6af9ac6")), "quotable: {body}");
        let text = body.to_string();
        for leak in ["127.0.0.1", "dispatch", "DynamoDB", "rushcart-main", "USER#"] {
            assert!(!text.contains(leak), "the client sees {leak:?}: {text}");
        }
    }
    let logs = logs.text();
    assert!(logs.contains("dependency unavailable"), "{logs}");
    assert!(logs.contains("commit CHARGE of 1000.00 for user 1"), "the log names what failed: {logs}");
    assert!(logs.to_lowercase().contains("connect"), "the log keeps the network cause: {logs}");
}
