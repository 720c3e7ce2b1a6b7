//! The race tests under DynamoDB's capacity model (`RUSHCART_TEST_CAPACITY=<scale>`,
//! `make test-races`): every test app's tables sit behind a model of their own
//! ([`crate::TestApp::throttled`] reads its count).
//!
//! What a race test may accept there, and only there: a `503 SERVICE_UNAVAILABLE` (with
//! `Retry-After`, which every test's read checks) from a function whose one item or one
//! user's partition stayed past its ceiling after the SDK's and the function's retries.
//! Such an answer changed nothing, and the tests that accept it prove that from the
//! table: their counts of successes are the database's, their invariants are audited.
//! A 500, a 504 or an oversell is never accepted. Without the model, [`unavailable`] is
//! always false, so every test asserts what it did before.

pub use crate::{capacity_scale, under_capacity};

/// A throttle surfaced to the client: under the model, a 503 `SERVICE_UNAVAILABLE`
/// (with `Retry-After`); without it, nothing is.
pub fn unavailable(status: u16, body: &serde_json::Value) -> bool {
    under_capacity() && status == 503 && body["code"] == "SERVICE_UNAVAILABLE"
}

/// How many of `answers` are [`unavailable`].
pub fn count_unavailable<'a>(answers: impl IntoIterator<Item = &'a (u16, serde_json::Value)>) -> usize {
    answers.into_iter().filter(|(status, body)| unavailable(*status, body)).count()
}

/// What a rush of `sent` requests for `left` units (copies of a coupon, say) must come to
/// when `unavailable` of them were answered 503: a 503 took nothing and "sold out" is
/// answered only once nothing is left, so the others take `min(left, sent −
/// unavailable)` units and the rest are refused. Returns (taken, refused); without the
/// model (`unavailable` = 0) that is the plain `(min(left, sent), sent − that)`.
pub fn rush_outcome(left: usize, sent: usize, unavailable: usize) -> (usize, usize) {
    let answered = sent - unavailable;
    let taken = left.min(answered);
    (taken, answered - taken)
}
