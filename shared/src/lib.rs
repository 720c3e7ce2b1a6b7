//! rushcart: the core of a shop that holds up under a rush, as AWS Lambda functions.
//!
//! # Layout
//!
//! - [`money`], [`ids`], [`clock`], [`pagination`]: domain values, built only by parsing.
//! - [`balance`]: the customer balance — entries, ports (traits) and use cases.
//! - [`adapters`]: DynamoDB implementations of the ports, and in-memory ones for tests.
//! - [`http`]: extractors, the error → HTTP mapping, one handler per route.
//! - [`retry`]: bounded jittered backoff for transaction conflicts.
//! - [`telemetry`]: tracing set-up (JSON on Lambda).
//!
//! A function binary builds [`Deps`] once and passes every request to its handler.

pub mod adapters;
pub mod balance;
pub mod catalog;
pub mod clock;
pub mod coupons;
pub mod http;
pub mod ids;
pub mod money;
pub mod orders;
pub mod pagination;
pub mod retry;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context as _;

use clock::{Clock, SystemClock};

/// What a handler needs: the store (any type implementing the ports it uses), the
/// clock, and the optional coupon admission gate. Built once per process.
pub struct Deps<S> {
    pub store: S,
    pub clock: Arc<dyn Clock>,
    pub coupon_gate: Option<Arc<dyn coupons::AdmissionGate>>,
}

impl<S> Deps<S> {
    pub fn new(store: S) -> Deps<S> {
        Deps { store, clock: Arc::new(SystemClock), coupon_gate: None }
    }

    pub fn with_clock(store: S, clock: Arc<dyn Clock>) -> Deps<S> {
        Deps { store, clock, coupon_gate: None }
    }

    pub fn with_coupon_gate(mut self, gate: Arc<dyn coupons::AdmissionGate>) -> Deps<S> {
        self.coupon_gate = Some(gate);
        self
    }
}

impl Deps<adapters::dynamodb::DynamoStore> {
    /// The production dependencies, from the environment: `TABLE_NAME`, and
    /// `COUPON_GATE=on` with `REDIS_URL` to put the Redis gate in front of coupon issue.
    pub async fn from_env() -> anyhow::Result<Self> {
        let store = adapters::dynamodb::DynamoStore::from_env().await?;
        let gate = match std::env::var("COUPON_GATE").as_deref() {
            Ok("on") => {
                let url = std::env::var("REDIS_URL").context("COUPON_GATE=on needs REDIS_URL")?;
                let gate = adapters::redis_gate::RedisGate::new(&url, store.table())?;
                if !gate.ready(std::time::Duration::from_millis(500)).await {
                    tracing::warn!("coupon gate: Redis not reachable at start-up; stepping aside until it is");
                }
                Some(gate)
            }
            Ok("off") | Ok("") | Err(_) => None,
            Ok(other) => anyhow::bail!("COUPON_GATE must be on or off, not {other:?}"),
        };
        let deps = Deps::new(store);
        Ok(match gate {
            Some(gate) => {
                tracing::info!("coupon admission gate on");
                deps.with_coupon_gate(Arc::new(gate))
            }
            None => deps,
        })
    }
}
