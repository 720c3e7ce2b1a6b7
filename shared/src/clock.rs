//! Time as a dependency: the domain asks a [`Clock`], so tests can move it.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    pub fn at(start: OffsetDateTime) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(start.to_offset(time::UtcOffset::UTC))))
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The one time format of the API and the tables: RFC 3339 in UTC with millisecond
/// precision (`2026-11-24T10:00:00.000Z`).
const RFC3339_MILLIS: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

// `#[serde(with = "crate::clock::rfc3339_millis")]` (and `…::option`) on a response
// field. The format writes `Z`, so the times it is given are UTC: the clock's are, and
// so is every time read back from a table.
time::serde::format_description!(pub rfc3339_millis, OffsetDateTime, RFC3339_MILLIS);

/// [`RFC3339_MILLIS`] as text, from any offset.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.format(RFC3339_MILLIS).unwrap_or_else(|_| at.unix_timestamp().to_string())
}
