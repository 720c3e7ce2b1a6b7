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
            EntryKind::Use | EntryKind::Payment => {
                account.balance.checked_sub(amount).map_err(|_| BalanceError::InsufficientBalance)?
            }
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

/// Catalogue and coupons in memory, for handler tests.
#[derive(Debug, Default)]
pub struct MemoryShop {
    pub products: Mutex<Vec<crate::catalog::Product>>,
    pub coupons: Mutex<HashMap<crate::ids::CouponId, crate::coupons::Coupon>>,
    pub copies: Mutex<Vec<crate::coupons::IssuedCoupon>>,
    pub users: Mutex<std::collections::HashSet<UserId>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl crate::catalog::ProductCatalog for MemoryShop {
    async fn product(
        &self,
        id: crate::ids::ProductId,
    ) -> Result<crate::catalog::Product, crate::catalog::CatalogError> {
        let products = locked(&self.products);
        products.iter().find(|p| p.product_id == id).cloned().ok_or(crate::catalog::CatalogError::UnknownProduct(id))
    }

    async fn products(&self, page: PageRequest) -> Result<Page<crate::catalog::Product>, crate::catalog::CatalogError> {
        let after = match &page.cursor {
            None => None,
            Some(cursor) => {
                Some(crate::catalog::cursor_product(cursor).ok_or(crate::catalog::CatalogError::BadCursor)?)
            }
        };
        let mut items: Vec<_> =
            locked(&self.products).iter().filter(|p| after.is_none_or(|a| p.product_id > a)).cloned().collect();
        items.sort_by_key(|p| p.product_id);
        let has_more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| has_more).map(|p| crate::catalog::cursor_after(p.product_id));
        Ok(Page { items, next })
    }
}

impl crate::coupons::CouponReader for MemoryShop {
    async fn coupon(&self, id: crate::ids::CouponId) -> Result<crate::coupons::Coupon, crate::coupons::CouponError> {
        locked(&self.coupons).get(&id).cloned().ok_or(crate::coupons::CouponError::UnknownCoupon(id))
    }
}

impl crate::coupons::CouponIssuer for MemoryShop {
    async fn terms(&self, id: crate::ids::CouponId) -> Result<crate::coupons::Coupon, crate::coupons::CouponError> {
        crate::coupons::CouponReader::coupon(self, id).await
    }

    async fn issue(
        &self,
        id: crate::ids::CouponId,
        user: UserId,
        now: time::OffsetDateTime,
    ) -> Result<crate::coupons::IssuedCoupon, crate::coupons::CouponError> {
        use crate::coupons::CouponError;
        let mut coupons = locked(&self.coupons);
        let coupon = coupons.get_mut(&id).ok_or(CouponError::UnknownCoupon(id))?;
        if !locked(&self.users).contains(&user) {
            return Err(CouponError::UnknownUser(user));
        }
        let mut copies = locked(&self.copies);
        if copies.iter().any(|c| c.coupon_id == id && c.user_id == user) {
            return Err(CouponError::AlreadyIssued(id, user));
        }
        if coupon.has_ended(now) {
            return Err(CouponError::Expired(id));
        }
        if coupon.issued >= coupon.total {
            return Err(CouponError::SoldOut(id));
        }
        coupon.issued += 1;
        let copy = crate::coupons::IssuedCoupon {
            coupon_id: id,
            user_id: user,
            name: coupon.name.clone(),
            discount: coupon.discount,
            issued_at: now,
            expires_at: coupon.ends_at,
            used_at: None,
        };
        copies.push(copy.clone());
        Ok(copy)
    }
}

impl crate::coupons::UserCoupons for MemoryShop {
    async fn user_coupons(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<crate::coupons::IssuedCoupon>, crate::coupons::CouponError> {
        use crate::coupons::{cursor_after, cursor_coupon, CouponError};
        let after = match &page.cursor {
            None => None,
            Some(cursor) => Some(cursor_coupon(cursor).ok_or(CouponError::BadCursor)?),
        };
        if !locked(&self.users).contains(&user) {
            return Err(CouponError::UnknownUser(user));
        }
        let mut items: Vec<_> = locked(&self.copies)
            .iter()
            .filter(|c| c.user_id == user && after.is_none_or(|a| c.coupon_id > a))
            .cloned()
            .collect();
        items.sort_by_key(|c| c.coupon_id);
        let has_more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| has_more).map(|c| cursor_after(c.coupon_id));
        Ok(Page { items, next })
    }
}
