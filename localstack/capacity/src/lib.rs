//! DynamoDB's per-partition capacity limits, as a proxy in front of the local engine.
//!
//! The local engine never throttles. On AWS a partition takes at most 1,000 write units
//! and 3,000 read units a second, on-demand tables too, and one partition key value
//! never gets more than one partition: a hot item is capped whatever the table's
//! capacity. This crate models that, and answers as DynamoDB does past the limits, so
//! that rushcart's code and the AWS SDK's retries meet the throttles they would meet
//! deployed (`CAPACITY=aws localstack/stack.sh start`; docs/local-stack.md).
//!
//! Never linked into a Lambda: only the stack's binary and its tests use it.
//!
//! # Layout
//!
//! The model is pure, on a clock the caller passes in; the proxy is the shell around it.
//!
//! - [`size`]: an item's size as DynamoDB counts it.
//! - [`units`]: what a read or a write of a size costs; the partition limits.
//! - [`schema`]: a table's keys, indexes and ARNs, from `DescribeTable`.
//! - [`expression`], [`update`]: the partition key of a `Query`; the item an
//!   `UpdateExpression` leaves.
//! - [`plan`]: a request's charges, per item, per partition of table and index.
//! - [`bucket`], [`model`]: the token buckets, admission and settlement, the table ceiling.
//! - [`metrics`]: the counters `GET /_capacity/metrics` shows.
//! - [`answer`]: the throttles in DynamoDB's JSON.
//! - [`clock`], [`proxy`]: the HTTP server in front of the engine.

pub mod answer;
pub mod bucket;
pub mod clock;
pub mod expression;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod proxy;
pub mod schema;
pub mod size;
pub mod units;
pub mod update;

pub use clock::Clock;
pub use model::{Limits, Model, BURST_SECONDS};
pub use proxy::{Config, Handle, Server, METRICS_PATH};
