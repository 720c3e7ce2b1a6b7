//! The fault suite: while a mixed load runs (balance charges and uses with and without
//! `Idempotency-Key`, a coupon rush through the Redis gate, checkouts — order, pay,
//! sometimes cancel — and top-5 reads), each dependency in turn is paused (SIGSTOP, a
//! partition), cut off and slowed (through a proxy), then restored, and the load goes
//! on; last, DynamoDB stops answering for longer than any bound. What must hold:
//!
//! - every answer is one its operation may give — a success, a business refusal, or a
//!   JSON 503 with `Retry-After` — never a 500, never a hang: within [`BOUND`] at the
//!   client, within [`FUNCTION_BOUND`] by the functions' own latency metric;
//! - afterwards, from the table: every balance is the sum of its ledger; every 2xx
//!   charge or use has exactly one ledger row and a refused one none; a keyed request
//!   retried after 5xx is applied once; stock, payments and refunds add up
//!   (`check_orders`); coupons issued ≤ total and = the copies, none refused as sold
//!   out while some are left, and every user told "issued" holds one; every paid order
//!   reaches the data platform once per `Idempotency-Key`, and every refunded order's
//!   refund too, after the sweeper's pass (posted twice only where the consumer could
//!   not record the first delivery, and counted so);
//! - every fault was felt (DynamoDB's drew 503s, the gate stepped aside, the top 5
//!   fell back, the relay retried), so none of the above holds by accident.
//!
//! Bounded here (in `make test`: 3 s faults — DynamoDB paused 9 s, past the SDK's 8 s —,
//! 64 clients, about 2 minutes in all);
//! `make faults` runs it longer (`FAULT_SECONDS`, `CALM_SECONDS`, `FAULT_WORKERS`;
//! `FAULT_ONLY=dynamodb,moto,redis` picks dependencies) and writes the report
//! (`FAULTS_REPORT`, and the functions' warnings in `FAULTS_LOG`) that tools/faults.py
//! turns into docs/reliability.md.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rushcart::adapters::dynamodb::{s, DynamoStore};
use rushcart::adapters::feed_aws::{AwsPublisher, HttpPlatform};
use rushcart::adapters::redis_budget::RedisBudget;
use rushcart::adapters::redis_connection::DEFAULT_CALL_TIMEOUT;
use rushcart::adapters::redis_gate::RedisGate;
use rushcart::adapters::redis_top::RedisTopCache;
use rushcart::clock::{Clock as _, SystemClock};
use rushcart::feed::{sweep, SWEEP_GRACE};
use rushcart::ids::{CouponId, UserId};
use rushcart_testkit::audit::{check_coupon, check_ledger, check_orders, read_ledger};
use rushcart_testkit::channels::{dead_letters, provision};
use rushcart_testkit::feed::StreamReader;
use rushcart_tests::faults::{metric_count, Fault, FaultProxy, Paused};
use rushcart_tests::feed::{moto_endpoint, Behaviour, Receiver};
use rushcart_tests::invariants::users;
use rushcart_tests::{redis_url, stack_dynamodb_endpoint, TestApp};
use rust_decimal::Decimal;
use serde_json::json;

/// The longest a function may work on a request: its deadline (9 s,
/// `http::REQUEST_DEADLINE`) and a little for writing the answer. Checked from the
/// functions' own `Latency` metric.
const FUNCTION_BOUND: Duration = Duration::from_millis(9_500);

/// The longest a client may wait for an answer: the functions' bound and time to reach
/// them and back on a loaded two-core machine (the clients, the API and the emulators
/// share it).
const BOUND: Duration = Duration::from_secs(11);

/// How long DynamoDB stays unresponsive in the phase that outlasts every bound.
const PAST_THE_BOUND: Duration = Duration::from_secs(13);

/// Users 1..=BALANCE_USERS take the charges and uses; the first POOR_USERS of them
/// start with nothing, so some of their uses are refused (409 INSUFFICIENT_BALANCE).
const BALANCE_USERS: u64 = 20;
const POOR_USERS: u64 = 4;
/// Checkout worker `n` acts as user CHECKOUT_USERS + n.
const CHECKOUT_USERS: u64 = 1000;
/// Coupon rush users are COUPON_USERS.., each request the next (round the pool).
const COUPON_USERS: u64 = 100_000;
const COUPON_POOL: u64 = 4000;
const COUPON: u64 = 1;
const COUPON_TOTAL: u64 = 2500;
const PRODUCTS: u64 = 5;
const STOCK: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dependency {
    DynamoDb,
    Moto,
    Redis,
}

impl Dependency {
    fn name(self) -> &'static str {
        match self {
            Dependency::DynamoDb => "DynamoDB (dynoxide)",
            Dependency::Moto => "moto (SQS, Kinesis)",
            Dependency::Redis => "Redis",
        }
    }

    /// The stack's name for its process.
    fn process(self) -> &'static str {
        match self {
            Dependency::DynamoDb => "dynamodb",
            Dependency::Moto => "moto",
            Dependency::Redis => "redis",
        }
    }

    /// How much a slowed dependency adds to each answer: past Redis's call budget
    /// (250 ms), so the gate and the cache step aside; a noticeable but survivable
    /// delay for the others.
    fn slowness(self) -> Duration {
        match self {
            Dependency::DynamoDb => Duration::from_millis(250),
            Dependency::Moto => Duration::from_millis(500),
            Dependency::Redis => Duration::from_millis(400),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pause,
    Cut,
    Slow,
    /// Answers held longer than any bound: a dependency that never answers in time.
    Unresponsive,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pause => "paused (SIGSTOP)",
            Kind::Cut => "cut off",
            Kind::Slow => "slowed",
            Kind::Unresponsive => "unresponsive past the bound",
        }
    }
}

/// A stretch of the run: calm, or one fault on one dependency.
#[derive(Debug, Clone)]
struct Phase {
    name: String,
    fault: Option<(Dependency, Kind)>,
    from: Instant,
    to: Instant,
}

/// What one HTTP request got.
#[derive(Debug, Clone)]
struct Answer {
    op: &'static str,
    at: Instant,
    took: Duration,
    /// 0: no answer at all (transport error or the client's own timeout).
    status: u16,
    code: String,
}

/// A balance change as the client last knew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// A 2xx: exactly one ledger row.
    Done,
    /// A business refusal: no row.
    Refused,
    /// A 5xx not retried, or retries spent: at most one row.
    Unknown,
}

#[derive(Default)]
struct Record {
    answers: Vec<Answer>,
    /// (user, kind, amount) → what the client knows.
    changes: HashMap<(u64, &'static str, Decimal), Known>,
    paid: HashSet<String>,
    refunded: HashSet<String>,
    /// Users told their coupon was issued (201, or 409 ALREADY_ISSUED after a 5xx).
    issued: HashSet<u64>,
    /// Users told "already issued" at the first try (nothing sent before).
    told_already_issued: HashSet<u64>,
    /// Whether any client was told the coupon is sold out.
    told_sold_out: bool,
}

struct Settings {
    fault: Duration,
    calm: Duration,
    workers: usize,
    report: Option<std::path::PathBuf>,
    /// The dependencies to fail (`FAULT_ONLY`: a comma-separated list of dynamodb,
    /// moto, redis; all by default).
    only: Vec<Dependency>,
}

impl Settings {
    fn from_env() -> Settings {
        let seconds = |name: &str, default: u64| {
            Duration::from_secs(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
        };
        Settings {
            fault: seconds("FAULT_SECONDS", 3),
            calm: seconds("CALM_SECONDS", 3),
            workers: std::env::var("FAULT_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
            report: std::env::var_os("FAULTS_REPORT").map(Into::into),
            only: [Dependency::DynamoDb, Dependency::Moto, Dependency::Redis]
                .into_iter()
                .filter(|d| std::env::var("FAULT_ONLY").map_or(true, |only| only.split(',').any(|o| o == d.process())))
                .collect(),
        }
    }
}

/// The load's client side: the app, its HTTP client, and what every request got.
struct Load {
    app: TestApp,
    record: Mutex<Record>,
    amounts: AtomicU64,
    coupon_users: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    /// Sends one request; `None` for the body when there was no answer.
    async fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        key: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.app.http.request(method, self.app.url(path)).timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let at = Instant::now();
        let sent = request.send().await;
        let (status, body, retry_after) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body = response.json::<serde_json::Value>().await.unwrap_or(serde_json::Value::Null);
                (status, body, retry_after)
            }
            Err(err) => (0, json!({"code": format!("NO_ANSWER: {err}")}), false),
        };
        let took = at.elapsed();
        let mut code = body["code"].as_str().unwrap_or_default().to_owned();
        if status == 503 && !retry_after {
            code.push_str(" (no Retry-After)");
        }
        self.record.lock().unwrap().answers.push(Answer { op, at, took, status, code });
        (status, body)
    }

    /// Sends until the answer is not a 5xx (the same key each time), at most `tries`.
    async fn send_retrying(
        &self,
        op: &'static str,
        path: &str,
        body: serde_json::Value,
        key: &str,
        tries: u32,
    ) -> (u16, serde_json::Value) {
        let mut last = (0, serde_json::Value::Null);
        for _ in 0..tries {
            last = self.send(op, reqwest::Method::POST, path, Some(body.clone()), Some(key)).await;
            if !(last.0 >= 500 || last.0 == 0) || self.stop.load(Ordering::Relaxed) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        last
    }

    /// A unique amount (each charge or use can be told apart in the ledger).
    fn amount(&self) -> Decimal {
        Decimal::new(100 + self.amounts.fetch_add(1, Ordering::Relaxed) as i64, 2)
    }

    async fn balance_change(&self, keyed: bool) {
        let user = fastrand::u64(1..=BALANCE_USERS);
        let (kind, route) = if fastrand::bool() { ("CHARGE", "charge") } else { ("USE", "use") };
        let amount = self.amount();
        let path = format!("/api/v1/users/{user}/balance/{route}");
        let body = json!({ "amount": amount.to_string() });
        let (status, _) = if keyed {
            let key = format!("{kind}-{amount}");
            self.send_retrying("balance (keyed)", &path, body, &key, 30).await
        } else {
            self.send("balance", reqwest::Method::POST, &path, Some(body), None).await
        };
        let known = match status {
            200..=299 => Known::Done,
            400..=499 => Known::Refused,
            _ => Known::Unknown,
        };
        self.record.lock().unwrap().changes.insert((user, kind, amount), known);
    }

    async fn checkout(&self, user: u64, round: u64) {
        let products: Vec<_> = (1..=fastrand::u64(1..=3))
            .map(|_| json!({"productId": fastrand::u64(1..=PRODUCTS), "quantity": fastrand::u64(1..=3)}))
            .collect();
        let order = json!({"userId": user, "products": products});
        let (status, created) =
            self.send_retrying("create order", "/api/v1/orders", order, &format!("order-{user}-{round}"), 30).await;
        if status != 201 {
            return;
        }
        let Some(order) = created["orderId"].as_str().map(str::to_owned) else { return };
        let pay = json!({"userId": user, "orderId": order});
        let (status, _) = self.send_retrying("pay", "/api/v1/payment", pay, &format!("pay-{user}-{round}"), 30).await;
        if status != 200 {
            return;
        }
        self.record.lock().unwrap().paid.insert(order.clone());
        if round.is_multiple_of(3) {
            let path = format!("/api/v1/orders/{order}/cancel?userId={user}");
            let (status, _) =
                self.send_retrying("cancel", &path, json!({}), &format!("cancel-{user}-{round}"), 30).await;
            if status == 200 {
                self.record.lock().unwrap().refunded.insert(order);
            }
        }
    }

    async fn coupon_rush(&self) {
        let user = COUPON_USERS + self.coupon_users.fetch_add(1, Ordering::Relaxed) % COUPON_POOL;
        let path = format!("/api/v1/coupons/{COUPON}?userId={user}");
        let mut retried = false;
        for _ in 0..30 {
            let (status, body) = self.send("issue coupon", reqwest::Method::POST, &path, None, None).await;
            let retry = {
                let mut record = self.record.lock().unwrap();
                match (status, body["code"].as_str()) {
                    (201, _) => {
                        record.issued.insert(user);
                        return;
                    }
                    // After a 5xx, "already issued" means the earlier try went through.
                    (409, Some("COUPON_ALREADY_ISSUED")) if retried => {
                        record.issued.insert(user);
                        return;
                    }
                    (409, Some("COUPON_ALREADY_ISSUED")) => {
                        record.told_already_issued.insert(user);
                        return;
                    }
                    (409, Some("COUPON_SOLD_OUT")) => {
                        record.told_sold_out = true;
                        false
                    }
                    (status, _) => status >= 500 || status == 0,
                }
            };
            if !retry {
                // A shopper looks at the answer a moment before trying again (without
                // it, a few clients of a sold-out coupon take the machine from the rest).
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
            retried = true;
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A shopper's read of the top 5, then a moment's look at it (without the pause, a
    /// few readers of a cached answer take the machine from everyone else).
    async fn top(&self) {
        self.send("top 5", reqwest::Method::GET, "/api/v1/products/top", None, None).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Worker `n`'s loop until told to stop.
    async fn work(self: Arc<Self>, n: usize) {
        let mut round = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            match n % 8 {
                0 | 1 => self.balance_change(true).await,
                2 | 3 => self.balance_change(false).await,
                4 | 5 => self.checkout(CHECKOUT_USERS + n as u64, round).await,
                6 => self.coupon_rush().await,
                _ => self.top().await,
            }
        }
    }
}

/// The feed queue's visibility timeout, which is also how long a message the consumer
/// failed stays invisible (as Lambda leaves it): MAX_RECEIVES of them (75 s) outlast
/// DynamoDB's faults back to back (pause 9 s, cut, slow and unresponsive 13 s, with
/// calm between: about 40 s in `make test`), during which every delivery claim fails,
/// so only a poison message would reach the dead-letter queue.
const VISIBILITY: Duration = Duration::from_secs(15);

/// The feed as `make run` runs it (the local API's relay, sweeper and consumer tasks),
/// against the stack through the proxies, delivering to a receiver of the test's own.
struct Feed {
    receiver: Receiver,
    /// moto's SQS straight, not through the proxy.
    direct: aws_sdk_sqs::Client,
    publisher: Arc<AwsPublisher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Feed {
    async fn start(app: &TestApp, store: DynamoStore, dynamodb: &FaultProxy, moto: &FaultProxy) -> Feed {
        let moto_url = moto_endpoint();
        let direct = rushcart_tests::feed::sqs_client(&moto_url).await;
        let direct_kinesis = rushcart_tests::feed::kinesis_client(&moto_url).await;
        let prefix = app.table().trim_end_matches("-main").to_owned();
        let channels = provision(&direct, &direct_kinesis, &prefix, VISIBILITY.as_secs() as u32)
            .await
            .expect("provision the feed");
        let config = rushcart::adapters::aws_sdk_config().await;
        let through = moto.endpoint_for(&moto_url);
        let sqs =
            aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(config).endpoint_url(&through).build());
        let kinesis = aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::config::Builder::from(config).endpoint_url(&through).build(),
        );
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(config)
                .endpoint_url(dynamodb.endpoint_for(&dynamodb.upstream()))
                .build(),
        );
        let receiver = Receiver::start(Behaviour::Accept).await;
        let publisher = Arc::new(AwsPublisher { sqs, kinesis, channels });
        let reader =
            StreamReader::new(app.client(), streams, app.store.outbox_table()).await.expect("the outbox stream");
        let loops = rushcart_local_api::feed::Feed {
            publisher: publisher.clone(),
            reader,
            platform: HttpPlatform::new(&receiver.url).expect("the platform's client"),
            retry_after: VISIBILITY,
        };
        let tasks = rushcart_local_api::feed::run(Arc::new(rushcart::Deps::new(store)), loops);
        Feed { receiver, direct, publisher, tasks }
    }

    /// Waits (at most `within`) until the platform has every order of `paid` and the
    /// refund of every order of `refunded`, running the sweeper over whatever is left
    /// unpublished as if its grace period were over.
    async fn drain(&self, store: &DynamoStore, paid: &HashSet<String>, refunded: &HashSet<String>, within: Duration) {
        let started = Instant::now();
        while started.elapsed() < within {
            let later = SystemClock.now() + SWEEP_GRACE;
            let _ = sweep(self.publisher.as_ref(), store, later, SWEEP_GRACE).await;
            let (got_paid, got_refunded) = (self.receiver.paid(), self.receiver.refunded());
            if paid.iter().all(|o| got_paid.contains_key(o)) && refunded.iter().all(|o| got_refunded.contains_key(o)) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Every order in the table by status.
async fn orders_by_status(app: &TestApp) -> HashMap<String, String> {
    let mut orders = HashMap::new();
    let mut start = None;
    loop {
        let page = app
            .client()
            .scan()
            .table_name(app.table())
            .limit(rushcart_testkit::audit::SCAN_PAGE)
            .filter_expression("sk = :order")
            .expression_attribute_values(":order", s("ORDER"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the orders");
        for item in page.items() {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            orders.insert(text("orderId"), text("status"));
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return orders;
        }
    }
}

/// The invariants, from the table; each violation as a line.
async fn check(app: &TestApp, record: &Record, feed: &Feed, unrecorded: u64) -> Vec<(String, Vec<String>)> {
    let mut checks = Vec::new();

    let mut violations = Vec::new();
    for user in 1..=BALANCE_USERS {
        let ledger = read_ledger(app.client(), app.table(), UserId::new(user).unwrap()).await.expect("a ledger");
        if let Err(violation) = check_ledger(UserId::new(user).unwrap(), &ledger) {
            violations.push(format!("user {user}: {violation:#}"));
        }
        let mut rows: HashMap<(&str, Decimal), u32> = HashMap::new();
        // The first entry is the seed's opening charge (none for those seeded with nothing).
        let opening = if user <= POOR_USERS { 0 } else { 1 };
        for entry in ledger.entries.values().skip(opening) {
            *rows.entry((entry.kind.as_str(), entry.amount)).or_default() += 1;
        }
        for ((owner, kind, amount), known) in &record.changes {
            if *owner != user {
                continue;
            }
            let found = rows.remove(&(*kind, *amount)).unwrap_or(0);
            let fine = match known {
                Known::Done => found == 1,
                Known::Refused => found == 0,
                Known::Unknown => found <= 1,
            };
            if !fine {
                violations.push(format!("user {user}: {kind} {amount} answered {known:?}, {found} ledger rows"));
            }
        }
        for ((kind, amount), found) in rows {
            violations.push(format!("user {user}: {found} {kind} rows of {amount} no request made"));
        }
    }
    checks.push((
        "balance = sum of its ledger; each 2xx change once, each refused none, keyed retries once".into(),
        violations,
    ));

    let mut violations = Vec::new();
    if let Err(violation) = check_orders(app.client(), app.table()).await {
        violations.push(format!("{violation:#}"));
    }
    let orders = orders_by_status(app).await;
    for order in &record.paid {
        let status = orders.get(order).map(String::as_str).unwrap_or("missing");
        if status != "PAID" && status != "REFUNDED" {
            violations.push(format!("order {order} was answered paid but is {status}"));
        }
    }
    for order in &record.refunded {
        let status = orders.get(order).map(String::as_str).unwrap_or("missing");
        if status != "REFUNDED" {
            violations.push(format!("order {order} was answered refunded but is {status}"));
        }
    }
    checks.push((
        "stock + sold − refunded = initial; every answered payment and refund is there, once".into(),
        violations,
    ));

    let mut violations = Vec::new();
    match check_coupon(app.client(), app.table(), CouponId::new(COUPON).unwrap()).await {
        Ok(audit) if audit.issued > COUPON_TOTAL => {
            violations.push(format!("{} issued of {COUPON_TOTAL}", audit.issued))
        }
        // Nobody may be told "sold out" while copies are left.
        Ok(audit) if record.told_sold_out && audit.issued < COUPON_TOTAL => {
            violations.push(format!("clients were told sold out with {} of {COUPON_TOTAL} issued", audit.issued))
        }
        Ok(_) => {}
        Err(violation) => violations.push(format!("{violation:#}")),
    }
    for user in record.issued.iter().chain(&record.told_already_issued) {
        let copy = app
            .client()
            .get_item()
            .table_name(app.table())
            .key("pk", s(format!("USER#{user}")))
            .key("sk", s(rushcart::adapters::dynamodb::keys::coupon_copy_sk(CouponId::new(COUPON).unwrap())))
            .consistent_read(true)
            .send()
            .await
            .expect("read a copy");
        if copy.item.is_none() {
            violations.push(format!("user {user} was told the coupon is theirs and holds no copy"));
        }
    }
    checks.push((
        "coupons issued ≤ total = the copies, none refused while left; every user told so holds one".into(),
        violations,
    ));

    // The platform gets each event at least once, and dedups by its Idempotency-Key.
    // The consumer posts an event a second time only where it could not record the first
    // delivery (its claim's lease ran out before DynamoDB came back), and counts each
    // such delivery: more repeats than those is a consumer posting what it had recorded.
    let mut violations = Vec::new();
    let mut repeated = Vec::new();
    let (got_paid, got_refunded) = (feed.receiver.paid(), feed.receiver.refunded());
    for (order, status) in &orders {
        let paid_times = got_paid.get(order).copied().unwrap_or(0);
        let refunded_times = got_refunded.get(order).copied().unwrap_or(0);
        let (want_paid, want_refunded) = match status.as_str() {
            "PAID" => (1, 0),
            "REFUNDED" => (1, 1),
            _ => (0, 0),
        };
        let (paid_seen, refunded_seen) = (paid_times.min(1), refunded_times.min(1));
        if paid_seen != want_paid || refunded_seen != want_refunded {
            violations.push(format!(
                "order {order} ({status}) reached the platform paid ×{paid_times}, refunded ×{refunded_times}"
            ));
        } else if paid_times > want_paid || refunded_times > want_refunded {
            let extra = (paid_times - want_paid) + (refunded_times - want_refunded);
            repeated.push((order.clone(), extra));
        }
    }
    let extra: u64 = repeated.iter().map(|(_, extra)| *extra as u64).sum();
    if extra > unrecorded {
        violations.push(format!(
            "{extra} repeated deliveries, but only {unrecorded} deliveries went unrecorded: {repeated:?}"
        ));
    }
    for order in got_paid.keys().chain(got_refunded.keys()) {
        if !orders.contains_key(order) {
            violations.push(format!("the platform got order {order}, which does not exist"));
        }
    }
    checks.push((
        "each paid order and each refund reaches the platform, once per Idempotency-Key (a repeat only where its \
         delivery went unrecorded)"
            .into(),
        violations,
    ));
    checks
}

/// The phase an answer belongs to: the fault it was in flight during, if any (a
/// request sent just before a pause is answered after it, and the pause is why it
/// waited); otherwise the calm stretch it was sent in.
fn phase_of(phases: &[Phase], answer: &Answer) -> Option<usize> {
    let ended = answer.at + answer.took;
    phases
        .iter()
        .position(|p| p.fault.is_some() && answer.at < p.to && ended > p.from)
        .or_else(|| phases.iter().position(|p| answer.at >= p.from && answer.at < p.to))
}

/// Whether `answer` is one its operation may give: a success, the business refusals
/// the load can meet (a use beyond the balance; a coupon sold out, already held, or
/// over the user's budget), or a JSON 503 with `Retry-After`.
fn allowed(answer: &Answer) -> bool {
    matches!(
        (answer.status, answer.op, answer.code.as_str()),
        (200..=299, ..)
            | (503, _, "SERVICE_UNAVAILABLE")
            | (409, "balance" | "balance (keyed)", "INSUFFICIENT_BALANCE")
            | (409, "issue coupon", "COUPON_SOLD_OUT" | "COUPON_ALREADY_ISSUED")
            | (429, "issue coupon", "TOO_MANY_REQUESTS")
    )
}

/// Every answer out of bounds (of any phase, the very first ones included).
fn out_of_bounds(answers: &[Answer]) -> Vec<String> {
    let mut violations: Vec<String> = answers
        .iter()
        .filter(|a| !allowed(a) || a.took > BOUND)
        .map(|a| format!("{} answered {} {} after {:?}", a.op, a.status, a.code, a.took))
        .collect();
    violations.truncate(50);
    violations
}

/// The answers of each phase, for the report.
fn summarise(phases: &[Phase], answers: &[Answer]) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    let placed: Vec<Option<usize>> = answers.iter().map(|a| phase_of(phases, a)).collect();
    for (index, phase) in phases.iter().enumerate() {
        let of_phase: Vec<&Answer> =
            answers.iter().zip(&placed).filter(|(_, p)| **p == Some(index)).map(|(a, _)| a).collect();
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_op: BTreeMap<&str, (BTreeMap<String, u64>, Vec<Duration>)> = BTreeMap::new();
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        let mut took: Vec<Duration> = of_phase.iter().map(|a| a.took).collect();
        took.sort();
        for answer in &of_phase {
            *statuses.entry(answer.status.to_string()).or_default() += 1;
            let (op_statuses, op_took) = by_op.entry(answer.op).or_default();
            *op_statuses.entry(answer.status.to_string()).or_default() += 1;
            op_took.push(answer.took);
            if answer.status >= 400 || answer.status == 0 {
                *codes.entry(format!("{} {}", answer.status, answer.code)).or_default() += 1;
            }
        }
        let ms = |d: Option<&Duration>| d.map_or(0.0, |d| (d.as_secs_f64() * 10_000.0).round() / 10.0);
        let p99 = |took: &[Duration]| took.get((took.len() * 99 / 100).min(took.len().saturating_sub(1))).copied();
        let by_op: BTreeMap<&str, serde_json::Value> = by_op
            .into_iter()
            .map(|(op, (statuses, mut took))| {
                took.sort();
                let row = json!({"statuses": statuses, "p99Ms": ms(p99(&took).as_ref()), "slowestMs": ms(took.last())});
                (op, row)
            })
            .collect();
        rows.push(json!({
            "phase": phase.name,
            "dependency": phase.fault.map(|(d, _)| d.name()),
            "fault": phase.fault.map(|(_, k)| k.name()),
            "seconds": (phase.to - phase.from).as_secs_f64(),
            "requests": of_phase.len(),
            "statuses": statuses,
            "byOperation": by_op,
            "codes": codes,
            "p99Ms": ms(p99(&took).as_ref()),
            "slowestMs": ms(took.last()),
        }));
    }
    rows
}

/// Faults that left no mark, so the suite cannot have proved anything about them: a
/// DynamoDB pause, cut or outage with no 503 at all; Redis faults without the gate
/// stepping aside or the top 5 falling back; moto faults without the relay retrying.
fn faults_felt(rows: &[serde_json::Value], metrics: &serde_json::Value) -> Vec<String> {
    let mut unfelt = Vec::new();
    for row in rows {
        let (Some(dependency), Some(fault)) = (row["dependency"].as_str(), row["fault"].as_str()) else { continue };
        let unavailable = row["statuses"]["503"].as_u64().unwrap_or(0);
        if dependency == Dependency::DynamoDb.name() && fault != Kind::Slow.name() && unavailable == 0 {
            unfelt.push(format!("{}: not one 503", row["phase"]));
        }
    }
    for (name, dimension, what) in [
        ("CouponGate", "Bypassed", "the coupon gate never stepped aside"),
        ("TopCache", "Fallback", "the top 5 never fell back to DynamoDB"),
        ("FeedEvents", "Retried", "the relay never had to retry"),
    ] {
        if metric_count(metrics, name, dimension) == 0 {
            unfelt.push(what.to_owned());
        }
    }
    unfelt
}

/// The slowest answer any function gave, by its own `Latency` metric.
fn slowest_function(metrics: &serde_json::Value) -> Duration {
    let slowest = metrics["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["name"] == "Latency")
        .filter_map(|m| m["max"].as_f64())
        .fold(0.0, f64::max);
    Duration::from_secs_f64(slowest / 1000.0)
}

/// How long the functions' SDK lets one DynamoDB call take in all, retries included.
async fn sdk_operation_timeout() -> Duration {
    let config = rushcart::adapters::aws_sdk_config().await;
    config.timeout_config().and_then(|t| t.operation_timeout()).expect("the functions' SDK bounds an operation")
}

/// A stretch of `length` with no fault.
async fn calm(name: String, phases: &mut Vec<Phase>, length: Duration) {
    let from = Instant::now();
    tokio::time::sleep(length).await;
    phases.push(Phase { name, fault: None, from, to: Instant::now() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dependency_fails_mid_rush_and_every_answer_is_quick_and_nothing_is_lost() {
    let settings = Settings::from_env();
    // The functions' warnings and errors (FAULTS_LOG), JSON with their request spans.
    if let Some(path) = std::env::var_os("FAULTS_LOG") {
        let file = std::fs::File::create(path).expect("create the log");
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_max_level(tracing::Level::WARN)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    }
    let dynamodb = FaultProxy::in_front_of(&stack_dynamodb_endpoint()).await;
    let moto = FaultProxy::in_front_of(&moto_endpoint()).await;
    let redis = FaultProxy::in_front_of(&redis_url()).await;
    let redis_through = redis.endpoint_for(&redis_url());
    let namespace = format!("faults-{}", ulid::Ulid::generate());
    let gate = Arc::new(RedisGate::with_call_timeout(&redis_through, &namespace, DEFAULT_CALL_TIMEOUT).unwrap());
    let cache = Arc::new(
        RedisTopCache::with_call_timeout(&redis_through, &namespace, Duration::from_secs(60), DEFAULT_CALL_TIMEOUT)
            .unwrap(),
    );
    let budget = Arc::new(RedisBudget::new(&redis_through, &namespace, 5, DEFAULT_CALL_TIMEOUT).unwrap());
    assert!(gate.ready(Duration::from_secs(5)).await && cache.ready(Duration::from_secs(5)).await);
    assert!(budget.ready(Duration::from_secs(5)).await);
    let mut functions_store = None;
    let app = TestApp::spawn_through(&dynamodb, false, |_, deps| {
        deps.coupon_gate = Some(gate);
        deps.top_cache = Some(cache);
        deps.issue_budget = Some(budget);
        functions_store = Some(deps.store.clone());
    })
    .await;
    let functions_store = functions_store.expect("the functions' store");
    let balance_users: Vec<(u64, &str)> =
        (1..=BALANCE_USERS).map(|u| (u, if u <= POOR_USERS { "0.00" } else { "1000000.00" })).collect();
    app.seed_users(&balance_users).await;
    app.seed_users(&users(CHECKOUT_USERS..=CHECKOUT_USERS + settings.workers as u64 - 1, "1000000.00")).await;
    app.seed_users(&users(COUPON_USERS..=COUPON_USERS + COUPON_POOL - 1, "0.00")).await;
    app.seed_products(PRODUCTS, "10.00", STOCK).await;
    app.seed_coupon(COUPON, COUPON_TOTAL, "5.00", time::OffsetDateTime::now_utc() + time::Duration::days(1)).await;
    let feed = Feed::start(&app, functions_store.clone(), &dynamodb, &moto).await;

    let load = Arc::new(Load {
        app,
        record: Mutex::default(),
        amounts: AtomicU64::new(0),
        coupon_users: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..settings.workers).map(|n| tokio::spawn(load.clone().work(n))).collect();

    let proxy_of = |dependency: Dependency| match dependency {
        Dependency::DynamoDb => &dynamodb,
        Dependency::Moto => &moto,
        Dependency::Redis => &redis,
    };
    let mut phases = Vec::new();
    calm("warm-up (no fault)".into(), &mut phases, settings.calm).await;
    calm("calm, before".into(), &mut phases, settings.calm).await;
    for &dependency in &settings.only {
        let kinds: &[Kind] = if dependency == Dependency::DynamoDb {
            &[Kind::Pause, Kind::Cut, Kind::Slow, Kind::Unresponsive]
        } else {
            &[Kind::Pause, Kind::Cut, Kind::Slow]
        };
        for &kind in kinds {
            let from = Instant::now();
            match kind {
                Kind::Pause => {
                    let length = match dependency {
                        // A call the pause catches is retried by the SDK once the engine
                        // is back, and the engine drains its backlog at once: a pause
                        // shorter than the SDK's whole-operation timeout can pass
                        // without one request failing. So DynamoDB stays paused past it.
                        Dependency::DynamoDb => {
                            settings.fault.max(sdk_operation_timeout().await + Duration::from_secs(1))
                        }
                        _ => settings.fault,
                    };
                    let _paused = Paused::pause(dependency.process());
                    tokio::time::sleep(length).await;
                }
                Kind::Cut | Kind::Slow | Kind::Unresponsive => {
                    let proxy = proxy_of(dependency);
                    let (fault, length) = match kind {
                        Kind::Cut => (Fault::Cut, settings.fault),
                        Kind::Slow => (Fault::Slow(dependency.slowness()), settings.fault),
                        _ => (Fault::HoldAnswers, PAST_THE_BOUND),
                    };
                    proxy.set(fault);
                    tokio::time::sleep(length).await;
                    proxy.set(Fault::None);
                }
            }
            let name = format!("{} {}", dependency.name(), kind.name());
            phases.push(Phase { name: name.clone(), fault: Some((dependency, kind)), from, to: Instant::now() });
            calm(format!("after {name}"), &mut phases, settings.calm).await;
        }
    }
    load.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker");
    }
    let ended = Instant::now();
    if let Some(last) = phases.last_mut() {
        last.to = ended;
    }

    let record = std::mem::take(&mut *load.record.lock().unwrap());
    let orders = orders_by_status(&load.app).await;
    let paid: HashSet<String> =
        orders.iter().filter(|(_, s)| *s == "PAID" || *s == "REFUNDED").map(|(o, _)| o.clone()).collect();
    let refunded: HashSet<String> = orders.iter().filter(|(_, s)| *s == "REFUNDED").map(|(o, _)| o.clone()).collect();
    feed.drain(&functions_store, &paid, &refunded, Duration::from_secs(120)).await;
    let drained = ended.elapsed();
    let dead_lettered = dead_letters(&feed.direct, &feed.publisher.channels.dead_letter_queue_url)
        .await
        .expect("read the dead-letter queue");

    let metrics = load.app.http.get(load.app.url("/_local/metrics")).send().await.expect("/_local/metrics");
    let metrics: serde_json::Value = metrics.json().await.expect("the metrics");
    let unrecorded = metric_count(&metrics, "FeedEvents", "DeliveredUnrecorded");
    let checks = check(&load.app, &record, &feed, unrecorded).await;
    let rows = summarise(&phases, &record.answers);
    let answer_violations = out_of_bounds(&record.answers);
    let felt = faults_felt(&rows, &metrics);
    let function_latency = slowest_function(&metrics);
    let total = record.answers.len();
    let slowness: Vec<_> = [Dependency::DynamoDb, Dependency::Moto, Dependency::Redis]
        .map(|d| json!({"dependency": d.name(), "ms": d.slowness().as_millis() as u64}))
        .to_vec();
    let report = json!({
        "settings": {
            "faultSeconds": settings.fault.as_secs(),
            "calmSeconds": settings.calm.as_secs(),
            "workers": settings.workers,
            "boundMs": BOUND.as_millis() as u64,
            "pastTheBoundSeconds": PAST_THE_BOUND.as_secs(),
            "slowness": slowness,
        },
        "requests": total,
        "phases": rows,
        "answers": {"held": answer_violations.is_empty(), "violations": answer_violations},
        "faultsFelt": {"held": felt.is_empty(), "violations": felt},
        "functionsSlowestMs": function_latency.as_millis() as u64,
        "functionBoundMs": FUNCTION_BOUND.as_millis() as u64,
        "invariants": checks.iter().map(|(name, v)| json!({"name": name, "held": v.is_empty(), "violations": v})).collect::<Vec<_>>(),
        "orders": {"paid": paid.len(), "refunded": refunded.len(), "deliveredWithinMs": drained.as_millis() as u64},
        "deadLettered": dead_lettered.len(),
        "coupons": {"told": record.issued.len()},
    });
    if let Some(path) = &settings.report {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).expect("write the report");
    }
    println!("{}", serde_json::to_string_pretty(&report["phases"]).unwrap());
    assert!(total > 1000, "too little load to prove anything: {total} requests");
    assert!(!paid.is_empty() && !refunded.is_empty() && !record.issued.is_empty(), "{report}");
    assert!(!record.paid.is_empty() && !record.refunded.is_empty(), "clients were told of no payment or refund");
    assert!(record.changes.values().any(|known| *known == Known::Refused), "no use was refused: check nothing");
    assert!(report["answers"]["held"] == true, "answers out of bounds: {:#}", report["answers"]);
    assert!(report["faultsFelt"]["held"] == true, "faults the load did not feel: {:#}", report["faultsFelt"]);
    assert!(function_latency <= FUNCTION_BOUND, "a function took {function_latency:?}");
    for (name, violations) in &checks {
        assert!(violations.is_empty(), "{name}: {violations:#?}");
    }
}
