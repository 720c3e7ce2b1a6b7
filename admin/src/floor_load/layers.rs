//! `rushcart-admin floor --layers`: where an unloaded request's time goes, layer by
//! layer, in one process, so that nothing but the layer differs. Each round times, one
//! after another on the same scratch tables and the same warm connections:
//!
//! - `sdk`: the floor, the DynamoDB calls themselves from the SDK (as `--load
//!   get-product` and `--load charge` make them);
//! - `sdk_no_stall_check`: the same calls from a client without the SDK's
//!   stalled-stream protection (a setting under test, not what the functions use);
//! - `adapter` (GET product): rushcart's `DynamoStore::product`, the call plus turning
//!   the item into a product;
//! - `function`: the whole function in-process, as its Lambda runs it: the route's
//!   handler inside the request span, with its JSON log line and its EMF record
//!   formatted (to a sink that drops them) — everything but HTTP.
//!
//! The rest of what k6 sees (HTTP, the local API's gateway layer, the authorizer) is
//! what `make bench` times as the HTTP round trip alone. Prints the p50 and p90 of each
//! layer as JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt as _;
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::catalog::ProductCatalog as _;
use rushcart::http::routes::dispatch;
use rushcart::ids::{ProductId, UserId};

use super::{change_balance, percentile_ms, read_product, seed_products, seed_users, Tables};

/// Rounds of each layer.
const ROUNDS: usize = 500;

/// The timings of one layer.
#[derive(Default)]
struct Timings(Vec<Duration>);

impl Timings {
    /// Times `call`, which must succeed; what it answers is not kept.
    async fn time<T>(&mut self, call: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<()> {
        let started = Instant::now();
        call.await?;
        self.0.push(started.elapsed());
        Ok(())
    }

    fn figures(mut self) -> serde_json::Value {
        self.0.sort();
        let at = |q| percentile_ms(&self.0, q);
        serde_json::json!({ "n": self.0.len(), "p50": at(0.5), "p90": at(0.9) })
    }
}

/// Log lines and EMF records, formatted as the functions format them, then dropped.
struct Dropped;

impl rushcart::metrics::Sink for Dropped {
    fn write(&self, record: &str) {
        std::hint::black_box(record);
    }
}

pub async fn floor_layers(client: &aws_sdk_dynamodb::Client, prefix: &str) -> anyhow::Result<()> {
    rushcart::telemetry::init_writing_to(std::io::sink, false);
    rushcart::metrics::install(Box::new(Dropped));
    // On a worker of the runtime, as `floor --load` and every request of the local API
    // run: from the main thread (`block_on`) each answer would have to cross to it from a
    // worker, which made the SDK calls alone 0.42 ms here against 0.29 ms in `--load`.
    super::on_scratch_tables(client, prefix, |tables| async move {
        tokio::spawn(async move { layers(&tables).await }).await.context("the layers' task")?
    })
    .await
}

/// The seven timings of one run.
#[derive(Default)]
struct Layers {
    sdk: Timings,
    sdk_no_stall_check: Timings,
    adapter: Timings,
    function: Timings,
    charge_sdk: Timings,
    charge_sdk_no_stall_check: Timings,
    charge_function: Timings,
}

async fn layers(tables: &Arc<Tables>) -> anyhow::Result<serde_json::Value> {
    seed_products(tables, &[1], 1000).await?;
    seed_users(tables, 1..=1).await?;
    let unchecked = Tables::on(
        aws_sdk_dynamodb::Client::from_conf(
            tables
                .client
                .config()
                .to_builder()
                .stalled_stream_protection(aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled())
                .build(),
        ),
        tables.main.clone(),
    );
    let mut deps = rushcart::Deps::new(tables.store.clone());
    // The user comes from the path, as under `AUTH=off`: the token's check is the
    // authorizer's, in front of the function (the HTTP side of the split).
    deps.identity = rushcart::identity::Identity::TrustClient;
    // One untimed round warms each client's connection and the functions' first calls.
    round(tables, &unchecked, &deps, &mut Layers::default(), 0).await?;
    let mut layers = Layers::default();
    for turn in 0..ROUNDS {
        round(tables, &unchecked, &deps, &mut layers, turn).await?;
    }
    Ok(serde_json::json!({
        "rounds": ROUNDS,
        "get-product": {
            "sdk": layers.sdk.figures(),
            "sdk_no_stall_check": layers.sdk_no_stall_check.figures(),
            "adapter": layers.adapter.figures(),
            "function": layers.function.figures(),
        },
        "charge": {
            "sdk": layers.charge_sdk.figures(),
            "sdk_no_stall_check": layers.charge_sdk_no_stall_check.figures(),
            "function": layers.charge_function.figures(),
        },
    }))
}

/// Each layer once: GET product's, then the charge's (a credit of 1000.00 to user 1),
/// each kind starting from a different layer every round (`turn`), so no layer always
/// follows the writes or always comes first.
async fn round(
    tables: &Tables,
    unchecked: &Tables,
    deps: &rushcart::Deps<DynamoStore>,
    layers: &mut Layers,
    turn: usize,
) -> anyhow::Result<()> {
    let (product, user) = (ProductId::new(1)?, UserId::new(1)?);
    // Product 1 is seeded with 1,000 units: in the buckets that stock gets.
    let buckets = rushcart::shards::default_shards(1000);
    for step in 0..4 {
        match (turn + step) % 4 {
            0 => layers.sdk.time(read_product(tables, product, buckets)).await?,
            1 => layers.sdk_no_stall_check.time(read_product(unchecked, product, buckets)).await?,
            2 => layers.adapter.time(async { Ok(deps.store.product(product).await?) }).await?,
            _ => {
                let request = answer(deps, "get-product", "GET", "/api/v1/products/1", ("productId", "1"), None);
                layers.function.time(request).await?
            }
        }
    }
    let (path, body) = ("/api/v1/users/1/balance/charge", r#"{"amount":"1000.00"}"#);
    for step in 0..3 {
        match (turn + step) % 3 {
            0 => layers.charge_sdk.time(change_balance(tables, user, true)).await?,
            1 => layers.charge_sdk_no_stall_check.time(change_balance(unchecked, user, true)).await?,
            _ => {
                let request = answer(deps, "charge-balance", "POST", path, ("userId", "1"), Some(body));
                layers.charge_function.time(request).await?
            }
        }
    }
    Ok(())
}

/// One request to the function `name`, handed over in-process as API Gateway hands it
/// to the Lambda (path parameter, request context); an error unless it answers 200.
async fn answer(
    deps: &rushcart::Deps<DynamoStore>,
    name: &str,
    method: &str,
    path: &str,
    (parameter, value): (&str, &str),
    body: Option<&str>,
) -> anyhow::Result<()> {
    let mut request = lambda_http::Request::new(body.map_or(lambda_http::Body::Empty, |b| b.into()));
    *request.method_mut() = method.parse()?;
    *request.uri_mut() = path.parse()?;
    if body.is_some() {
        request.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
    let mut context = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
    context.request_id = Some(ulid::Ulid::generate().to_string());
    let request = request
        .with_path_parameters(std::collections::HashMap::from([(parameter.to_owned(), value.to_owned())]))
        .with_raw_http_path(path)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    let Some(response) = dispatch(name, request, deps).await else { bail!("no function {name}") };
    if response.status() != 200 {
        bail!("{name} answered {}: {:?}", response.status(), response.body());
    }
    Ok(())
}
