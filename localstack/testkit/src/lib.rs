//! rushcart's kit for everything that is not a Lambda: the local run (`make run`), the
//! admin CLI, the benchmarks and the tests. The production crate `rushcart` holds only
//! what the functions run; this crate builds on it.
//!
//! - [`seed`]: the demo data and the tests' data, written as the adapters shape it.
//! - [`audit`]: the invariants, checked straight from the tables.
//! - [`feed`]: the local feed's pollers, which do what AWS's event source mappings do.
//! - [`channels`]: the feed's queues and stream provisioned as `template.yaml` makes
//!   them, and the operator's look at the dead-letter queue and its redrive.
//! - [`counters`]: the store's work, counted for tests and benchmarks.

pub mod audit;
pub mod channels;
pub mod counters;
pub mod feed;
pub mod seed;
