//! The customer balance (the baseline's "point" wallet): its ledger entries, the ports
//! the use cases need, and the use cases' errors.
//!
//! Every change of a balance is a [`LedgerEntry`] committed atomically with the new
//! balance; entries are numbered per user (`seq`) in commit order and carry the exact
//! balance after them, so the balance always equals the sum of the user's entries.

pub mod use_cases;

use std::future::Future;

use time::OffsetDateTime;

use crate::ids::{EntryId, IdempotencyKey, OrderId, UserId};
use crate::money::{Amount, Money};
use crate::pagination::{Cursor, Page, PageRequest};

/// What kind of change an entry records; the sign of its amount follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryKind {
    /// Money added by the customer (also the opening balance of seeded users).
    Charge,
    /// Money an operator credits a customer with (a shop whose payment provider tops
    /// balances up); its `Idempotency-Key` is among the operators', not the customer's.
    Credit,
    /// Money spent directly from the balance.
    Use,
    /// An order paid from the balance.
    Payment,
    /// A paid order's total given back when it was cancelled.
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "CHARGE",
            EntryKind::Credit => "CREDIT",
            EntryKind::Use => "USE",
            EntryKind::Payment => "PAYMENT",
            EntryKind::Refund => "REFUND",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        match text {
            "CHARGE" => Some(EntryKind::Charge),
            "CREDIT" => Some(EntryKind::Credit),
            "USE" => Some(EntryKind::Use),
            "PAYMENT" => Some(EntryKind::Payment),
            "REFUND" => Some(EntryKind::Refund),
            _ => None,
        }
    }

    /// Whether the entry adds to the balance (`true`) or takes from it.
    pub fn is_credit(self) -> bool {
        matches!(self, EntryKind::Charge | EntryKind::Credit | EntryKind::Refund)
    }
}

/// One committed change of a user's balance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub id: EntryId,
    /// 1, 2, 3 … per user, in commit order.
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Always positive; `kind` gives the direction.
    pub amount: Money,
    pub balance_after: Money,
    /// The order a payment paid or a refund gave back (absent for other kinds).
    #[serde(rename = "orderId", skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub order: Option<OrderId>,
    /// When the request that made the change was handled (its function's clock, read
    /// before the commit). `seq` is the commit order; two changes racing for one user
    /// may commit in the other order than their clocks read, so `createdAt` can step
    /// back by the length of that race from one `seq` to the next. Order entries by
    /// `seq`, never by `createdAt`.
    #[serde(with = "crate::clock::rfc3339_millis")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A user's balance as one read found it: the balance and the seq of its newest entry.
/// A change that commits only while the seq is still `seq` knows its entry before it
/// commits: `seq + 1`, with the balance moved by its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceSeen {
    pub balance: Money,
    pub seq: u64,
}

impl BalanceSeen {
    /// The entry `change`, a debit, makes if it commits while the balance is still as
    /// seen: the next seq, with exactly the amount less. `None` when the balance seen
    /// does not cover it.
    pub fn debited(&self, change: &BalanceChange) -> Option<LedgerEntry> {
        let amount = change.amount.money();
        let balance_after = self.balance.checked_sub(amount).ok()?;
        Some(LedgerEntry {
            id: change.id,
            seq: self.seq + 1,
            kind: change.kind,
            amount,
            balance_after,
            order: change.order,
            created_at: change.at,
        })
    }
}

/// A request to change a balance, fully parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceChange {
    pub id: EntryId,
    pub user: UserId,
    pub kind: EntryKind,
    pub amount: Amount,
    /// The order a payment pays or a refund gives back.
    pub order: Option<OrderId>,
    pub at: OffsetDateTime,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl BalanceChange {
    /// What an idempotent retry must repeat exactly for its key to be honoured.
    pub fn fingerprint(&self) -> String {
        format!("{}:{}:{}", self.kind.as_str(), self.user, self.amount)
    }
}

/// The outcome of [`BalanceLedger::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub entry: LedgerEntry,
    /// True when an `Idempotency-Key` matched an earlier change, which is returned as it
    /// was and not applied again.
    pub replayed: bool,
}

/// Errors of the balance ports and use cases.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    #[error("the balance is lower than the amount")]
    InsufficientBalance,
    #[error("the balance would exceed its maximum of 1000000000.00")]
    BalanceLimitExceeded,
    #[error("cursor is not one this API issued")]
    BadCursor,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// A dependency is down or too slow; the change did not happen, a retry is safe.
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Reads a user's current balance.
pub trait BalanceReader: Send + Sync {
    fn balance(&self, user: UserId) -> impl Future<Output = Result<Money, BalanceError>> + Send;
}

/// Applies one change atomically with its ledger entry; honours idempotency keys.
pub trait BalanceLedger: Send + Sync {
    fn apply(&self, change: BalanceChange) -> impl Future<Output = Result<Applied, BalanceError>> + Send;
}

/// Pages through a user's ledger entries, newest first. `now` tells an entry its
/// writer abandoned (too old to still be in flight) from one being finished.
pub trait BalanceHistory: Send + Sync {
    fn history(
        &self,
        user: UserId,
        page: PageRequest,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Page<LedgerEntry>, BalanceError>> + Send;
}

/// The cursor of a history page that ended at entry `seq`; the next page starts below it.
pub fn cursor_after(seq: u64) -> Cursor {
    Cursor::encode(&format!("h:{seq}"))
}

/// The `seq` a history cursor points below, if it is one this API issued.
pub fn cursor_seq(cursor: &Cursor) -> Option<u64> {
    cursor.position().strip_prefix("h:").and_then(|seq| seq.parse::<u64>().ok()).filter(|seq| *seq > 0)
}
