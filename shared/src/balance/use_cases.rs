//! The four balance use cases. Each takes parsed domain values, so nothing here
//! re-validates input; the ports do the I/O.

use crate::balance::{
    Applied, BalanceChange, BalanceError, BalanceHistory, BalanceLedger, BalanceReader, EntryKind, LedgerEntry,
};
use crate::clock::Clock;
use crate::ids::{EntryId, IdempotencyKey, UserId};
use crate::money::{Amount, Money};
use crate::pagination::{Page, PageRequest};

pub async fn get_balance(store: &impl BalanceReader, user: UserId) -> Result<Money, BalanceError> {
    store.balance(user).await
}

pub async fn charge(
    store: &impl BalanceLedger,
    clock: &dyn Clock,
    user: UserId,
    amount: Amount,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<Applied, BalanceError> {
    change(store, clock, user, EntryKind::Charge, amount, idempotency_key).await
}

/// An operator credits `user` (`Idempotency-Key` among the operators').
pub async fn credit(
    store: &impl BalanceLedger,
    clock: &dyn Clock,
    user: UserId,
    amount: Amount,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<Applied, BalanceError> {
    change(store, clock, user, EntryKind::Credit, amount, idempotency_key).await
}

pub async fn use_balance(
    store: &impl BalanceLedger,
    clock: &dyn Clock,
    user: UserId,
    amount: Amount,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<Applied, BalanceError> {
    change(store, clock, user, EntryKind::Use, amount, idempotency_key).await
}

pub async fn history(
    store: &impl BalanceHistory,
    clock: &dyn Clock,
    user: UserId,
    page: PageRequest,
) -> Result<Page<LedgerEntry>, BalanceError> {
    store.history(user, page, clock.now()).await
}

async fn change(
    store: &impl BalanceLedger,
    clock: &dyn Clock,
    user: UserId,
    kind: EntryKind,
    amount: Amount,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<Applied, BalanceError> {
    let change =
        BalanceChange { id: EntryId::generate(), user, kind, amount, order: None, at: clock.now(), idempotency_key };
    store.apply(change).await
}
