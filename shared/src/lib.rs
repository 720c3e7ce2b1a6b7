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
pub mod pagination;
pub mod retry;
pub mod telemetry;

use std::sync::Arc;

use clock::{Clock, SystemClock};

/// What a handler needs: the store (any type implementing the ports it uses) and the
/// clock. Built once per process.
pub struct Deps<S> {
    pub store: S,
    pub clock: Arc<dyn Clock>,
}

impl<S> Deps<S> {
    pub fn new(store: S) -> Deps<S> {
        Deps { store, clock: Arc::new(SystemClock) }
    }

    pub fn with_clock(store: S, clock: Arc<dyn Clock>) -> Deps<S> {
        Deps { store, clock }
    }
}

impl Deps<adapters::dynamodb::DynamoStore> {
    /// The production dependencies, from the environment.
    pub async fn from_env() -> anyhow::Result<Self> {
        Ok(Deps::new(adapters::dynamodb::DynamoStore::from_env().await?))
    }
}
