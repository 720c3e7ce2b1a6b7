//! The proxy in front of a real engine, driven by the AWS SDK: the throttles as the SDK
//! surfaces them, what commits and what does not, and which throttles the SDK retries.
//!
//! The proxy runs on a manual clock that stands still unless a test moves it, so no
//! outcome depends on how fast this machine runs the test.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use rushcart_capacity::{Clock, Config, Handle, Limits, Server};

/// Scale 0.005: a partition takes 5 write units a second, 5.25 at once.
const SCALE: f64 = 0.005;
const TABLE: &str = "orders";

/// An engine, the proxy in front of it, and an SDK client of the proxy.
struct Stack {
    _engine: rushcart_dynamodb::Engine,
    serving: tokio::task::JoinHandle<()>,
    endpoint: String,
    clock: Clock,
    metrics: Handle,
    /// Retries off: each call is one request, and a test sees every throttle.
    client: Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn stack() -> Stack {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let engine = rushcart_dynamodb::Engine::start(loopback, 2).expect("start an engine");
    let clock = Clock::manual();
    let config = Config { limits: Limits { scale: SCALE, table_max: None }, clock: clock.clone() };
    let server = Server::bind(loopback, engine.endpoint(), config).await.expect("bind the proxy");
    let endpoint = format!("http://{}", server.local_addr().expect("the proxy's address"));
    let metrics = server.handle();
    let serving = tokio::spawn(server.serve());
    let client = client(&endpoint, RetryConfig::disabled()).await;
    // The table's key `pk`, and an index on `status` (items without one are not in it).
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("status"))
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().expect("a key"))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byStatus")
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("status")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("a key"),
                )
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("an index"),
        )
        .send()
        .await
        .expect("create the table through the proxy");
    Stack { _engine: engine, serving, endpoint, clock, metrics, client }
}

async fn client(endpoint: &str, retries: RetryConfig) -> Client {
    let base = rushcart_dynamodb::client(endpoint).await;
    Client::from_conf(base.config().to_builder().retry_config(retries).build())
}

fn attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("an attribute definition")
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

impl Stack {
    async fn put(&self, pk: &str, n: u32, status: Option<&str>) -> Result<(), PutItemError> {
        let mut put =
            self.client.put_item().table_name(TABLE).item("pk", s(pk)).item("n", AttributeValue::N(n.to_string()));
        if let Some(status) = status {
            put = put.item("status", s(status));
        }
        put.send().await.map(|_| ()).map_err(|err| err.into_service_error())
    }

    async fn n_of(&self, pk: &str) -> Option<String> {
        let got = self
            .client
            .get_item()
            .table_name(TABLE)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .expect("a read");
        got.item().and_then(|item| item.get("n")).and_then(|n| n.as_n().ok()).cloned()
    }

    async fn arns(&self) -> (String, String) {
        let described = self.client.describe_table().table_name(TABLE).send().await.expect("describe");
        let table = described.table().expect("a table");
        let index = table.global_secondary_indexes().first().and_then(|index| index.index_arn()).expect("an index ARN");
        (table.table_arn().expect("a table ARN").to_owned(), index.to_owned())
    }

    fn throttled_requests(&self) -> u64 {
        self.metrics.metrics()["requests"]["throttled"].as_u64().expect("a count")
    }
}

/// The throttling reasons of a `ProvisionedThroughputExceededException`, as
/// (reason, resource).
fn reasons(err: &PutItemError) -> Vec<(String, String)> {
    let PutItemError::ProvisionedThroughputExceededException(exceeded) = err else {
        panic!("not ProvisionedThroughputExceededException: {err:?}")
    };
    assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"));
    exceeded
        .throttling_reasons()
        .iter()
        .map(|reason| {
            (reason.reason().unwrap_or_default().to_owned(), reason.resource().unwrap_or_default().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_a_hot_keys_limit_are_throttled_and_do_not_commit_while_spread_writes_go_through() {
    let stack = stack().await;
    let (table_arn, _) = stack.arns().await;

    for n in 0..5 {
        stack.put("HOT", n, None).await.expect("within the partition's limit");
    }
    let throttled = stack.put("HOT", 5, None).await.expect_err("past the partition's limit");
    assert_eq!(reasons(&throttled), [("TableWriteKeyRangeThroughputExceeded".to_owned(), table_arn)]);
    assert_eq!(stack.n_of("HOT").await.as_deref(), Some("4"), "the throttled write did not commit");

    // The same number of writes again and more, each on a key of its own: none throttled.
    for key in 0..100 {
        stack.put(&format!("KEY#{key}"), key, None).await.expect("a cold partition");
    }

    // 5 units a second: one more write after 200 ms, and no second one.
    stack.clock.advance(Duration::from_millis(200));
    stack.put("HOT", 6, None).await.expect("refilled by one unit");
    stack.put("HOT", 7, None).await.expect_err("not refilled by two");
    assert_eq!(stack.n_of("HOT").await.as_deref(), Some("6"));

    let metrics = stack.metrics.metrics();
    assert_eq!(metrics["throttledByReason"]["TableWriteKeyRangeThroughputExceeded"], 2);
    assert_eq!(metrics["throttled"][0]["partitionKey"], "S:HOT");
    assert_eq!(metrics["consumedUnits"][TABLE]["write"], 106.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_partition_throttles_on_its_own_and_a_transaction_names_the_throttled_item() {
    let stack = stack().await;
    let (_, index_arn) = stack.arns().await;

    // Five orders, five table partitions, one index partition.
    for key in 0..5 {
        stack.put(&format!("ORDER#{key}"), key, Some("PENDING")).await.expect("within the index partition's limit");
    }
    let throttled = stack.put("ORDER#5", 5, Some("PENDING")).await.expect_err("the index partition is spent");
    assert_eq!(reasons(&throttled), [("IndexWriteKeyRangeThroughputExceeded".to_owned(), index_arn)]);
    assert_eq!(stack.n_of("ORDER#5").await, None);

    let put = |pk: &str, status: Option<&str>| {
        let item = Put::builder().table_name(TABLE).item("pk", s(pk)).item("n", AttributeValue::N("1".into()));
        let item = match status {
            Some(status) => item.item("status", s(status)),
            None => item,
        };
        TransactWriteItem::builder().put(item.build().expect("a put")).build()
    };
    let cancelled = stack
        .client
        .transact_write_items()
        .transact_items(put("COLD#1", None))
        .transact_items(put("COLD#2", Some("PENDING")))
        .send()
        .await
        .expect_err("its second item's index partition is spent")
        .into_service_error();
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = cancelled else {
        panic!("not TransactionCanceledException: {cancelled:?}")
    };
    let codes: Vec<&str> =
        cancelled.cancellation_reasons().iter().map(|reason| reason.code().unwrap_or_default()).collect();
    assert_eq!(codes, ["None", "ThrottlingError"]);
    assert_eq!(stack.n_of("COLD#1").await, None, "a cancelled transaction wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_retries_a_throttled_write_but_not_a_throttled_transaction() {
    let stack = stack().await;
    for n in 0..5 {
        stack.put("HOT", n, None).await.expect("within the partition's limit");
    }
    // rushcart's own policy (standard mode, 3 attempts), with a backoff short enough
    // for a test; the clock stands still, so every attempt is throttled.
    let retries = RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1));
    let retrying = client(&stack.endpoint, retries).await;

    let before = stack.throttled_requests();
    let err = retrying.put_item().table_name(TABLE).item("pk", s("HOT")).send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"));
    assert_eq!(stack.throttled_requests() - before, 3, "three attempts, each throttled");

    let before = stack.throttled_requests();
    let hot = Put::builder().table_name(TABLE).item("pk", s("HOT")).build().expect("a put");
    let err = retrying
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(hot).build())
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("TransactionCanceledException"));
    assert_eq!(stack.throttled_requests() - before, 1, "one attempt: the SDK does not retry a cancelled transaction");
}
