//! rushcart: the core of a shop that holds up under a rush, as AWS Lambda functions.
//!
//! # Layout
//!
//! A request goes route → function → handler → use case → port → adapter
//! (docs/architecture.md draws it):
//!
//! - [`money`], [`ids`], [`clock`], [`pagination`]: domain values, built only by parsing.
//! - [`balance`], [`catalog`], [`coupons`], [`orders`], [`top`], [`feed`]: the domain —
//!   each its types, its ports (traits) and its use cases.
//! - [`adapters`]: the ports on DynamoDB, Redis, SQS and Kinesis (the tests run the
//!   DynamoDB adapter against an in-process engine, never a second copy of the rules).
//!   Only what the functions run lives here: seeding, audits, the local feed pollers,
//!   provisioning and the store's counters are `rushcart-testkit`'s.
//! - [`http`]: the route table, extractors, the one error → response mapping, one
//!   handler per route.
//! - [`identity`]: who is acting — the user and roles from the authorizer's verified
//!   claims (locally, `AUTH=off`'s client-named user) — and a new user's sign-up.
//! - [`triggers`]: the handlers of the non-HTTP functions (stream, SQS, schedules,
//!   Cognito's sign-up and token triggers).
//! - [`echo`]: how much of a client's input an error message may quote back.
//! - [`retry`]: bounded jittered backoff for transaction conflicts and for the keys a
//!   `BatchGetItem` leaves unprocessed.
//! - [`shards`]: hot counts (a coupon's copies, a product's stock) split over shards:
//!   the shares, and where a take or an add goes.
//! - [`telemetry`]: tracing set-up (JSON on Lambda), and the TLS crypto provider.
//! - [`metrics`]: the catalogue of business and technical metrics, written as
//!   CloudWatch Embedded Metric Format records in the log.
//!
//! A function binary builds [`Deps`] once and passes every request to its handler.

pub mod adapters;
pub mod balance;
pub mod catalog;
pub mod clock;
pub mod coupons;
pub mod echo;
pub mod feed;
pub mod http;
pub mod identity;
pub mod ids;
pub mod metrics;
pub mod money;
pub mod orders;
pub mod pagination;
pub mod retry;
pub mod shards;
pub mod telemetry;
pub mod top;
pub mod triggers;

use std::sync::Arc;

use anyhow::Context as _;

use clock::{Clock, SystemClock};

/// What a handler needs: the store (any type implementing the ports it uses), the
/// clock, how it learns who is acting, the shop's settings, and the optional coupon
/// admission gate and top-5 cache. Built once per process.
pub struct Deps<S> {
    pub store: S,
    pub clock: Arc<dyn Clock>,
    pub identity: identity::Identity,
    /// Whether customers may charge their own balance (`SELF_SERVICE_TOP_UP`, default
    /// on); when off, only an operator credits balances.
    pub self_service_top_up: bool,
    /// How long an order waits for its payment and a paid one for its refund
    /// (`ORDER_PAYMENT_WINDOW`, `ORDER_REFUND_WINDOW` seconds).
    pub order_windows: orders::OrderWindows,
    pub coupon_gate: Option<Arc<dyn coupons::AdmissionGate>>,
    /// Each user's budget of coupon issue requests (`COUPON_USER_BUDGET` per second,
    /// on Redis), so one client cannot starve the rush route for everyone.
    pub issue_budget: Option<Arc<dyn coupons::IssueBudget>>,
    pub top_cache: Option<Arc<dyn top::TopProductsCache>>,
}

impl<S> Deps<S> {
    /// Dependencies over `store` that read the acting user from verified claims with
    /// the default claim names.
    pub fn new(store: S) -> Deps<S> {
        Deps::with_clock(store, Arc::new(SystemClock))
    }

    pub fn with_clock(store: S, clock: Arc<dyn Clock>) -> Deps<S> {
        Deps {
            store,
            clock,
            identity: identity::Identity::Claims(identity::ClaimNames::default()),
            self_service_top_up: true,
            order_windows: orders::OrderWindows::default(),
            coupon_gate: None,
            issue_budget: None,
            top_cache: None,
        }
    }

    pub fn with_coupon_gate(mut self, gate: Arc<dyn coupons::AdmissionGate>) -> Deps<S> {
        self.coupon_gate = Some(gate);
        self
    }
}

impl Deps<adapters::dynamodb::DynamoStore> {
    /// The production dependencies, from the environment: `TABLE_NAME`, and
    /// `COUPON_GATE=on` with `REDIS_URL` to put the Redis gate in front of coupon issue
    /// (see [`redis_endpoint`] for `REDIS_CA_FILE`).
    pub async fn from_env() -> anyhow::Result<Self> {
        Deps::from_store(adapters::dynamodb::DynamoStore::from_env().await?).await
    }

    /// [`Self::from_env`] over a store built elsewhere (the local API counts its calls).
    pub async fn from_store(store: adapters::dynamodb::DynamoStore) -> anyhow::Result<Self> {
        let gate = match std::env::var("COUPON_GATE").as_deref() {
            Ok("on") => {
                let url = std::env::var("REDIS_URL").context("COUPON_GATE=on needs REDIS_URL")?;
                let timeout = adapters::redis_connection::call_timeout_from_env()?;
                let gate =
                    adapters::redis_gate::RedisGate::with_call_timeout(redis_endpoint(url)?, store.table(), timeout)?;
                if !gate.ready(std::time::Duration::from_millis(500)).await {
                    tracing::warn!("coupon gate: Redis not reachable at start-up; stepping aside until it is");
                }
                Some(gate)
            }
            Ok("off") | Ok("") | Err(_) => None,
            Ok(other) => anyhow::bail!("COUPON_GATE must be on or off, not {other:?}"),
        };
        let top_cache = match (std::env::var("TOP5_CACHE").as_deref(), std::env::var("REDIS_URL")) {
            (Ok("off"), _) | (_, Err(_)) => None,
            (Ok("on") | Err(_), Ok(url)) => {
                let timeout = adapters::redis_connection::call_timeout_from_env()?;
                let cache = adapters::redis_top::RedisTopCache::with_call_timeout(
                    redis_endpoint(url)?,
                    store.table(),
                    top_cache_ttl(),
                    timeout,
                )?;
                if !cache.ready(std::time::Duration::from_millis(500)).await {
                    tracing::warn!("top-5 cache: Redis not reachable at start-up; answering from DynamoDB until it is");
                }
                Some(cache)
            }
            (Ok(other), _) => anyhow::bail!("TOP5_CACHE must be on or off, not {other:?}"),
        };
        let issue_budget = issue_budget_from_env(store.table()).await?;
        let mut deps = Deps::new(store);
        deps.issue_budget = issue_budget;
        deps.identity = identity::Identity::Claims(identity::ClaimNames::from_env());
        deps.self_service_top_up = match std::env::var("SELF_SERVICE_TOP_UP").as_deref() {
            Ok("on") | Ok("") | Err(_) => true,
            Ok("off") => false,
            Ok(other) => anyhow::bail!("SELF_SERVICE_TOP_UP must be on or off, not {other:?}"),
        };
        deps.order_windows = order_windows_from_env()?;
        if let Some(gate) = gate {
            tracing::info!("coupon admission gate on");
            deps.coupon_gate = Some(Arc::new(gate));
        }
        if let Some(cache) = top_cache {
            deps.top_cache = Some(Arc::new(cache));
        }
        Ok(deps)
    }
}

/// Each user's budget of coupon issue requests per second: `COUPON_USER_BUDGET` (a
/// number, default 5; `off` for none), kept on `REDIS_URL` (none without Redis).
async fn issue_budget_from_env(namespace: &str) -> anyhow::Result<Option<Arc<dyn coupons::IssueBudget>>> {
    let per_second = match std::env::var("COUPON_USER_BUDGET").as_deref() {
        Ok("off") => return Ok(None),
        Ok("") | Err(_) => DEFAULT_ISSUE_BUDGET,
        Ok(text) => text.parse().ok().filter(|n| *n > 0).with_context(|| {
            format!("COUPON_USER_BUDGET must be a positive number of requests per second or off, not {text:?}")
        })?,
    };
    // Deployed, issue-coupon has Redis only with CouponGate=on (REDIS_URL empty otherwise).
    let Some(url) = std::env::var("REDIS_URL").ok().filter(|url| !url.is_empty()) else { return Ok(None) };
    let timeout = adapters::redis_connection::call_timeout_from_env()?;
    let budget = adapters::redis_budget::RedisBudget::new(redis_endpoint(url)?, namespace, per_second, timeout)?;
    if !budget.ready(std::time::Duration::from_millis(500)).await {
        tracing::warn!("coupon issue budget: Redis not reachable at start-up; stepping aside until it is");
    }
    Ok(Some(Arc::new(budget)))
}

/// Redis at `url` (`REDIS_URL`), trusting for `rediss://` the CA certificates of the PEM
/// file `REDIS_CA_FILE` if it is set, and the public web roots otherwise. ElastiCache's
/// certificates chain to public roots and need no file; a Redis of one's own behind a
/// private CA (and the TLS test) does. A file that cannot be read or holds no
/// certificate, or a CA file beside a plain `redis://` URL, stops the start: TLS that
/// could never work must not pass for a Redis that is merely down.
pub fn redis_endpoint(url: String) -> anyhow::Result<adapters::redis_connection::RedisEndpoint> {
    let endpoint = adapters::redis_connection::RedisEndpoint::new(url);
    match std::env::var("REDIS_CA_FILE").ok().filter(|path| !path.is_empty()) {
        None => Ok(endpoint),
        Some(path) => endpoint.trusting_ca_file(&path).context("REDIS_CA_FILE"),
    }
}

/// A user's coupon issue requests per second, by default: a person clicks a few times,
/// a script thousands.
pub const DEFAULT_ISSUE_BUDGET: u32 = 5;

/// The order windows from `ORDER_PAYMENT_WINDOW` and `ORDER_REFUND_WINDOW` (seconds,
/// at least 1; unset or empty: 30 minutes and 7 days).
pub fn order_windows_from_env() -> anyhow::Result<orders::OrderWindows> {
    let defaults = orders::OrderWindows::default();
    Ok(orders::OrderWindows {
        payment: seconds_from_env("ORDER_PAYMENT_WINDOW")?.unwrap_or(defaults.payment),
        refund: seconds_from_env("ORDER_REFUND_WINDOW")?.unwrap_or(defaults.refund),
    })
}

/// A positive number of seconds from the environment; `None` when unset or empty.
fn seconds_from_env(name: &str) -> anyhow::Result<Option<time::Duration>> {
    match std::env::var(name).as_deref() {
        Err(_) | Ok("") => Ok(None),
        Ok(text) => match text.parse::<u32>() {
            Ok(seconds) if seconds > 0 => Ok(Some(time::Duration::seconds(seconds.into()))),
            _ => anyhow::bail!("{name} must be a positive number of seconds, not {text:?}"),
        },
    }
}

/// Makes aws-lc-rs the process's one rustls crypto provider. Every TLS client of the
/// process (the AWS SDK, reqwest, Redis over `rediss://`) then uses it; the build
/// holds no other provider (a test checks), so nothing has to choose. Idempotent.
pub fn install_crypto_provider() {
    // `Err` means a provider is installed already, which is the point.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// How often the top 5 is recomputed (`TOP5_REFRESH_SECONDS`, default 60).
pub fn top_refresh_period() -> std::time::Duration {
    let seconds = std::env::var("TOP5_REFRESH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60u64);
    std::time::Duration::from_secs(seconds.max(1))
}

/// The cached top 5 lives twice the refresh period plus 30 s, so one missed refresh
/// never empties the cache.
pub fn top_cache_ttl() -> std::time::Duration {
    top_refresh_period() * 2 + std::time::Duration::from_secs(30)
}
