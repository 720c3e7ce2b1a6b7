//! The time the model runs on: the wall clock's, or one a test moves by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Clock {
    /// Time since the proxy started.
    System(Instant),
    /// Time as a test sets it, in nanoseconds from zero: it stands still until moved.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn system() -> Clock {
        Clock::System(Instant::now())
    }

    pub fn manual() -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(0)))
    }

    pub fn now(&self) -> Duration {
        match self {
            Clock::System(start) => start.elapsed(),
            Clock::Manual(nanos) => Duration::from_nanos(nanos.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock on; the system clock moves by itself.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(nanos) = self {
            nanos.fetch_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let clock = Clock::manual();
        let shared = clock.clone();
        assert_eq!(clock.now(), Duration::ZERO);
        shared.advance(Duration::from_millis(250));
        assert_eq!(clock.now(), Duration::from_millis(250));
    }
}
