//! In-memory adapters for unit and handler tests. They keep the same rules as the
//! DynamoDB ones (bounds, one entry per change, idempotency) behind one mutex; the
//! integration tests hold the DynamoDB adapters to the same behaviour.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::balance::{
    cursor_after, cursor_seq, Applied, BalanceChange, BalanceError, BalanceHistory, BalanceLedger, BalanceReader,
    EntryKind, LedgerEntry,
};
use crate::ids::{EntryId, UserId};
use crate::money::Money;
use crate::pagination::{Page, PageRequest};

#[derive(Debug, Default)]
struct Account {
    balance: Money,
    entries: Vec<LedgerEntry>,
    /// key → (fingerprint, index into `entries`)
    idempotency: HashMap<String, (String, usize)>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    accounts: Mutex<HashMap<UserId, Account>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Adds a user whose opening balance is entry 1, as seeding does.
    pub fn add_user(&self, user: UserId, balance: Money) {
        let mut account = Account { balance, ..Account::default() };
        if balance > Money::ZERO {
            account.entries.push(LedgerEntry {
                id: EntryId::generate(),
                seq: 1,
                kind: EntryKind::Charge,
                amount: balance,
                balance_after: balance,
                created_at: time::OffsetDateTime::UNIX_EPOCH,
            });
        }
        self.lock().insert(user, account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Account>> {
        self.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BalanceReader for MemoryStore {
    async fn balance(&self, user: UserId) -> Result<Money, BalanceError> {
        self.lock().get(&user).map(|a| a.balance).ok_or(BalanceError::UnknownUser(user))
    }
}

impl BalanceLedger for MemoryStore {
    async fn apply(&self, change: BalanceChange) -> Result<Applied, BalanceError> {
        let mut accounts = self.lock();
        let account = accounts.get_mut(&change.user).ok_or(BalanceError::UnknownUser(change.user))?;
        if let Some(key) = &change.idempotency_key {
            if let Some((fingerprint, index)) = account.idempotency.get(key.as_str()) {
                if *fingerprint != change.fingerprint() {
                    return Err(BalanceError::IdempotencyKeyReused);
                }
                return Ok(Applied { entry: account.entries[*index].clone(), replayed: true });
            }
        }
        let amount = change.amount.money();
        let balance_after = match change.kind {
            EntryKind::Charge => account.balance.checked_add(amount).map_err(|_| BalanceError::BalanceLimitExceeded)?,
            EntryKind::Use => account.balance.checked_sub(amount).map_err(|_| BalanceError::InsufficientBalance)?,
        };
        let entry = LedgerEntry {
            id: change.id,
            seq: account.entries.last().map_or(1, |e| e.seq + 1),
            kind: change.kind,
            amount,
            balance_after,
            created_at: change.at,
        };
        account.balance = balance_after;
        account.entries.push(entry.clone());
        if let Some(key) = &change.idempotency_key {
            account.idempotency.insert(key.as_str().to_owned(), (change.fingerprint(), account.entries.len() - 1));
        }
        Ok(Applied { entry, replayed: false })
    }
}

impl BalanceHistory for MemoryStore {
    async fn history(&self, user: UserId, page: PageRequest) -> Result<Page<LedgerEntry>, BalanceError> {
        let before = match &page.cursor {
            None => u64::MAX,
            Some(cursor) => cursor_seq(cursor).ok_or(BalanceError::BadCursor)?,
        };
        let accounts = self.lock();
        let account = accounts.get(&user).ok_or(BalanceError::UnknownUser(user))?;
        let mut items: Vec<LedgerEntry> =
            account.entries.iter().rev().filter(|e| e.seq < before).take(page.limit as usize + 1).cloned().collect();
        let has_more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| has_more).map(|e| cursor_after(e.seq));
        Ok(Page { items, next })
    }
}
