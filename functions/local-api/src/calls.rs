//! Counts the DynamoDB calls each route makes, for the load report: `make bench` reads
//! `GET /_local/dynamodb-calls` before and after a scenario to learn how many calls of
//! each operation one request costs, and compares our latency with the emulator's own
//! round trip for that many calls.
//!
//! An SDK interceptor sees every attempt (a retried call counts each time, as it costs
//! each time) and reads the operation from the `X-Amz-Target` header (a transaction
//! as `TransactWriteItems/<items>`, its cost growing with its size). It charges the
//! attempt to the request whose task made it, through a task-local set around the
//! handler; calls outside a request (the feed, the scheduled refresh) are not counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde::Serialize;

type Counts = BTreeMap<String, u64>;

tokio::task_local! {
    static REQUEST_CALLS: Arc<Mutex<Counts>>;
}

/// Per route: requests served and DynamoDB calls made by operation.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RouteCalls {
    pub requests: u64,
    pub calls: Counts,
}

static ROUTES: Mutex<BTreeMap<&'static str, RouteCalls>> = Mutex::new(BTreeMap::new());

/// The interceptor to put on the local API's DynamoDB client.
#[derive(Debug)]
pub struct CallCounter;

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "rushcart-call-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = context.request().headers().get("x-amz-target").unwrap_or("unknown");
        let mut operation = operation.rsplit('.').next().unwrap_or(operation).to_owned();
        // A transaction's cost grows with its items: count them by size.
        if operation == "TransactWriteItems" {
            let items = context
                .request()
                .body()
                .bytes()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .and_then(|body| body["TransactItems"].as_array().map(Vec::len));
            if let Some(items) = items {
                operation = format!("TransactWriteItems/{items}");
            }
        }
        let _ = REQUEST_CALLS.try_with(|counts| {
            if let Ok(mut counts) = counts.lock() {
                *counts.entry(operation).or_default() += 1;
            }
        });
        Ok(())
    }
}

/// Runs one request of `function`, charging the DynamoDB calls it makes to it.
pub async fn counted<T>(function: &'static str, request: impl std::future::Future<Output = T>) -> T {
    let counts = Arc::new(Mutex::new(Counts::new()));
    let output = REQUEST_CALLS.scope(counts.clone(), request).await;
    let made = counts.lock().map(|c| c.clone()).unwrap_or_default();
    if let Ok(mut routes) = ROUTES.lock() {
        let route = routes.entry(function).or_default();
        route.requests += 1;
        for (operation, n) in made {
            *route.calls.entry(operation).or_default() += n;
        }
    }
    output
}

/// Every route's totals since the process started.
pub fn snapshot() -> BTreeMap<&'static str, RouteCalls> {
    ROUTES.lock().map(|routes| routes.clone()).unwrap_or_default()
}
