//! `rushcart-soak` (`make soak`; issue 29): a seeded random-nemesis soak.
//!
//! Inside a local stack of its own (`localstack/with-stack.sh`: the engine, moto,
//! redis-server), it starts the local API and the feed as processes of their own, each
//! dependency behind a fault proxy, and runs a mixed load for `SOAK_SECONDS` (default
//! 600): keyed and unkeyed charges and uses, checkouts with cancels and refunds, coupon
//! rushes through the Redis gate, top-5 reads, operator restocks and price changes, and
//! sign-ups through the post-confirmation trigger's handler. A nemesis seeded by
//! `SOAK_SEED` (printed, so that a run can be replayed) picks a fault every 20–60 s
//! (`SOAK_CALM=20-60`): it pauses, cuts or slows a dependency, kills the API or the feed
//! with SIGKILL and starts it again, or answers transactions with `TransactionConflict`.
//! With `SOAK_CAPACITY=aws` (`CAPACITY=aws make soak`) the engine sits behind DynamoDB's
//! capacity model at `CAPACITY_SCALE` (default 0.2), and throttle storms join the faults:
//! every partition's limits cut for a while, so the hot items throttle.
//!
//! Every call goes into a history (`SOAK_OUT`/history.jsonl). Afterwards the checker
//! (`rushcart_tests::soak::check`) reads the history and the tables: balance
//! linearizability, exactly-once for keyed requests, orders, coupons, the feed (after the
//! sweeper's pass), sign-ups, and the audit of every invariant. The report
//! (`SOAK_OUT`/report.json, which tools/soak.py turns into docs/soak.md) says what each
//! fault did and what each check found. The run fails on any violation, and when no
//! fault was felt.
//!
//! Settings: `SOAK_SECONDS`, `SOAK_SEED`, `SOAK_CALM` (`min-max` seconds), `SOAK_WORKERS`
//! (default 32), `SOAK_OUT` (default .local/soak), `SOAK_BIN` (the directory of
//! rushcart-local-api and rushcart-admin, default target/debug); `SOAK_PLAN_ONLY=on`
//! prints the seed's schedule and stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rushcart::adapters::dynamodb::orders::order_from_item;
use rushcart::adapters::dynamodb::{get_u64, keys, s, DynamoStore};
use rushcart::adapters::feed_aws::FeedChannels;
use rushcart::clock::SystemClock;
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::orders::Order;
use rushcart_testkit::audit::{all_users, check_coupon, check_ledger, check_orders, read_ledger};
use rushcart_testkit::channels::dead_letters;
use rushcart_tests::faults::{metric_count, ConflictInjector, Fault as ProxyFault, FaultProxy, Paused};
use rushcart_tests::feed::{Behaviour, Receiver};
use rushcart_tests::soak::check::{self, CouponHeld, Delivered, Violation};
use rushcart_tests::soak::history::{Call, Op};
use rushcart_tests::soak::nemesis::{Dependency, Fault, Plan, Planned};
use serde_json::{json, Value};

/// Users 1..=BALANCE_USERS take the charges and uses, and nothing else writes their
/// ledgers; they start with [`BALANCE_OPENING`], so some uses are refused.
const BALANCE_USERS: u64 = 20;
const BALANCE_OPENING: &str = "50.00";
/// Checkout worker `n` acts as user CHECKOUT_USERS + n, who starts with CHECKOUT_BALANCE.
const CHECKOUT_USERS: u64 = 100;
const CHECKOUT_BALANCE: &str = "100000000.00";
/// Coupon rushes: users COUPON_USERS.. (COUPON_POOL of them) ask for the coupon of the
/// moment; a new coupon of COUPON_TOTAL opens every COUPON_PERIOD.
const COUPON_USERS: u64 = 1_001;
const COUPON_POOL: u64 = 1_500;
const COUPON_TOTAL: u64 = 60;
const COUPON_PERIOD: Duration = Duration::from_secs(30);
const PRODUCTS: u64 = 10;
/// The operator's user.
const OPERATOR: u64 = 900;
/// The API's top-5 refresh period (invariant 7 is checked one period after the load).
const TOP_REFRESH: Duration = Duration::from_secs(5);
/// A keyed (or safely repeatable) request is sent at most this often.
const TRIES: u32 = 20;

struct Settings {
    seconds: u64,
    seed: u64,
    calm: (u64, u64),
    workers: usize,
    out: PathBuf,
    bin: PathBuf,
    root: PathBuf,
    /// The capacity model's scale, when it is on (`SOAK_CAPACITY=aws`).
    capacity: Option<f64>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let number = |name: &str| -> anyhow::Result<Option<u64>> {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| v.parse().with_context(|| format!("{name} must be a whole number")))
                .transpose()
        };
        let calm = match std::env::var("SOAK_CALM").ok().filter(|v| !v.is_empty()) {
            None => (20, 60),
            Some(text) => {
                let (low, high) = text.split_once('-').context("SOAK_CALM is min-max seconds, e.g. 20-60")?;
                (low.parse()?, high.parse()?)
            }
        };
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let root = root.canonicalize().unwrap_or(root);
        Ok(Settings {
            seconds: number("SOAK_SECONDS")?.unwrap_or(600),
            seed: number("SOAK_SEED")?.unwrap_or_else(|| fastrand::u64(1..1_000_000)),
            calm,
            workers: number("SOAK_WORKERS")?.unwrap_or(32) as usize,
            out: std::env::var_os("SOAK_OUT").map_or_else(|| root.join(".local/soak"), PathBuf::from),
            bin: std::env::var_os("SOAK_BIN").map_or_else(|| root.join("target/debug"), PathBuf::from),
            root,
            capacity: match std::env::var("SOAK_CAPACITY").as_deref() {
                Ok("aws") => Some(
                    std::env::var("CAPACITY_SCALE")
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(|v| v.parse::<f64>())
                        .transpose()
                        .context("CAPACITY_SCALE must be a number")?
                        .unwrap_or(0.2),
                ),
                Ok("off") | Ok("") | Err(_) => None,
                Ok(other) => bail!("SOAK_CAPACITY must be aws or off, not {other:?}"),
            },
        })
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: run under localstack/with-stack.sh (make soak does)"))
}

/// The feed's channels, as `rushcart-admin provision --feed-env` wrote them.
fn feed_env(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// The processes the nemesis kills: the local API and the feed, each started again by
/// [`Process::start`] with the same command.
struct Process {
    name: &'static str,
    command: Box<dyn Fn() -> tokio::process::Command + Send + Sync>,
    child: Mutex<Option<tokio::process::Child>>,
    log: PathBuf,
}

impl Process {
    fn start(&self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = (self.command)();
        command.stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("start the {}", self.name))?;
        *self.child.lock().unwrap() = Some(child);
        Ok(())
    }

    /// SIGKILL, and waits until it is gone.
    async fn kill(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    fn running(&self) -> bool {
        self.child.lock().unwrap().as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

async fn wait_for_port(port: u16, process: &Process) -> anyhow::Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if !process.running() {
            bail!("the {} exited during start-up (log: {})", process.name, process.log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the {} did not open port {port} in 30 s", process.name)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The clients' side: the API, the tokens, the history.
struct Load {
    http: reqwest::Client,
    api: String,
    tokens: BTreeMap<u64, String>,
    operator: String,
    started: Instant,
    calls: Mutex<Vec<Call>>,
    requests: AtomicU64,
    amounts: AtomicU64,
    subjects: AtomicU64,
    coupon_askers: Vec<AtomicU64>,
    stop: AtomicBool,
    seed: u64,
    /// The sign-up trigger's store (through the proxies, as the function would be).
    signups: DynamoStore,
}

/// One request to send, and its tries.
struct Ask<'a> {
    op: Op,
    user: Option<u64>,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    key: Option<String>,
    /// Sent again after a 5xx or no answer (keyed, or harmless to repeat).
    retry: bool,
    token: Option<&'a str>,
}

impl Load {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    fn token(&self, user: u64) -> &str {
        self.tokens.get(&user).map(String::as_str).expect("a token for every user of the load")
    }

    /// Sends `ask`, again while the answer is a 5xx or none (if it may be retried), and
    /// returns the last try.
    async fn send(&self, ask: Ask<'_>) -> Call {
        let request = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let call = self.try_once(&ask, request, attempt).await;
            if !(call.uncertain() && ask.retry && attempt < TRIES) {
                if call.uncertain() {
                    // A client given no answer waits a moment before its next request.
                    tokio::time::sleep(Duration::from_millis(200 + fastrand::u64(0..300))).await;
                }
                return call;
            }
            tokio::time::sleep(Duration::from_millis(300 + fastrand::u64(0..700))).await;
        }
    }

    async fn try_once(&self, ask: &Ask<'_>, request: u64, attempt: u32) -> Call {
        let mut sending =
            self.http.request(ask.method.clone(), format!("{}{}", self.api, ask.path)).timeout(Duration::from_secs(40));
        if let Some(token) = ask.token {
            sending = sending.bearer_auth(token);
        }
        if let Some(body) = &ask.body {
            sending = sending.header("content-type", "application/json").body(body.to_string());
        }
        if let Some(key) = &ask.key {
            sending = sending.header("idempotency-key", key);
        }
        let start_ms = self.now_ms();
        let (status, retry_after, answer) = match sending.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let answer = match response.bytes().await {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| json!({ "notJson": String::from_utf8_lossy(&bytes) })),
                    Err(err) => check::no_answer(&format!("the body was cut off: {err}")),
                };
                (status, retry_after, answer)
            }
            Err(err) => (0, false, check::no_answer(&format!("{err:#}"))),
        };
        let call = Call {
            id: 0,
            request,
            attempt,
            op: ask.op,
            user: ask.user,
            key: ask.key.clone(),
            method: ask.method.to_string(),
            path: ask.path.clone(),
            body: ask.body.clone(),
            start_ms,
            end_ms: self.now_ms(),
            status,
            retry_after,
            answer,
        };
        self.record(call.clone());
        call
    }

    /// A charge or a use of an amount no other request carries, keyed or not.
    async fn balance_change(&self, keyed: bool) {
        let user = fastrand::u64(1..=BALANCE_USERS);
        let (op, route) = if fastrand::bool() { (Op::Charge, "charge") } else { (Op::Use, "use") };
        let amount = rust_decimal::Decimal::new(100 + self.amounts.fetch_add(1, Ordering::Relaxed) as i64, 2);
        self.send(Ask {
            op,
            user: Some(user),
            method: reqwest::Method::POST,
            path: format!("/api/v1/users/{user}/balance/{route}"),
            body: Some(json!({ "amount": amount.to_string() })),
            key: keyed.then(|| format!("{route}-{amount}")),
            retry: keyed,
            token: Some(self.token(user)),
        })
        .await;
    }

    /// An order (keyed), then mostly its payment (keyed) and sometimes its cancel
    /// (keyed): a refund when paid.
    async fn checkout(&self, user: u64, round: u64) {
        let lines: Vec<Value> = (0..fastrand::u64(1..=3))
            .map(|_| json!({"productId": fastrand::u64(1..=PRODUCTS), "quantity": fastrand::u64(1..=3)}))
            .collect();
        let keyed = |what: &str| Some(format!("{what}-{}-{user}-{round}", self.seed));
        let created = self
            .send(Ask {
                op: Op::CreateOrder,
                user: Some(user),
                method: reqwest::Method::POST,
                path: "/api/v1/orders".into(),
                body: Some(json!({"products": lines})),
                key: keyed("order"),
                retry: true,
                token: Some(self.token(user)),
            })
            .await;
        let Some(order) = created.answer["orderId"].as_str().filter(|_| created.succeeded()).map(str::to_owned) else {
            return;
        };
        let cancel = || Ask {
            op: Op::Cancel,
            user: Some(user),
            method: reqwest::Method::POST,
            path: format!("/api/v1/orders/{order}/cancel"),
            body: None,
            key: keyed("cancel"),
            retry: true,
            token: Some(self.token(user)),
        };
        if fastrand::u8(0..10) == 0 {
            self.send(cancel()).await;
            return;
        }
        let paid = self
            .send(Ask {
                op: Op::Pay,
                user: Some(user),
                method: reqwest::Method::POST,
                path: "/api/v1/payment".into(),
                body: Some(json!({"orderId": order})),
                key: keyed("pay"),
                retry: true,
                token: Some(self.token(user)),
            })
            .await;
        if paid.succeeded() && fastrand::u8(0..3) == 0 {
            self.send(cancel()).await;
        }
    }

    /// One user of the pool asks for the coupon of the moment, through the gate, keyed
    /// or not; either is sent again after a 5xx (unkeyed, "already issued" then says the
    /// first try went through).
    async fn coupon(&self) {
        let coupon = (self.started.elapsed().as_secs() / COUPON_PERIOD.as_secs()) as usize % self.coupon_askers.len();
        let user = COUPON_USERS + self.coupon_askers[coupon].fetch_add(1, Ordering::Relaxed) % COUPON_POOL;
        let keyed = fastrand::bool();
        let coupon = coupon as u64 + 1;
        self.send(Ask {
            op: Op::IssueCoupon,
            user: Some(user),
            method: reqwest::Method::POST,
            path: format!("/api/v1/coupons/{coupon}"),
            body: None,
            key: keyed.then(|| format!("coupon-{coupon}-{user}")),
            retry: true,
            token: Some(self.token(user)),
        })
        .await;
        // A shopper looks at the answer a moment before the next try.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    async fn top(&self) {
        self.send(Ask {
            op: Op::Top,
            user: None,
            method: reqwest::Method::GET,
            path: "/api/v1/products/top".into(),
            body: None,
            key: None,
            retry: false,
            token: None,
        })
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// A restock (keyed) or a price change (the same price again is harmless).
    async fn operate(&self, round: u64) {
        let product = fastrand::u64(1..=PRODUCTS);
        let ask = if fastrand::bool() {
            Ask {
                op: Op::Restock,
                user: Some(OPERATOR),
                method: reqwest::Method::POST,
                path: format!("/api/v1/admin/products/{product}/stock"),
                body: Some(json!({"add": fastrand::u64(20..=200)})),
                key: Some(format!("restock-{}-{round}", self.seed)),
                retry: true,
                token: Some(&self.operator),
            }
        } else {
            let price = rust_decimal::Decimal::new(fastrand::i64(50_000..=150_000), 2);
            Ask {
                op: Op::ChangePrice,
                user: Some(OPERATOR),
                method: reqwest::Method::PUT,
                path: format!("/api/v1/admin/products/{product}"),
                body: Some(json!({"price": price.to_string()})),
                key: None,
                retry: true,
                token: Some(&self.operator),
            }
        };
        self.send(ask).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    /// A sign-up as Cognito confirms one: the post-confirmation trigger's handler, called
    /// as its function calls it (retried as Cognito retries a failed trigger).
    async fn sign_up(&self) {
        let n = self.subjects.fetch_add(1, Ordering::Relaxed);
        let subject = format!("soak-{}-{n}", self.seed);
        let event = json!({
            "version": "1",
            "triggerSource": "PostConfirmation_ConfirmSignUp",
            "region": "us-east-1",
            "userPoolId": "us-east-1_soak",
            "userName": subject,
            "request": {"userAttributes": {"sub": subject, "email": format!("{subject}@example.com")}},
            "response": {},
        });
        let request = self.requests.fetch_add(1, Ordering::Relaxed);
        for attempt in 1..=5 {
            let start_ms = self.now_ms();
            let outcome = tokio::time::timeout(
                Duration::from_secs(10),
                rushcart::triggers::sign_up_confirmed(&self.signups, &SystemClock, event.clone()),
            )
            .await;
            let (status, answer) = match outcome {
                Ok(Ok(_)) => (200, json!({})),
                Ok(Err(err)) => (0, check::no_answer(&format!("{err:#}"))),
                Err(_) => (0, check::no_answer("the trigger's 10 s ran out")),
            };
            self.record(Call {
                id: 0,
                request,
                attempt,
                op: Op::SignUp,
                user: None,
                key: None,
                method: "TRIGGER".into(),
                path: "user-signup".into(),
                body: Some(json!({"sub": subject})),
                start_ms,
                end_ms: self.now_ms(),
                status,
                retry_after: false,
                answer,
            });
            if status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Worker `n`'s loop until told to stop.
    async fn work(self: Arc<Self>, n: usize) {
        let mut round = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            round += 1;
            match n % 8 {
                0 | 1 => self.balance_change(true).await,
                2 => self.balance_change(false).await,
                3 | 4 => self.checkout(CHECKOUT_USERS + n as u64, round).await,
                5 => self.coupon().await,
                6 if round.is_multiple_of(10) => self.sign_up().await,
                6 => self.top().await,
                _ => self.operate(round * 100 + n as u64).await,
            }
        }
    }
}

/// What the nemesis works on.
struct Targets {
    engine: FaultProxy,
    conflicts: ConflictInjector,
    moto: FaultProxy,
    redis: FaultProxy,
    api: Process,
    api_port: u16,
    feed: Process,
    receiver: Arc<Receiver>,
    http: reqwest::Client,
    capacity: Option<rushcart_capacity::Handle>,
}

impl Targets {
    fn proxy(&self, dependency: Dependency) -> &FaultProxy {
        match dependency {
            Dependency::Engine => &self.engine,
            Dependency::Moto => &self.moto,
            Dependency::Redis => &self.redis,
        }
    }

    /// Redis faults show in the API's metrics: the coupon gate stepping aside, the top 5
    /// falling back to DynamoDB.
    async fn redis_fallbacks(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/_local/metrics", self.api_port);
        let metrics: Value = match self.http.get(url).timeout(Duration::from_secs(5)).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        metric_count(&metrics, "CouponGate", "Bypassed") + metric_count(&metrics, "TopCache", "Fallback")
    }

    /// Does `fault` for its length, then heals it; says what it saw, and how many times
    /// it was felt beyond the history's answers.
    async fn inflict(&self, planned: &Planned) -> anyhow::Result<(String, u64)> {
        let redis = matches!(
            planned.fault,
            Fault::Pause { dependency: Dependency::Redis }
                | Fault::Cut { dependency: Dependency::Redis }
                | Fault::Slow { dependency: Dependency::Redis, .. }
        );
        let fallbacks = if redis { self.redis_fallbacks().await } else { 0 };
        let (said, felt) = self.act(planned).await?;
        if redis {
            let more = self.redis_fallbacks().await.saturating_sub(fallbacks);
            return Ok((format!("the gate stepped aside or the top 5 fell back {more} times"), more));
        }
        Ok((said, felt))
    }

    async fn act(&self, planned: &Planned) -> anyhow::Result<(String, u64)> {
        let length = Duration::from_millis(planned.length_ms);
        Ok(match planned.fault {
            Fault::Pause { dependency } => {
                let paused = Paused::pause(dependency.process());
                tokio::time::sleep(length).await;
                drop(paused);
                (String::new(), 0)
            }
            Fault::Cut { dependency } => {
                self.proxy(dependency).set(ProxyFault::Cut);
                tokio::time::sleep(length).await;
                self.proxy(dependency).set(ProxyFault::None);
                (String::new(), 0)
            }
            Fault::Slow { dependency, delay_ms } => {
                self.proxy(dependency).set(ProxyFault::Slow(Duration::from_millis(delay_ms)));
                tokio::time::sleep(length).await;
                self.proxy(dependency).set(ProxyFault::None);
                (String::new(), 0)
            }
            Fault::KillApi => {
                self.api.kill().await;
                tokio::time::sleep(length).await;
                self.api.start()?;
                wait_for_port(self.api_port, &self.api).await?;
                ("the API killed and started again".to_owned(), 0)
            }
            Fault::KillFeed => {
                let before = self.receiver.accepted().values().sum::<u32>();
                self.feed.kill().await;
                tokio::time::sleep(length).await;
                let during = self.receiver.accepted().values().sum::<u32>() - before;
                self.feed.start()?;
                (format!("the feed killed; {during} deliveries while it was down"), 0)
            }
            Fault::ThrottleStorm { divisor } => {
                let model = self.capacity.as_ref().context("a throttle storm without the capacity model")?;
                let throttled = |m: &Value| {
                    m["requests"]["throttled"].as_u64().unwrap_or(0)
                        + m["requests"]["partlyThrottled"].as_u64().unwrap_or(0)
                };
                let (limits, before) = (model.limits(), throttled(&model.metrics()));
                model.set_limits(rushcart_capacity::Limits { scale: limits.scale / divisor as f64, ..limits });
                tokio::time::sleep(length).await;
                model.set_limits(limits);
                let storm = throttled(&model.metrics()) - before;
                (format!("{storm} requests throttled"), storm)
            }
            Fault::Conflicts { count } => {
                let before = self.conflicts.conflicts_answered();
                self.conflicts.conflict_next(count);
                tokio::time::sleep(length).await;
                self.conflicts.conflict_next(0);
                let answered = self.conflicts.conflicts_answered() - before;
                (format!("{answered} transactions answered TransactionConflict"), answered)
            }
        })
    }
}

/// The schedule as run: each fault with what it showed.
async fn nemesis(targets: &Targets, schedule: &[Planned], started: Instant) -> anyhow::Result<Vec<(String, u64)>> {
    let mut evidence = Vec::new();
    for planned in schedule {
        let at = started + Duration::from_millis(planned.at_ms);
        tokio::time::sleep_until(at.into()).await;
        println!(
            "soak: {:>6.1} s  {} for {:.1} s",
            planned.at_ms as f64 / 1000.0,
            planned.fault.label(),
            planned.length_ms as f64 / 1000.0
        );
        evidence.push(targets.inflict(planned).await?);
    }
    Ok(evidence)
}

async fn admin(settings: &Settings, prefix: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(settings.bin.join("rushcart-admin"))
        .args(args)
        .env("RUSHCART_TABLE_PREFIX", prefix)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .context("run rushcart-admin")?;
    anyhow::ensure!(status.success(), "rushcart-admin {args:?} failed: {status}");
    Ok(())
}

async fn mint(http: &reqwest::Client, api: &str, user: u64, admin: bool) -> anyhow::Result<String> {
    let answer: Value = http
        .post(format!("{api}/_local/token"))
        .header("content-type", "application/json")
        .body(json!({"userId": user, "admin": admin}).to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["token"].as_str().map(str::to_owned).context("the token endpoint's answer names no token")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rushcart::install_crypto_provider();
    let settings = Settings::from_env()?;
    let plan = Plan {
        seed: settings.seed,
        seconds: settings.seconds,
        calm: settings.calm,
        storms: settings.capacity.is_some(),
    };
    let capacity = settings.capacity.map(|scale| format!("CAPACITY=aws CAPACITY_SCALE={scale} ")).unwrap_or_default();
    let replay = format!(
        "{capacity}SOAK_SEED={} SOAK_SECONDS={} SOAK_CALM={}-{} make soak",
        plan.seed, plan.seconds, plan.calm.0, plan.calm.1
    );
    println!(
        "soak: seed {} ({} s, calm {}-{} s, {} workers); replay with: {replay}",
        plan.seed, plan.seconds, plan.calm.0, plan.calm.1, settings.workers
    );
    std::fs::create_dir_all(&settings.out)?;
    for stale in ["api.log", "feed.log", "issuer.pem", "feed.checkpoint"] {
        let _ = std::fs::remove_file(settings.out.join(stale));
    }
    let schedule = plan.schedule();
    if std::env::var("SOAK_PLAN_ONLY").is_ok_and(|v| v == "on") {
        for planned in &schedule {
            println!(
                "{:>7.1} s  {} for {:.1} s",
                planned.at_ms as f64 / 1000.0,
                planned.fault.label(),
                planned.length_ms as f64 / 1000.0
            );
        }
        return Ok(());
    }

    // The stack's endpoints, and a proxy in front of each.
    let engine_url = env("AWS_ENDPOINT_URL_DYNAMODB")?;
    let moto_url = env("AWS_ENDPOINT_URL_SQS")?;
    let redis_url = env("REDIS_URL")?;
    // With the capacity model: the proxies → the model → the engine.
    let model = match settings.capacity {
        Some(scale) => {
            use rushcart_capacity::{Clock, Config, Limits, Server};
            let config = Config { limits: Limits { scale, table_max: None }, clock: Clock::system() };
            let server = Server::bind(([127, 0, 0, 1], 0).into(), &engine_url, config).await?;
            let endpoint = format!("http://{}", server.local_addr()?);
            let handle = server.handle();
            tokio::spawn(server.serve());
            println!("soak: the capacity model at scale {scale} in front of the engine");
            Some((endpoint, handle))
        }
        None => None,
    };
    let engine = FaultProxy::in_front_of(model.as_ref().map_or(&engine_url, |(endpoint, _)| endpoint)).await;
    let engine_through = format!("http://127.0.0.1:{}", engine.port());
    let conflicts = ConflictInjector::in_front_of(&engine_through).await;
    let moto = FaultProxy::in_front_of(&moto_url).await;
    let redis = FaultProxy::in_front_of(&redis_url).await;

    // Tables, channels and data, straight to the stack.
    let prefix = format!("soak{}", plan.seed);
    let feed_env_path = settings.out.join("feed.env");
    admin(&settings, &prefix, &["provision", "--feed-env", &feed_env_path.to_string_lossy()]).await?;
    let coupons = settings.seconds / COUPON_PERIOD.as_secs() + 1;
    // Users 1..=20 with a small opening balance (the balance users), then the rest with
    // enough for every checkout of a 10-minute soak (a checkout worker pays about 3,600
    // orders of about 4,000.00 there: with 1,000,000.00 its balance ran out in 20 s and
    // the rest of its payments were refused); the products and coupons with the first.
    let (coupons_arg, total_arg, products_arg) = (coupons.to_string(), COUPON_TOTAL.to_string(), PRODUCTS.to_string());
    for (users, balance) in [(BALANCE_USERS, BALANCE_OPENING), (COUPON_USERS + COUPON_POOL, CHECKOUT_BALANCE)] {
        let users = users.to_string();
        let seed = ["seed", "--users", &users, "--balance", balance, "--products", &products_arg];
        let coupons = ["--coupons", &coupons_arg, "--coupon-quantity", &total_arg];
        admin(&settings, &prefix, &[&seed[..], &coupons[..]].concat()).await?;
    }
    let channels = feed_env(&feed_env_path)?;
    let receiver = Arc::new(Receiver::start(Behaviour::Accept).await);

    // The API and the feed, each a process of its own, through the proxies.
    let api_port = free_port()?;
    // What both processes are told: the tables, and every endpoint through its proxy.
    let through: Vec<(String, String)> = [
        ("RUSHCART_TABLE_PREFIX", prefix.clone()),
        ("TABLE_NAME", format!("{prefix}-main")),
        ("AWS_ENDPOINT_URL_DYNAMODB", conflicts.endpoint()),
        ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", engine_through.clone()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint_for(&moto_url)),
        ("AWS_ENDPOINT_URL_KINESIS", moto.endpoint_for(&moto_url)),
        ("REDIS_URL", redis.endpoint_for(&redis_url)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .chain(channels.clone())
    .collect();
    let bin = settings.bin.join("rushcart-local-api");
    let api_command = {
        let (bin, envs) = (bin.clone(), through.clone());
        let (key, template) = (settings.out.join("issuer.pem"), settings.root.join("template.yaml"));
        move || {
            let mut command = tokio::process::Command::new(&bin);
            command
                .envs(envs.iter().cloned())
                .env("PORT", api_port.to_string())
                .env("FEED", "off")
                .env("THROTTLE", "off")
                .env("COUPON_GATE", "on")
                .env("TOP5_REFRESH_SECONDS", TOP_REFRESH.as_secs().to_string())
                .env("LOCAL_ISSUER_KEY", &key)
                .env("RUSHCART_TEMPLATE", &template);
            command
        }
    };
    let feed_command = {
        let (platform, checkpoint) = (receiver.url.clone(), settings.out.join("feed.checkpoint"));
        move || {
            let mut command = tokio::process::Command::new(&bin);
            command
                .arg("feed")
                .envs(through.iter().cloned())
                .env("DATA_PLATFORM_URL", &platform)
                .env("FEED_CHECKPOINT", &checkpoint);
            command
        }
    };
    let targets = Targets {
        api: Process {
            name: "local API",
            command: Box::new(api_command),
            child: Mutex::new(None),
            log: settings.out.join("api.log"),
        },
        feed: Process {
            name: "feed",
            command: Box::new(feed_command),
            child: Mutex::new(None),
            log: settings.out.join("feed.log"),
        },
        engine,
        conflicts,
        moto,
        redis,
        api_port,
        receiver: receiver.clone(),
        http: reqwest::Client::new(),
        capacity: model.map(|(_, handle)| handle),
    };
    targets.api.start()?;
    wait_for_port(api_port, &targets.api).await?;
    targets.feed.start()?;
    let api = format!("http://127.0.0.1:{api_port}");

    // Tokens for every user of the load (an hour each: longer than any soak).
    let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(50)).build()?;
    let mut tokens = BTreeMap::new();
    let users: Vec<u64> = (1..=BALANCE_USERS)
        .chain(CHECKOUT_USERS..CHECKOUT_USERS + settings.workers as u64)
        .chain(COUPON_USERS..COUPON_USERS + COUPON_POOL)
        .collect();
    for user in users {
        tokens.insert(user, mint(&http, &api, user, false).await?);
    }
    let operator = mint(&http, &api, OPERATOR, true).await?;
    let sdk = rushcart::adapters::aws_sdk_config().await;
    let through_client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk).endpoint_url(targets.conflicts.endpoint()).build(),
    );
    let table = format!("{prefix}-main");
    let signups = DynamoStore::new(through_client, &table);

    let load = Arc::new(Load {
        http,
        api,
        tokens,
        operator,
        started: Instant::now(),
        calls: Mutex::new(Vec::new()),
        requests: AtomicU64::new(0),
        amounts: AtomicU64::new(0),
        subjects: AtomicU64::new(0),
        coupon_askers: (0..coupons).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        seed: plan.seed,
        signups,
    });
    println!("soak: load on {} for {} s; {} faults planned", load.api, settings.seconds, schedule.len());
    let workers: Vec<_> = (0..settings.workers).map(|n| tokio::spawn(load.clone().work(n))).collect();
    let first_seen = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let sampling = {
        let (first_seen, receiver, load) = (first_seen.clone(), receiver.clone(), load.clone());
        tokio::spawn(async move {
            loop {
                let now = load.now_ms();
                let accepted = receiver.accepted();
                {
                    let mut seen = first_seen.lock().unwrap();
                    for event in accepted.into_keys() {
                        seen.entry(event).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let evidence = tokio::select! {
        evidence = nemesis(&targets, &schedule, load.started) => evidence?,
        _ = tokio::time::sleep(Duration::from_secs(settings.seconds)) => bail!("the nemesis outran the soak"),
    };
    tokio::time::sleep_until((load.started + Duration::from_secs(settings.seconds)).into()).await;
    load.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }
    let load_ms = load.now_ms();
    let load_ended = time::OffsetDateTime::now_utc();
    println!("soak: load stopped at {:.1} s; draining the feed", load_ms as f64 / 1000.0);

    // Afterwards, straight to the stack.
    let direct = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk).endpoint_url(&engine_url).build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(sdk).endpoint_url(&moto_url).build());
    let kinesis =
        aws_sdk_kinesis::Client::from_conf(aws_sdk_kinesis::config::Builder::from(sdk).endpoint_url(&moto_url).build());
    let feed_channels = FeedChannels {
        queue_url: channels.get("FEED_QUEUE_URL").cloned().context("feed.env names no FEED_QUEUE_URL")?,
        dead_letter_queue_url: channels.get("FEED_DLQ_URL").cloned().unwrap_or_default(),
        stream_name: channels.get("FEED_STREAM_NAME").cloned().context("feed.env names no FEED_STREAM_NAME")?,
    };
    let orders = stored_orders(&direct, &table).await?;
    let statuses: BTreeMap<String, String> =
        orders.iter().map(|o| (o.id.to_string(), o.status.as_str().to_owned())).collect();
    let owners: BTreeMap<String, u64> = orders.iter().map(|o| (o.id.to_string(), o.user.get())).collect();
    let mut sold: BTreeMap<u64, u64> = BTreeMap::new();
    for order in orders.iter().filter(|o| o.status.as_str() == "PAID") {
        for line in &order.lines {
            *sold.entry(line.product_id.get()).or_default() += u64::from(line.quantity.get());
        }
    }
    // The feed's sweeper runs every minute for events unpublished 30 s: four periods.
    let drain = drain_feed(&receiver, &statuses, Duration::from_secs(240)).await;
    let dead = dead_letters(&sqs, &feed_channels.dead_letter_queue_url).await.map(|d| d.len()).unwrap_or(0);
    sampling.abort();
    let first_seen = std::mem::take(&mut *first_seen.lock().unwrap());
    let top = top_after(&load.http, &load.api, load_ended).await;
    targets.api.kill().await;
    targets.feed.kill().await;

    println!("soak: the feed drained in {:.1} s; checking the history against the tables", drain.as_secs_f64());
    let checking = Instant::now();
    let mut calls = std::mem::take(&mut *load.calls.lock().unwrap());
    calls.sort_by_key(|c| (c.start_ms, c.end_ms));
    for (id, call) in calls.iter_mut().enumerate() {
        call.id = id as u64;
    }
    let mut checks = Vec::new();
    checks.push(named("answers", format!("{} calls", calls.len()), check::answers(&calls)));
    let paid = calls.iter().filter(|c| c.op == Op::Pay && c.succeeded()).count();
    checks.push(named(
        "mix",
        format!("every operation succeeded at least once; {paid} payments went through"),
        check::mix(&calls),
    ));
    let mut ledgers = BTreeMap::new();
    for user in 1..=BALANCE_USERS {
        ledgers.insert(user, read_ledger(&direct, &table, UserId::new(user)?).await?);
    }
    let changes = calls.iter().filter(|c| matches!(c.op, Op::Charge | Op::Use)).count();
    checks.push(named(
        "balance linearizability",
        format!("{BALANCE_USERS} users, {changes} charge and use calls against their ledgers"),
        check::balances(&calls, &ledgers, 1),
    ));
    let restocked = restocked(&direct, &table).await?;
    let mut once = check::replays(&calls);
    once.extend(check::exactly_once(&calls, &owners, &restocked));
    checks.push(named(
        "exactly once",
        "every key's successes answer alike; each user's orders and each product's restocks made once".into(),
        once,
    ));
    checks.push(named("orders", format!("{} orders in the table", statuses.len()), check::orders(&calls, &statuses)));
    let top_found = match &top {
        Ok(answer) => check::top_five(answer, &sold),
        Err(err) => vec![Violation { check: "top 5", message: format!("{err:#}"), calls: vec![] }],
    };
    checks.push(named("top 5", "the answer a refresh after the load against the paid orders".into(), top_found));
    let held = coupons_held(&direct, &table, &calls, coupons).await?;
    let issued: u64 = held.values().map(|c| c.issued).sum();
    checks.push(named(
        "coupons",
        format!("{coupons} coupons of {COUPON_TOTAL}, {issued} issued"),
        check::coupons(&calls, &held),
    ));
    let delivered = Delivered {
        accepted: receiver.accepted().into_iter().collect(),
        kinesis: kinesis_events(&kinesis, &feed_channels.stream_name).await?,
    };
    let mut feed_violations = check::feed(&statuses, &delivered);
    if dead > 0 {
        feed_violations.push(Violation {
            check: "feed",
            message: format!("{dead} events in the dead-letter queue"),
            calls: vec![],
        });
    }
    checks.push(named(
        "feed",
        format!(
            "{} events accepted by the platform ({} deliveries), {} on Kinesis; drained in {:.1} s",
            delivered.accepted.len(),
            delivered.accepted.values().sum::<u32>(),
            delivered.kinesis.len(),
            drain.as_secs_f64()
        ),
        feed_violations,
    ));
    let (registered, profiles) = signed_up(&direct, &table, &calls).await?;
    checks.push(named(
        "sign-ups",
        format!("{} subjects registered", registered.len()),
        check::sign_ups(&calls, &registered, &profiles),
    ));
    checks.push(named(
        "audit",
        "every invariant of DESIGN.md from the tables".into(),
        audit(&direct, &table, coupons).await,
    ));

    println!("soak: checked in {:.1} s", checking.elapsed().as_secs_f64());
    let felt: Vec<Vec<u64>> = schedule
        .iter()
        .map(|planned| {
            let mut ids = check::felt(planned, &calls);
            if planned.fault.holds_up_the_feed() {
                ids.extend(check::held_back(planned, &calls, &first_seen));
                ids.sort_unstable();
                ids.dedup();
            }
            ids
        })
        .collect();
    let faults_felt = felt.iter().zip(&evidence).filter(|(ids, (_, more))| !ids.is_empty() || *more > 0).count();
    let violations: usize = checks.iter().map(|c| c.2.len()).sum();
    let passed = violations == 0 && faults_felt > 0;

    // The history and the report.
    let mut history = String::new();
    for call in &calls {
        history.push_str(&serde_json::to_string(call)?);
        history.push('\n');
    }
    std::fs::write(settings.out.join("history.jsonl"), history)?;
    let report =
        report(&settings, &plan, &replay, &schedule, &felt, &evidence, &calls, load_ms, &checks, faults_felt, passed);
    std::fs::write(settings.out.join("report.json"), serde_json::to_string_pretty(&report)?)?;

    println!();
    for (name, detail, found) in &checks {
        println!("  {} {name}: {detail}", if found.is_empty() { "ok  " } else { "FAIL" });
        for v in found.iter().take(20) {
            println!("       {}", v.message);
            for id in v.calls.iter().take(5) {
                let c = &calls[*id as usize];
                println!(
                    "         #{id} {}–{} ms {} {} {} → {} {}",
                    c.start_ms,
                    c.end_ms,
                    c.op.name(),
                    c.method,
                    c.path,
                    c.status,
                    c.code()
                );
            }
        }
    }
    println!("  faults felt: {faults_felt} of {}", schedule.len());
    println!(
        "soak: seed {}: {} ({} calls; history and report in {})",
        plan.seed,
        if passed { "passed" } else { "FAILED" },
        calls.len(),
        settings.out.display()
    );
    if faults_felt == 0 {
        println!("soak: no fault was felt: the nemesis did not bite");
    }
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

fn named(name: &'static str, detail: String, found: Vec<Violation>) -> (&'static str, String, Vec<Violation>) {
    (name, detail, found)
}

/// Every order, by a scan.
async fn stored_orders(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<Vec<Order>> {
    let mut orders = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .limit(rushcart_testkit::audit::SCAN_PAGE)
            .filter_expression("sk = :order")
            .expression_attribute_values(":order", s("ORDER"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("scan the orders")?;
        for item in page.items() {
            orders.push(order_from_item(item)?);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(orders);
        }
    }
}

/// Each product's `restocked`.
async fn restocked(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<BTreeMap<u64, u64>> {
    let mut restocked = BTreeMap::new();
    for product in 1..=PRODUCTS {
        let found = client
            .get_item()
            .table_name(table)
            .set_key(Some(keys::product(ProductId::new(product)?).item()))
            .consistent_read(true)
            .send()
            .await?;
        let item = found.item().with_context(|| format!("product {product} is gone"))?;
        let added = if item.contains_key("restocked") { get_u64(item, "restocked")? } else { 0 };
        restocked.insert(product, added);
    }
    Ok(restocked)
}

/// The top 5 as the API answers it once a refresh has run after `after` (at most 30 s).
async fn top_after(http: &reqwest::Client, api: &str, after: time::OffsetDateTime) -> anyhow::Result<Value> {
    let wait_until = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: Value =
            http.get(format!("{api}/api/v1/products/top")).send().await?.error_for_status()?.json().await?;
        let generated = answer["generatedAt"]
            .as_str()
            .and_then(|at| time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok());
        if generated.is_some_and(|at| at > after) {
            return Ok(answer);
        }
        if Instant::now() > wait_until {
            bail!("no top 5 computed after the load within 30 s (the last: {answer})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (at most `within`) until the platform has the events of every paid and
/// refunded order, as the feed process delivers them: its relay, and for what the relay
/// could not publish, its sweeper (every minute, for events unpublished 30 s). Returns
/// how long it took.
async fn drain_feed(receiver: &Receiver, statuses: &BTreeMap<String, String>, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        let accepted = receiver.accepted();
        let missing = statuses.iter().any(|(order, status)| {
            let paid = matches!(status.as_str(), "PAID" | "REFUNDED");
            (paid && !accepted.contains_key(&format!("{order}:ORDER_PAID")))
                || (status == "REFUNDED" && !accepted.contains_key(&format!("{order}:ORDER_REFUNDED")))
        });
        if !missing {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    started.elapsed()
}

/// Every event Kinesis holds, in each shard's order (`<order>:<TYPE>`).
async fn kinesis_events(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<Vec<String>> {
    let mut events = Vec::new();
    for record in rushcart_tests::feed::stream_records(kinesis, stream).await? {
        let event: Value = serde_json::from_slice(record.data().as_ref())?;
        events.push(event["eventId"].as_str().unwrap_or_default().to_owned());
    }
    Ok(events)
}

/// Each coupon's count and total, and which of the users who asked hold a copy.
async fn coupons_held(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    calls: &[Call],
    coupons: u64,
) -> anyhow::Result<BTreeMap<u64, CouponHeld>> {
    let mut askers: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.op == Op::IssueCoupon) {
        if let (Some(coupon), Some(user)) =
            (call.path.rsplit('/').next().and_then(|c| c.parse::<u64>().ok()), call.user)
        {
            askers.entry(coupon).or_default().insert(user);
        }
    }
    let mut held = BTreeMap::new();
    for coupon in 1..=coupons {
        let audit = check_coupon(client, table, CouponId::new(coupon)?).await;
        let (total, issued, copies) = match audit {
            Ok(a) => (a.total, a.issued, a.copies),
            Err(err) => bail!("coupon {coupon}: {err:#}"),
        };
        let mut holders = BTreeSet::new();
        for user in askers.get(&coupon).into_iter().flatten() {
            let copy = client
                .get_item()
                .table_name(table)
                .set_key(Some(keys::coupon_copy(UserId::new(*user)?, CouponId::new(coupon)?).item()))
                .consistent_read(true)
                .send()
                .await?;
            if copy.item().is_some() {
                holders.insert(*user);
            }
        }
        held.insert(coupon, CouponHeld { total, issued, copies, holders });
    }
    Ok(held)
}

/// Each signed-up subject's user, and which of those users have a profile.
async fn signed_up(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    calls: &[Call],
) -> anyhow::Result<(BTreeMap<String, u64>, BTreeSet<u64>)> {
    let subjects: BTreeSet<&str> =
        calls.iter().filter(|c| c.op == Op::SignUp).filter_map(|c| c.body.as_ref()?["sub"].as_str()).collect();
    let (mut registered, mut profiles) = (BTreeMap::new(), BTreeSet::new());
    for subject in subjects {
        let found = client
            .get_item()
            .table_name(table)
            .set_key(Some(keys::identity(subject).item()))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = found.item() else { continue };
        let user = get_u64(item, "userId")?;
        registered.insert(subject.to_owned(), user);
        let profile = client
            .get_item()
            .table_name(table)
            .set_key(Some(keys::profile(UserId::new(user)?).item()))
            .consistent_read(true)
            .send()
            .await?;
        if profile.item().is_some() {
            profiles.insert(user);
        }
    }
    Ok((registered, profiles))
}

/// DESIGN.md's invariants from the tables: every user's ledger, every coupon, every
/// order, payment and product (stock over every bucket).
async fn audit(client: &aws_sdk_dynamodb::Client, table: &str, coupons: u64) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut note = |message: String| found.push(Violation { check: "audit", message, calls: vec![] });
    match all_users(client, table).await {
        Ok(users) => {
            for user in users {
                match read_ledger(client, table, user).await {
                    Ok(ledger) => {
                        if let Err(err) = check_ledger(user, &ledger) {
                            note(format!("{err:#}"));
                        }
                    }
                    Err(err) => note(format!("{err:#}")),
                }
            }
        }
        Err(err) => note(format!("{err:#}")),
    }
    for coupon in 1..=coupons {
        if let Err(err) = check_coupon(client, table, CouponId::new(coupon).expect("a coupon id")).await {
            note(format!("coupon {coupon}: {err:#}"));
        }
    }
    if let Err(err) = check_orders(client, table).await {
        note(format!("{err:#}"));
    }
    found
}

#[allow(clippy::too_many_arguments)]
fn report(
    settings: &Settings,
    plan: &Plan,
    replay: &str,
    schedule: &[Planned],
    felt: &[Vec<u64>],
    evidence: &[(String, u64)],
    calls: &[Call],
    load_ms: u64,
    checks: &[(&'static str, String, Vec<Violation>)],
    faults_felt: usize,
    passed: bool,
) -> Value {
    let class = |c: &Call| match c.status {
        0 => "none",
        200..=299 => "2xx",
        409 => "409",
        429 => "429",
        503 => "503",
        504 => "504",
        _ => "other",
    };
    let percentile = |mut took: Vec<u64>, p: f64| -> u64 {
        took.sort_unstable();
        took.get(((took.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0)
    };
    let stats = |from: u64, to: u64| {
        let inside: Vec<&Call> = calls.iter().filter(|c| c.start_ms >= from && c.start_ms < to).collect();
        let took: Vec<u64> = inside.iter().map(|c| c.end_ms - c.start_ms).collect();
        (inside, took)
    };
    // Phases: calm and fault in turn.
    let mut phases = Vec::new();
    let mut edges: Vec<(u64, u64, Option<&Planned>)> = Vec::new();
    let mut at = 0;
    for planned in schedule {
        edges.push((at, planned.at_ms, None));
        edges.push((planned.at_ms, planned.at_ms + planned.length_ms, Some(planned)));
        at = planned.at_ms + planned.length_ms;
    }
    edges.push((at, load_ms.max(at) + 60_000, None));
    for (from, to, fault) in edges {
        let (inside, took) = stats(from, to);
        let mut answers: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
        for call in &inside {
            *answers.entry(call.op.name()).or_default().entry(call.status.to_string()).or_default() += 1;
        }
        phases.push(json!({
            "phase": fault.map_or_else(|| "calm".to_owned(), |p| p.fault.label()),
            "fault": fault.is_some(),
            "fromMs": from,
            "toMs": to.min(load_ms.max(from)),
            "answers": answers,
            "calls": inside.len(),
            "slowestMs": took.iter().max().copied().unwrap_or(0),
            "p99Ms": percentile(took, 0.99),
        }));
    }
    let mut timeline = Vec::new();
    for from in (0..load_ms).step_by(5_000) {
        let (inside, took) = stats(from, from + 5_000);
        let mut statuses: BTreeMap<&str, u64> =
            ["2xx", "409", "429", "503", "504", "none", "other"].into_iter().map(|k| (k, 0)).collect();
        for call in &inside {
            *statuses.entry(class(call)).or_default() += 1;
        }
        timeline.push(json!({
            "fromMs": from,
            "statuses": statuses,
            "slowestMs": took.iter().max().copied().unwrap_or(0),
            "p99Ms": percentile(took, 0.99),
        }));
    }
    let mut ops: BTreeMap<&str, Value> = BTreeMap::new();
    for op in Op::ALL {
        let of_op: Vec<&Call> = calls.iter().filter(|c| c.op == op).collect();
        if of_op.is_empty() {
            continue;
        }
        let requests: BTreeSet<u64> = of_op.iter().map(|c| c.request).collect();
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        for call in &of_op {
            *statuses.entry(call.status.to_string()).or_default() += 1;
        }
        ops.insert(op.name(), json!({"requests": requests.len(), "calls": of_op.len(), "statuses": statuses}));
    }
    let slowest = calls.iter().max_by_key(|c| c.end_ms - c.start_ms).map(|c| {
        json!({"ms": c.end_ms - c.start_ms, "op": c.op.name(), "status": c.status, "atMs": c.start_ms, "path": c.path})
    });
    json!({
        "seed": plan.seed,
        "seconds": plan.seconds,
        "calm": [plan.calm.0, plan.calm.1],
        "workers": settings.workers,
        "capacityScale": settings.capacity,
        "profile": settings.bin.file_name().map(|n| n.to_string_lossy().into_owned()),
        "startedAt": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "replay": replay,
        "schedule": schedule.iter().zip(felt).zip(evidence).map(|((p, felt), (said, more))| {
            let what = if p.fault.holds_up_the_feed() { "calls failed or slowed, or payments' events held back" } else { "calls failed or slowed" };
            let mut evidence = format!("{} {what}", felt.len());
            if !said.is_empty() {
                evidence.push_str("; ");
                evidence.push_str(said);
            }
            json!({"atMs": p.at_ms, "lengthMs": p.length_ms, "label": p.fault.label(), "fault": p.fault, "felt": felt.len() as u64 + more, "evidence": evidence})
        }).collect::<Vec<_>>(),
        "phases": phases,
        "timeline": timeline,
        "ops": ops,
        "slowest": slowest,
        "checks": checks.iter().map(|(name, detail, found)| json!({
            "name": name, "ok": found.is_empty(), "detail": detail, "violations": found.iter().take(20).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "violations": checks.iter().map(|c| c.2.len()).sum::<usize>(),
        "faultsFelt": faults_felt,
        "passed": passed,
    })
}
