//! The store's work, counted: what a test asserts on and a benchmark reports (how many
//! issue transactions reached DynamoDB, how often the top 5 was computed, how often a
//! payment found its balance moved).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rushcart::adapters::dynamodb::{DynamoStore, StoreProbe};

/// Counts what a store tells its probe.
#[derive(Debug, Default)]
pub struct StoreCounters {
    coupon_issue_writes: AtomicU64,
    top_computations: AtomicU64,
    payments_moved: AtomicU64,
}

impl StoreProbe for StoreCounters {
    fn coupon_issue_sent(&self) {
        self.coupon_issue_writes.fetch_add(1, Ordering::Relaxed);
    }

    fn top_computed(&self) {
        self.top_computations.fetch_add(1, Ordering::Relaxed);
    }

    fn payment_balance_moved(&self) {
        self.payments_moved.fetch_add(1, Ordering::Relaxed);
    }
}

impl StoreCounters {
    /// `store` counted by fresh counters (and every clone of it).
    pub fn attach(store: DynamoStore) -> DynamoStore {
        store.with_probe(Arc::new(StoreCounters::default()))
    }

    /// The counters `store` tells, if [`StoreCounters::attach`] gave it some.
    pub fn of(store: &DynamoStore) -> Option<&StoreCounters> {
        let probe: &dyn std::any::Any = store.probe()?.as_ref();
        probe.downcast_ref()
    }

    /// Issue transactions sent to DynamoDB, retries included.
    pub fn coupon_issue_writes(&self) -> u64 {
        self.coupon_issue_writes.load(Ordering::Relaxed)
    }

    /// Times the top 5 was computed from the sales figures.
    pub fn top_computations(&self) -> u64 {
        self.top_computations.load(Ordering::Relaxed)
    }

    /// Times a payment found its payer's balance moved since it read it.
    pub fn payments_moved(&self) -> u64 {
        self.payments_moved.load(Ordering::Relaxed)
    }
}
