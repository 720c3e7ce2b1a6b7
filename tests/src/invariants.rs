//! Invariant checks for tests, over `rushcart_testkit::audit`.

use rushcart::ids::UserId;
use rushcart::money::Money;
use rushcart_testkit::audit::{self, StoredLedger};
use rust_decimal::Decimal;

pub async fn read_ledger(client: &aws_sdk_dynamodb::Client, table: &str, user: u64) -> StoredLedger {
    audit::read_ledger(client, table, UserId::new(user).unwrap()).await.expect("read the ledger")
}

pub fn assert_ledger_consistent(ledger: &StoredLedger) {
    if let Err(violation) = audit::check_ledger(UserId::new(1).unwrap(), ledger) {
        panic!("ledger invariant violated: {violation:#}");
    }
}

pub fn money(text: &str) -> Decimal {
    Money::parse(text).unwrap().as_decimal()
}

/// Checks invariant 2 for `coupon`; returns (issued count, copies held).
pub async fn coupon_audit(app: &crate::TestApp, coupon: u64) -> (u64, u64) {
    let audit =
        rushcart_testkit::audit::check_coupon(app.client(), app.table(), rushcart::ids::CouponId::new(coupon).unwrap())
            .await
            .unwrap_or_else(|violation| panic!("coupon invariant violated: {violation:#}"));
    (audit.issued, audit.copies)
}

/// Users `range` with `balance` each, for `TestApp::seed_users`.
pub fn users(range: std::ops::RangeInclusive<u64>, balance: &'static str) -> Vec<(u64, &'static str)> {
    range.map(|id| (id, balance)).collect()
}
