//! Bounded, jittered backoff for optimistic-concurrency conflicts.
//!
//! DynamoDB cancels a transaction with `TransactionConflict` when another transaction
//! holds one of its items; retrying soon usually succeeds. "Full jitter" (a uniform
//! delay below an exponentially growing cap) spreads the retries of a crowd apart.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// For transaction conflicts: up to 8 retries, delays below 5 ms · 2ⁿ, at most 250 ms.
    pub const TRANSACTION_CONFLICT: RetryPolicy =
        RetryPolicy { max_retries: 8, base: Duration::from_millis(5), cap: Duration::from_millis(250) };

    /// For the keys a `BatchGetItem` left unprocessed (DynamoDB does that when
    /// throttled): up to 5 more requests, delays below 10 ms · 2ⁿ, at most 200 ms.
    pub const UNPROCESSED_KEYS: RetryPolicy =
        RetryPolicy { max_retries: 5, base: Duration::from_millis(10), cap: Duration::from_millis(200) };

    /// For a payment whose stock bucket was short while the product's other buckets
    /// hold its line (a crowd reading the same buckets picks alike): up to 11 more
    /// tries from the buckets read again, delays below 2 ms · 2ⁿ, at most 100 ms.
    pub const STOCK_BUCKETS: RetryPolicy =
        RetryPolicy { max_retries: 11, base: Duration::from_millis(2), cap: Duration::from_millis(100) };

    /// The delay before retry number `retry` (0-based), or `None` once retries are spent.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let ceiling = self.base.saturating_mul(1u32 << retry.min(16)).min(self.cap);
        let millis = ceiling.as_millis() as u64;
        Some(Duration::from_millis(fastrand::u64(0..=millis)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_ceiling_and_the_cap() {
        let policy = RetryPolicy::TRANSACTION_CONFLICT;
        for retry in 0..policy.max_retries {
            let ceiling = (policy.base * (1 << retry)).min(policy.cap);
            for _ in 0..200 {
                assert!(policy.delay(retry).unwrap() <= ceiling);
            }
        }
    }

    #[test]
    fn retries_are_bounded() {
        let policy = RetryPolicy::TRANSACTION_CONFLICT;
        assert!(policy.delay(policy.max_retries - 1).is_some());
        assert_eq!(policy.delay(policy.max_retries), None);
    }

    #[test]
    fn delays_are_jittered_not_fixed() {
        let policy = RetryPolicy { max_retries: 3, base: Duration::from_millis(100), cap: Duration::from_secs(1) };
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| policy.delay(2)).collect();
        assert!(distinct.len() > 5, "got {distinct:?}");
    }
}
