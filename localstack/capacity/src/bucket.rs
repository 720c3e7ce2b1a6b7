//! A token bucket on a clock the caller passes in (`now`, the time since the model
//! began), so that every threshold can be pinned by a test without sleeping.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Units added a second.
    rate: f64,
    /// The most it holds.
    capacity: f64,
    /// What it holds; below zero after a read that cost more than it had.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Duration,
}

impl Bucket {
    /// A bucket that holds `capacity` units at `now` and gains `rate` a second.
    pub fn full(rate: f64, capacity: f64, now: Duration) -> Bucket {
        Bucket { rate, capacity, tokens: capacity, at: now }
    }

    /// Adds what has accrued since it was last brought up to date.
    pub fn refill(&mut self, now: Duration) {
        if let Some(elapsed) = now.checked_sub(self.at) {
            self.tokens = (self.tokens + self.rate * elapsed.as_secs_f64()).min(self.capacity);
            self.at = now;
        }
    }

    /// Whether it can pay `units` now. A charge larger than the whole bucket (a 400 KB
    /// item on a partition scaled down below 400 write units a second) is paid when
    /// the bucket is full, and leaves it below zero.
    pub fn fits(&self, units: f64) -> bool {
        self.tokens >= units || (units > self.capacity && self.tokens >= self.capacity)
    }

    /// Pays `units`, below zero if need be.
    pub fn take(&mut self, units: f64) {
        self.tokens -= units;
    }

    /// Returns what [`Bucket::take`] took at the same `now` (a refused transaction).
    pub fn give_back(&mut self, units: f64) {
        self.tokens = (self.tokens + units).min(self.capacity);
    }

    pub fn is_full(&self) -> bool {
        self.tokens >= self.capacity
    }

    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn it_pays_what_it_holds_and_refills_at_its_rate() {
        let mut bucket = Bucket::full(10.0, 10.5, ms(0));
        for _ in 0..10 {
            assert!(bucket.fits(1.0));
            bucket.take(1.0);
        }
        assert!(!bucket.fits(1.0), "0.5 left");
        bucket.refill(ms(40));
        assert!(!bucket.fits(1.0), "0.9 after 40 ms");
        bucket.refill(ms(60));
        assert!(bucket.fits(1.0), "1.1 after 60 ms");
        bucket.refill(ms(60_000));
        assert_eq!(bucket.tokens(), 10.5, "never more than its capacity");
        assert!(bucket.is_full());
    }

    #[test]
    fn a_charge_larger_than_the_bucket_is_paid_only_from_full_and_leaves_a_debt() {
        let mut bucket = Bucket::full(2.0, 2.1, ms(0));
        assert!(bucket.fits(4.0));
        bucket.take(4.0);
        assert!(bucket.tokens() < 0.0);
        bucket.refill(ms(1000));
        assert!(!bucket.fits(4.0) && !bucket.fits(1.0), "still paying the debt");
        bucket.refill(ms(2000));
        assert!(bucket.fits(1.0));
    }

    #[test]
    fn what_is_given_back_is_as_if_never_taken() {
        let mut bucket = Bucket::full(10.0, 10.5, ms(0));
        bucket.take(3.0);
        bucket.give_back(3.0);
        assert!(bucket.is_full());
    }
}
