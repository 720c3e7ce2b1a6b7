//! The integration-test harness: every test gets its own tables and its own local API
//! server on a free port, so tests run in parallel without seeing each other's data.
//!
//! # Backends
//!
//! `RUSHCART_TEST_BACKEND` picks where the AWS services come from:
//! - `local` (default): DynamoDB is the test binary's own engine (dynoxide, in this
//!   process on an ephemeral port: `rushcart_dynamodb::shared`); SQS, Kinesis and Redis
//!   are the shared processes `localstack/with-stack.sh` started (`make test` sets this
//!   up). The fault suite pauses the stack's engine process with SIGSTOP, so it uses
//!   [`stack_dynamodb_endpoint`] instead.
//! - `testcontainers`: a LocalStack container started through testcontainers, for
//!   machines with Docker, in a build with the `testcontainers` feature. Where no
//!   Docker engine answers, every test fails with a message that says so; nothing
//!   passes silently.
//!
//! # Under DynamoDB's capacity model
//!
//! With `RUSHCART_TEST_CAPACITY=<scale>` (`make test-races`), every test app's tables
//! sit behind a capacity model of their own at that scale (system clock, no table
//! ceiling), as `CAPACITY=aws` puts one in front of the stack's engine;
//! [`TestApp::throttled`] reads how many requests it throttled, and [`capacity`] says
//! what a test may accept there.

pub mod capacity;
pub mod faults;
pub mod feed;
pub mod invariants;
pub mod logs;
pub mod policy;
pub mod shop;
pub mod soak;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::money::Money;
use rushcart::Deps;
use rushcart_local_api::issuer::LocalIssuer;
use rushcart_testkit::counters::StoreCounters;
use rushcart_testkit::seed::{self, seed_users};

/// The DynamoDB endpoint of the chosen backend: locally, this test binary's own engine.
pub async fn dynamodb_endpoint() -> String {
    match std::env::var("RUSHCART_TEST_BACKEND").as_deref() {
        Ok("testcontainers") => testcontainers_backend::endpoint().await,
        Ok("local") | Err(_) => rushcart_dynamodb::shared().to_owned(),
        Ok(other) => panic!("RUSHCART_TEST_BACKEND={other:?} is not a backend; use `local` or `testcontainers`"),
    }
}

/// The local stack's engine process (`AWS_ENDPOINT_URL_DYNAMODB`, set by `make test`),
/// for the tests that pause it.
pub fn stack_dynamodb_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: the fault suite pauses the local stack's DynamoDB. \
             Run it with `make test` (or localstack/with-stack.sh cargo test)."
        )
    })
}

/// Starts (once per test binary) LocalStack through testcontainers and returns its
/// endpoint; panics with a clear message where no Docker engine answers.
pub async fn testcontainers_endpoint() -> String {
    testcontainers_backend::endpoint().await
}

/// The Redis call budget the tests give the gate and the cache. In production a call
/// gets 250 ms before the caller goes on without Redis; these tests prove what the
/// gate and the cache decide, on a debug build sharing two cores with the emulators,
/// where a burst of a thousand requests can queue a call past 250 ms without Redis
/// being anywhere near down. The tests that take Redis away still see it fail at once
/// (a refused connection does not wait for the budget).
pub const REDIS_BUDGET: Duration = Duration::from_secs(5);

/// The stack's Redis (`REDIS_URL`, set by `make test`).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| panic!("REDIS_URL is not set: run the tests with `make test`"))
}

/// A loopback URL where nothing listens: a Redis that is down.
pub fn dead_redis_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

/// The scale of DynamoDB's capacity model every [`TestApp`] sits behind, from
/// `RUSHCART_TEST_CAPACITY` (`make test-races` sets it; unset or empty: no model). At
/// 0.2 a partition takes 200 write units and 600 read units a second.
pub fn capacity_scale() -> Option<f64> {
    let value = std::env::var("RUSHCART_TEST_CAPACITY").ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match value.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale > 0.0 => Some(scale),
        _ => panic!("RUSHCART_TEST_CAPACITY={value:?} is not a scale: give a positive number such as 0.2"),
    }
}

/// Whether the test apps sit behind the capacity model (`RUSHCART_TEST_CAPACITY`).
pub fn under_capacity() -> bool {
    capacity_scale().is_some()
}

/// A capacity model of a test app's own, in front of the engine (system clock, no
/// table ceiling).
struct Capacity {
    /// Where the model listens: the app's tables are reached through it.
    endpoint: String,
    handle: rushcart_capacity::Handle,
}

impl Capacity {
    async fn start(upstream: &str, scale: f64) -> Capacity {
        use rushcart_capacity::{Clock, Config, Limits, Server};
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let config = Config { limits: Limits { scale, table_max: None }, clock: Clock::system() };
        let server = Server::bind(loopback, upstream, config).await.expect("bind the capacity model");
        let endpoint = format!("http://{}", server.local_addr().expect("the model's address"));
        let handle = server.handle();
        tokio::spawn(server.serve());
        Capacity { endpoint, handle }
    }

    fn metrics_url(&self) -> String {
        format!("{}{}", self.endpoint, rushcart_capacity::METRICS_PATH)
    }
}

/// A DynamoDB client for `endpoint` with the stack's static test credentials.
pub async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    rushcart_dynamodb::client(endpoint).await
}

/// One test's world: a fresh table, a local API serving it with sign-in on (its own
/// local issuer), an HTTP client.
///
/// [`TestApp::get`] and [`TestApp::post`] sign their requests with a token of the app's
/// issuer for the user they name (`/users/{id}/…`, `?userId=`, or the body's `userId`),
/// or for user 1 when they name none (or no valid id), so every request goes through
/// the authorizer as a signed-in customer's would. [`TestApp::get_as`] and
/// [`TestApp::post_as`] send exactly the token they are given, or none.
pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub store: DynamoStore,
    pub issuer: Arc<LocalIssuer>,
    /// The capacity model in front of the app's tables, if any.
    capacity: Option<rushcart_capacity::Handle>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with_clock(Arc::new(rushcart::clock::SystemClock)).await
    }

    /// A test app whose handlers read time from `clock`.
    pub async fn spawn_with_clock(clock: Arc<dyn rushcart::clock::Clock>) -> TestApp {
        TestApp::spawn_with(clock, None).await
    }

    /// A test app with the coupon admission gate `gate` built over its table's name.
    pub async fn spawn_with_gate(gate: impl FnOnce(&str) -> Arc<dyn rushcart::coupons::AdmissionGate>) -> TestApp {
        let (store, _, capacity) = TestApp::fresh_store().await;
        let gate = gate(store.table());
        TestApp::serve(store, Arc::new(rushcart::clock::SystemClock), Some(gate), capacity).await
    }

    pub async fn spawn_with(
        clock: Arc<dyn rushcart::clock::Clock>,
        gate: Option<Arc<dyn rushcart::coupons::AdmissionGate>>,
    ) -> TestApp {
        let (store, _, capacity) = TestApp::fresh_store().await;
        TestApp::serve(store, clock, gate, capacity).await
    }

    /// A test app whose dependencies `configure` adjusts (clock, gate, cache) before
    /// the API starts; it gets the table's name to namespace Redis keys.
    pub async fn spawn_configured(configure: impl FnOnce(&str, &mut Deps<DynamoStore>)) -> TestApp {
        let (store, table, capacity) = TestApp::fresh_store().await;
        let mut deps = Deps::new(store.clone());
        configure(&table, &mut deps);
        TestApp::serve_deps(store, deps, capacity).await
    }

    /// A test app whose DynamoDB client carries `interceptor` (the local API's call
    /// counter, say).
    pub async fn spawn_intercepted(interceptor: impl aws_sdk_dynamodb::config::Intercept + 'static) -> TestApp {
        let (store, table, capacity) = TestApp::fresh_store().await;
        let config = store.client().config().to_builder().interceptor(interceptor).build();
        let counted = store.probe().expect("a fresh store counts").clone();
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table).with_probe(counted);
        TestApp::serve_deps(store.clone(), Deps::new(store), capacity).await
    }

    /// A test app whose functions reach DynamoDB through `proxy` with the functions'
    /// own client settings (timeouts, retries), for the fault tests; `sign_in` off is
    /// `AUTH=off`. [`TestApp::client`] still reaches DynamoDB directly, so seeding and
    /// audits work whatever the proxy is doing. `configure` adjusts the dependencies
    /// (gate, cache …) before the API starts; it gets the table's name.
    pub async fn spawn_through(
        proxy: &faults::FaultProxy,
        sign_in: bool,
        configure: impl FnOnce(&str, &mut Deps<DynamoStore>),
    ) -> TestApp {
        let upstream = proxy.upstream();
        TestApp::spawn_via(&upstream, &proxy.endpoint_for(&upstream), sign_in, configure).await
    }

    /// A test app (sign-in on) whose functions reach DynamoDB through `injector`, which
    /// answers the transactions it is told to with conflicts.
    pub async fn spawn_with_conflicts(injector: &faults::ConflictInjector) -> TestApp {
        TestApp::spawn_via(&injector.upstream(), &injector.endpoint(), true, |_, _| {}).await
    }

    /// Fresh tables on the DynamoDB at `upstream`; the functions reach it at `through`
    /// with their own client settings, the test's client directly.
    async fn spawn_via(
        upstream: &str,
        through: &str,
        sign_in: bool,
        configure: impl FnOnce(&str, &mut Deps<DynamoStore>),
    ) -> TestApp {
        let (store, table) = TestApp::fresh_store_at(upstream).await;
        let endpoint = through;
        // The local engine takes any credentials: a test run needs none in its environment.
        let credentials =
            aws_sdk_dynamodb::config::Credentials::new("rushcartlocal", "rushcartlocal", None, None, "rushcart-tests");
        let config = aws_sdk_dynamodb::config::Builder::from(rushcart::adapters::aws_sdk_config().await)
            .endpoint_url(endpoint)
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(credentials);
        let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config.build()), table.clone())
            .with_probe(store.probe().expect("a fresh store counts").clone());
        let mut deps = Deps::new(proxied);
        if !sign_in {
            deps.identity = rushcart::identity::Identity::TrustClient;
        }
        configure(&table, &mut deps);
        TestApp::serve_checking(store, deps, sign_in, rushcart_local_api::Settings::default(), None).await
    }

    /// A test app whose tables sit behind DynamoDB's capacity model at `scale` (a
    /// partition takes 1,000·`scale` write units a second; the model's own clock), as
    /// `CAPACITY=aws` puts it in front of the stack's engine; `/_local/metrics` shows
    /// the model's counters. The model's handle reads them directly.
    pub async fn spawn_under_capacity(scale: f64) -> (TestApp, rushcart_capacity::Handle) {
        let (store, _, capacity) = TestApp::fresh_store_under(Some(scale)).await;
        let capacity = capacity.expect("a model at that scale");
        let handle = capacity.handle.clone();
        let deps = Deps::new(store.clone());
        let app =
            TestApp::serve_checking(store, deps, true, rushcart_local_api::Settings::default(), Some(capacity)).await;
        (app, handle)
    }

    /// Fresh tables of their own on the backend's DynamoDB, behind a capacity model of
    /// their own when `RUSHCART_TEST_CAPACITY` sets a scale.
    async fn fresh_store() -> (DynamoStore, String, Option<Capacity>) {
        TestApp::fresh_store_under(capacity_scale()).await
    }

    /// Fresh tables, behind a capacity model at `scale` if given.
    async fn fresh_store_under(scale: Option<f64>) -> (DynamoStore, String, Option<Capacity>) {
        let upstream = dynamodb_endpoint().await;
        match scale {
            None => {
                let (store, table) = TestApp::fresh_store_at(&upstream).await;
                (store, table, None)
            }
            Some(scale) => {
                let capacity = Capacity::start(&upstream, scale).await;
                let (store, table) = TestApp::fresh_store_at(&capacity.endpoint).await;
                (store, table, Some(capacity))
            }
        }
    }

    /// Fresh tables of their own on the DynamoDB at `endpoint`.
    async fn fresh_store_at(endpoint: &str) -> (DynamoStore, String) {
        let client = dynamodb_client(endpoint).await;
        let prefix = format!("t{}", ulid::Ulid::generate().to_string().to_lowercase());
        let store = DynamoStore::provisioned(client, &prefix).await.expect("provision the test tables");
        let store = StoreCounters::attach(store);
        let table = store.table().to_owned();
        (store, table)
    }

    async fn serve(
        store: DynamoStore,
        clock: Arc<dyn rushcart::clock::Clock>,
        gate: Option<Arc<dyn rushcart::coupons::AdmissionGate>>,
        capacity: Option<Capacity>,
    ) -> TestApp {
        let mut deps = Deps::with_clock(store.clone(), clock);
        deps.coupon_gate = gate;
        TestApp::serve_deps(store, deps, capacity).await
    }

    /// A test app whose local API cuts clients and functions off after `timeouts`.
    pub async fn spawn_with_timeouts(timeouts: rushcart_local_api::Timeouts) -> TestApp {
        let (store, _, capacity) = TestApp::fresh_store().await;
        TestApp::serve_with(store.clone(), Deps::new(store), timeouts, capacity).await
    }

    async fn serve_deps(store: DynamoStore, deps: Deps<DynamoStore>, capacity: Option<Capacity>) -> TestApp {
        TestApp::serve_with(store, deps, rushcart_local_api::Timeouts::default(), capacity).await
    }

    /// A test app with sign-in off (`AUTH=off`): the client names the user.
    pub async fn spawn_trusting_the_client() -> TestApp {
        let (store, _, capacity) = TestApp::fresh_store().await;
        let mut deps = Deps::new(store.clone());
        deps.identity = rushcart::identity::Identity::TrustClient;
        TestApp::serve_checking(store, deps, false, rushcart_local_api::Settings::default(), capacity).await
    }

    /// A test app whose local API throttles its routes as `throttles` say (the other
    /// apps are not throttled, so their rushes measure the shop).
    pub async fn spawn_throttled(throttles: rushcart_local_api::throttle::Throttles) -> TestApp {
        TestApp::spawn_behind(Some(throttles), None).await
    }

    /// A test app whose local API throttles its routes as `throttles` say, behind the
    /// edge's `flood` rules when given.
    pub async fn spawn_behind(
        throttles: Option<rushcart_local_api::throttle::Throttles>,
        flood: Option<rushcart_local_api::flood::FloodRules>,
    ) -> TestApp {
        let (store, _, capacity) = TestApp::fresh_store().await;
        let deps = Deps::new(store.clone());
        let settings = rushcart_local_api::Settings {
            throttles: throttles.map(Arc::new),
            flood: flood.map(Arc::new),
            ..rushcart_local_api::Settings::default()
        };
        TestApp::serve_checking(store, deps, true, settings, capacity).await
    }

    async fn serve_with(
        store: DynamoStore,
        deps: Deps<DynamoStore>,
        timeouts: rushcart_local_api::Timeouts,
        capacity: Option<Capacity>,
    ) -> TestApp {
        let settings = rushcart_local_api::Settings { timeouts, ..rushcart_local_api::Settings::default() };
        TestApp::serve_checking(store, deps, true, settings, capacity).await
    }

    /// Serves `deps`, with the app's issuer's tokens checked (`sign_in`) or not, and the
    /// rest of the edge as `settings` say (its issuer and Swagger UI are the app's).
    /// Behind a `capacity` model, `/_local/metrics` shows the model's counters too.
    async fn serve_checking(
        store: DynamoStore,
        deps: Deps<DynamoStore>,
        sign_in: bool,
        settings: rushcart_local_api::Settings,
        capacity: Option<Capacity>,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        let issuer = Arc::new(LocalIssuer::generate(format!("{base_url}/_local")).expect("a local issuer"));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let deps = Arc::new(deps);
        let swagger_ui = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rushcart_local_api::docs::DEFAULT_ASSETS),
        );
        let capacity_metrics = settings.capacity_metrics.or_else(|| capacity.as_ref().map(Capacity::metrics_url));
        let settings = rushcart_local_api::Settings {
            issuer: sign_in.then(|| issuer.clone()),
            swagger_ui,
            capacity_metrics,
            ..settings
        };
        tokio::spawn(rushcart_local_api::serve(listener, deps, settings, async {
            let _ = stopped.await;
        }));
        rushcart::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client");
        let capacity = capacity.map(|capacity| capacity.handle);
        TestApp { base_url, http, store, issuer, capacity, shutdown: Some(shutdown) }
    }

    pub fn table(&self) -> &str {
        self.store.table()
    }

    /// The capacity model in front of this app's tables, if any
    /// ([`TestApp::spawn_under_capacity`], `RUSHCART_TEST_CAPACITY`).
    pub fn capacity(&self) -> Option<&rushcart_capacity::Handle> {
        self.capacity.as_ref()
    }

    /// How many requests the app's capacity model has answered with a throttle so far
    /// (0 without a model). The SDK and the functions retry a throttle, so this counts
    /// the throttles absorbed as well as those that became 503s.
    pub fn throttled(&self) -> u64 {
        self.capacity.as_ref().map_or(0, |model| model.metrics()["requests"]["throttled"].as_u64().unwrap_or(0))
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.store.client()
    }

    /// This app's tables through a client that records every call made inside
    /// [`policy::with_calls`], to hold a function's calls to its IAM policy.
    pub fn recording_store(&self) -> DynamoStore {
        let config = self.client().config().to_builder().interceptor(policy::CallRecorder).build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), self.table())
            .with_outbox(self.store.outbox_table())
    }

    /// Seeds users with opening balances, as the admin CLI does.
    pub async fn seed_users(&self, users: &[(u64, &str)]) {
        let users: Vec<(UserId, Money)> =
            users.iter().map(|(id, balance)| (UserId::new(*id).unwrap(), Money::parse(balance).unwrap())).collect();
        seed_users(self.client(), self.table(), &users, time::OffsetDateTime::now_utc(), &|_| {})
            .await
            .expect("seed users");
    }

    /// Seeds products 1..=count with a price and a stock.
    pub async fn seed_products(&self, count: u64, price: &str, stock: u64) {
        let products: Vec<seed::ProductSeed> = (1..=count)
            .map(|id| {
                seed::ProductSeed::new(
                    ProductId::new(id).unwrap(),
                    format!("Product {id}"),
                    Money::parse(price).unwrap(),
                    stock,
                )
            })
            .collect();
        seed::seed_products(self.client(), self.table(), &products).await.expect("seed products");
    }

    /// Seeds one coupon, sharded as an operator's creation would shard it.
    pub async fn seed_coupon(&self, id: u64, total: u64, discount: &str, ends_at: time::OffsetDateTime) {
        self.seed_sharded_coupon(id, total, rushcart::coupons::default_shards(total), discount, ends_at).await;
    }

    /// Seeds one coupon of `shards` shards.
    pub async fn seed_sharded_coupon(
        &self,
        id: u64,
        total: u64,
        shards: u32,
        discount: &str,
        ends_at: time::OffsetDateTime,
    ) {
        let coupon = seed::CouponSeed {
            id: CouponId::new(id).unwrap(),
            name: format!("Coupon {id}"),
            discount: Money::parse(discount).unwrap(),
            total,
            ends_at,
            shards,
        };
        seed::seed_coupons(self.client(), self.table(), &[coupon]).await.expect("seed coupon");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A customer's token for `user`.
    pub fn token(&self, user: u64) -> String {
        self.issuer.mint(UserId::new(user).expect("a user id"), false).expect("a token")
    }

    /// An operator's token (operator `user`).
    pub fn operator_token(&self, user: u64) -> String {
        self.issuer.mint(UserId::new(user).expect("a user id"), true).expect("a token")
    }

    /// GET as the user the path names, or user 1.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_as(path, Some(&self.token(named_user(path, "").unwrap_or(1)))).await
    }

    /// GET with exactly `token` (or none).
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.expect("GET")).await
    }

    /// POST as the user the path or body names, or user 1.
    pub async fn post(&self, path: &str, body: &str, idempotency_key: Option<&str>) -> (u16, serde_json::Value) {
        let token = self.token(named_user(path, body).unwrap_or(1));
        self.post_as(path, body, idempotency_key, Some(&token)).await
    }

    /// POST with exactly `token` (or none).
    pub async fn post_as(
        &self,
        path: &str,
        body: &str,
        idempotency_key: Option<&str>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        self.send_as(reqwest::Method::POST, path, body, idempotency_key, token).await
    }

    /// Any method with a JSON body and exactly `token` (or none).
    /// POST with `Idempotency-Key: key` as the holder of `token`, reading what a
    /// retrying client reads besides the body: `Idempotent-Replayed` and `Retry-After`.
    pub async fn post_keyed(&self, path: &str, body: &str, key: &str, token: &str) -> KeyedAnswer {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_owned())
            .send()
            .await
            .expect("an answer");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (replayed, retry_after) = (header("idempotent-replayed").as_deref() == Some("true"), header("retry-after"));
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        if status == 503 && body["code"] == "SERVICE_UNAVAILABLE" {
            assert!(retry_after.is_some(), "a 503 without Retry-After: {body}");
        }
        KeyedAnswer { status, replayed, retry_after, body }
    }

    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &str,
        idempotency_key: Option<&str>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request =
            self.http.request(method, self.url(path)).header("content-type", "application/json").body(body.to_owned());
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.expect("request")).await
    }

    /// An order's item as it is stored.
    pub async fn order_item(
        &self,
        order: &str,
    ) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.stored(&format!("ORDER#{order}"), "ORDER").await
    }

    /// The main table's item `pk` / `sk` as stored (a strongly consistent read), which
    /// must exist.
    pub async fn stored(
        &self,
        pk: &str,
        sk: &str,
    ) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.client()
            .get_item()
            .table_name(self.table())
            .key("pk", rushcart::adapters::dynamodb::s(pk))
            .key("sk", rushcart::adapters::dynamodb::s(sk))
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|err| panic!("read {pk} / {sk}: {err}"))
            .item
            .unwrap_or_else(|| panic!("{pk} / {sk} exists"))
    }

    /// The balance as the API reports it.
    /// What the store (the test's and the functions') counted of its work.
    pub fn counters(&self) -> &StoreCounters {
        StoreCounters::of(&self.store).expect("a test store counts its work")
    }

    pub async fn balance(&self, user: u64) -> String {
        let (status, body) = self.get(&format!("/api/v1/users/{user}/balance")).await;
        assert_eq!(status, 200, "{body}");
        body["balance"].as_str().expect("balance string").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(model) = &self.capacity {
            let metrics = model.metrics();
            eprintln!(
                "capacity model of {} ({}): {} requests admitted, {} throttled",
                std::thread::current().name().unwrap_or("a test"),
                self.table(),
                metrics["requests"]["admitted"],
                metrics["requests"]["throttled"]
            );
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The user a request names: `/users/{id}/…` in the path, `?userId=`, or the JSON
/// body's `userId` — if it is a valid user id.
fn named_user(path: &str, body: &str) -> Option<u64> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut segments = path.split('/');
    let in_path = segments.by_ref().find(|s| *s == "users").and_then(|_| segments.next()).and_then(|s| s.parse().ok());
    let in_query = query.split('&').find_map(|pair| pair.strip_prefix("userId=")).and_then(|id| id.parse().ok());
    let in_body = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|body| match &body["userId"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    in_path.or(in_query).or(in_body).filter(|id| UserId::new(*id).is_ok())
}

/// A keyed request's answer ([`TestApp::post_keyed`]).
#[derive(Debug)]
pub struct KeyedAnswer {
    pub status: u16,
    /// `Idempotent-Replayed: true`.
    pub replayed: bool,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

/// The status and JSON body of `response`. A function's 503 (`SERVICE_UNAVAILABLE`:
/// nothing changed) must say when to retry: checked here, for every test.
async fn read(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key(reqwest::header::RETRY_AFTER);
    let bytes = response.bytes().await.expect("response body");
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {}", String::from_utf8_lossy(&bytes)));
    if status == 503 && body["code"] == "SERVICE_UNAVAILABLE" {
        assert!(retry_after, "a 503 without Retry-After: {body}");
    }
    (status, body)
}

/// Without the `testcontainers` feature there is no Docker client in the build; say so.
#[cfg(not(feature = "testcontainers"))]
mod testcontainers_backend {
    pub async fn endpoint() -> String {
        panic!(
            "RUSHCART_TEST_BACKEND=testcontainers needs a build with the Docker client: \
             cargo test -p rushcart-tests --features testcontainers (and a running Docker engine)"
        )
    }
}

/// LocalStack through testcontainers, shared by every test of a binary.
#[cfg(feature = "testcontainers")]
mod testcontainers_backend {
    use testcontainers_modules::localstack::LocalStack;
    use testcontainers_modules::testcontainers::runners::AsyncRunner as _;
    use testcontainers_modules::testcontainers::ContainerAsync;
    use tokio::sync::OnceCell;

    static CONTAINER: OnceCell<(ContainerAsync<LocalStack>, String)> = OnceCell::const_new();

    pub async fn endpoint() -> String {
        let (_, endpoint) = CONTAINER
            .get_or_init(|| async {
                let container = LocalStack::default().start().await.unwrap_or_else(|err| {
                    panic!(
                        "RUSHCART_TEST_BACKEND=testcontainers needs a running Docker engine, and starting \
                         LocalStack failed: {err}. On machines without Docker use the default backend (make test)."
                    )
                });
                let host = container.get_host().await.expect("container host");
                let port = container.get_host_port_ipv4(4566).await.expect("LocalStack port");
                (container, format!("http://{host}:{port}"))
            })
            .await;
        endpoint.clone()
    }
}

/// A server process of the test's own, on a loopback port it keeps across restarts, so
/// a test can take a dependency away and bring it back.
pub struct OwnServer {
    port: u16,
    what: &'static str,
    command: Box<dyn Fn(u16) -> std::process::Command + Send + Sync>,
    child: Option<std::process::Child>,
}

impl OwnServer {
    /// Starts `command(port)` on a free port and waits until the port answers.
    pub fn start(
        what: &'static str,
        command: impl Fn(u16) -> std::process::Command + Send + Sync + 'static,
    ) -> OwnServer {
        let url = dead_redis_url();
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        let mut server = OwnServer { port, what, command: Box::new(command), child: None };
        server.restart();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn restart(&mut self) {
        let child = (self.command)(self.port)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} (installed by make test): {e}", self.what));
        self.child = Some(child);
        // Up to 15 s: moto (Python) is slow to start on a busy machine.
        for _ in 0..750 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            // A server that refused its arguments (a certificate, say) is not slow.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|child| child.try_wait()) {
                panic!("{} on {} exited at start: {status}", self.what, self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not start on {}", self.what, self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A redis-server of the test's own (nothing saved to disk), plain or over TLS.
pub struct OwnRedis {
    server: OwnServer,
    scheme: &'static str,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let server = OwnServer::start("redis-server", |port| {
            let mut command = std::process::Command::new("redis-server");
            command.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
            command
        });
        OwnRedis { server, scheme: "redis" }
    }

    /// A redis-server that speaks only TLS (`rediss://`), with the certificate and key
    /// of `certificates`; it asks clients for no certificate of theirs.
    pub fn start_tls(certificates: &tls::TestCertificates) -> OwnRedis {
        let (cert, key, ca) = (certificates.server_cert(), certificates.server_key(), certificates.ca_cert());
        let server = OwnServer::start("redis-server (Debian's build, with TLS)", move |port| {
            let mut command = std::process::Command::new("redis-server");
            command.args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", &port.to_string()]);
            command.arg("--tls-cert-file").arg(&cert).arg("--tls-key-file").arg(&key);
            command.arg("--tls-ca-cert-file").arg(&ca).args(["--tls-auth-clients", "no"]);
            command.args(["--save", "", "--appendonly", "no"]);
            command
        });
        OwnRedis { server, scheme: "rediss" }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.server.port())
    }

    pub fn restart(&mut self) {
        self.server.restart();
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}
