//! Coupons on DynamoDB (keys in [`super::keys`]).
//!
//! | item | attributes |
//! |---|---|
//! | coupon | couponId, name, discount, total, endsAt, shards; issued (unsharded) |
//! | a shard of a sharded coupon's count | couponId, shard, total (its share), issued, endsAt |
//! | a user's copy | couponId, userId, name, discount, issuedAt, usableUntil, usedAt?, orderId? |
//!
//! A coupon of one shard counts on its own item; a sharded one on its shards' items,
//! each a partition of its own ([`crate::coupons`] says why and how many). Issuing is
//! one `TransactWriteItems`:
//! 1. `Update` the counter (the coupon, or one shard) `SET issued = issued + 1` under
//!    `attribute_exists(pk) AND issued < total AND endsAt > :now`;
//! 2. `ConditionCheck USER#u/PROFILE` `attribute_exists(pk)`;
//! 3. `Put USER#u/COUPON#c` under `attribute_not_exists(pk)`;
//! 4. with an `Idempotency-Key`, its record under `attribute_not_exists(pk)`.
//!
//! So no counter passes its total, and so the coupon's total is never passed; each user
//! holds at most one copy; the copies equal the counts' sum; and nothing is issued once
//! the coupon has ended. The failed items say which rule refused ([`refusal`]). A shard
//! found empty is tried no more by this process (a count never goes down), and the
//! issue goes on to the next; "sold out" is every shard found empty. A shard DynamoDB
//! throttles (its partition over its limit) is passed over for the next too, and only
//! waited out, with the usual retries, when every shard left was throttled.
//!
//! A coupon's name, discount, total, end date and shards never change, so they are
//! cached per process.

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::types::{ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, Update};
use time::OffsetDateTime;

use super::counters::{Created, NumberedKey};
use super::idempotency::{KeyReused, Record, Target};
use super::keys::KeyScope;
use super::transaction::{Refusal, Transaction, Tried};
use super::{db_error, get_money, get_optional_time, get_s, get_time, get_u64, keys, n, s, DbError, DynamoStore, Item};
use crate::catalog::Keyed;
use crate::clock::rfc3339;
use crate::coupons::{
    cursor_after, cursor_coupon, issue_fingerprint, use_cases, Coupon, CouponAdmin, CouponError, CouponIssuer,
    CouponReader, IssuedCoupon, NewCoupon, UserCoupons,
};
use crate::ids::{CouponId, IdempotencyKey, UserId};
use crate::pagination::{Page, PageRequest};

impl From<DbError> for CouponError {
    fn from(err: DbError) -> CouponError {
        match err {
            DbError::Unavailable(e) => CouponError::Unavailable(e),
            DbError::Other(e) => CouponError::Unexpected(e),
        }
    }
}

/// The items of an issue transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueItem {
    /// The count taken from: the coupon's, or one shard's (its old image comes back on
    /// failure).
    Count,
    /// The user's profile, which must exist.
    User,
    /// The user's copy, which must not.
    Copy,
    /// The request's `Idempotency-Key`, which must be new.
    Key,
}

/// What a refused issue means.
#[derive(Debug)]
pub enum IssueRefused {
    /// The key issued a copy before: answer that copy.
    KeyUsed,
    /// The counter tried has none left; another shard may.
    CounterEmpty,
    /// An answer for the client.
    Refused(CouponError),
}

/// What a refused issue means. The key wins (a retry whose first request was issued);
/// then an existing copy (the user already holds one, even if the coupon is also sold
/// out by now); a failed count on a counter that exists is empty, or expired once the
/// end has passed.
pub fn refusal(refused: &Refusal<IssueItem>, coupon: CouponId, user: UserId, now: OffsetDateTime) -> IssueRefused {
    if refused.failed(IssueItem::Key) {
        return IssueRefused::KeyUsed;
    }
    if refused.failed(IssueItem::Copy) {
        return IssueRefused::Refused(CouponError::AlreadyIssued(coupon, user));
    }
    if refused.failed(IssueItem::User) {
        return IssueRefused::Refused(CouponError::UnknownUser(user));
    }
    match refused.old_item(IssueItem::Count).filter(|item| item.contains_key("pk")) {
        None => IssueRefused::Refused(CouponError::UnknownCoupon(coupon)),
        Some(old) => {
            let ended = get_s(old, "endsAt").map(|ends| ends <= rfc3339(now).as_str()).unwrap_or(false);
            if ended {
                IssueRefused::Refused(CouponError::Expired(coupon))
            } else {
                IssueRefused::CounterEmpty
            }
        }
    }
}

impl CouponReader for DynamoStore {
    async fn coupon(&self, id: CouponId) -> Result<Coupon, CouponError> {
        let item = self.get(&keys::coupon(id), || format!("get coupon {id}")).await?;
        let item = item.ok_or(CouponError::UnknownCoupon(id))?;
        let mut coupon = coupon_from_item(&item)?;
        if coupon.shards > 1 {
            let shards: Vec<keys::Key> = (0..coupon.shards).map(|k| keys::coupon_shard(id, k)).collect();
            let found = self.get_many(&shards, || format!("get the shards of coupon {id}")).await?;
            if found.len() != shards.len() {
                return Err(anyhow!("coupon {id} has {} of its {} shards", found.len(), shards.len()).into());
            }
            coupon.issued = found.values().map(|shard| get_u64(shard, "issued")).sum::<anyhow::Result<u64>>()?;
        }
        Ok(coupon)
    }
}

impl CouponIssuer for DynamoStore {
    async fn terms(&self, coupon: CouponId) -> Result<Coupon, CouponError> {
        self.coupon_terms(coupon).await
    }

    async fn issue(
        &self,
        coupon: CouponId,
        user: UserId,
        key: Option<&IdempotencyKey>,
        now: OffsetDateTime,
    ) -> Result<Keyed<IssuedCoupon>, CouponError> {
        let terms = self.coupon_terms(coupon).await?;
        if terms.has_ended(now) {
            return use_cases::refused(self, coupon, user, key, CouponError::Expired(coupon)).await;
        }
        let copy = terms.copy_for(user, now);
        let record = key.map(|key| Record {
            scope: user.into(),
            key,
            fingerprint: issue_fingerprint(coupon),
            target: Target::Coupon(coupon),
            entry: None,
            at: now,
        });
        // Each shard once, a throttled one passed over for the next (its partition is
        // over its limit; another's may not be); then the throttled ones again, waited
        // out. A lone counter is waited out at once.
        let mut left = self.counters_to_try(&terms);
        let mut patient = left.len() <= 1;
        while !left.is_empty() {
            let mut throttled = Vec::new();
            for shard in left {
                // Every attempt is a write DynamoDB must take: the count a gate keeps low.
                let mut transaction = self.issue_transaction(&terms, &copy, shard, record.as_ref(), now)?;
                if let Some(probe) = self.probe() {
                    let probe = probe.clone();
                    transaction = transaction.on_each_attempt(std::sync::Arc::new(move || probe.coupon_issue_sent()));
                }
                let tried = match patient {
                    false => self.transact_or_throttled(&transaction).await?,
                    true => self.transact(&transaction).await?.map_or_else(Tried::Refused, |()| Tried::Committed),
                };
                let refused = match tried {
                    Tried::Committed => return Ok(Keyed { value: copy, replayed: false }),
                    Tried::Throttled => {
                        throttled.push(shard);
                        continue;
                    }
                    Tried::Refused(refused) => refused,
                };
                match refusal(&refused, coupon, user, now) {
                    IssueRefused::CounterEmpty => self.found_empty(coupon, shard),
                    IssueRefused::Refused(error) => return Err(error),
                    IssueRefused::KeyUsed => {
                        let key = key.ok_or_else(|| anyhow!("a key refusal without a key"))?;
                        return self.issued_with(coupon, user, key).await?.ok_or_else(|| {
                            anyhow!("the idempotency record of coupon {coupon}'s issue vanished").into()
                        });
                    }
                }
            }
            (left, patient) = (throttled, true);
        }
        // Every counter is empty. A copy the user holds still wins, as it does in a
        // refused transaction: their retry is told it holds one.
        use_cases::refused(self, coupon, user, key, CouponError::SoldOut(coupon)).await
    }

    async fn holds(&self, coupon: CouponId, user: UserId) -> Result<bool, CouponError> {
        let copy = self.get(&keys::coupon_copy(user, coupon), || format!("get user {user}'s coupon {coupon}")).await?;
        Ok(copy.is_some())
    }

    async fn issued_with(
        &self,
        coupon: CouponId,
        user: UserId,
        key: &IdempotencyKey,
    ) -> Result<Option<Keyed<IssuedCoupon>>, CouponError> {
        match self.find_idempotency_record(user.into(), key, &issue_fingerprint(coupon)).await? {
            None => Ok(None),
            Some(Err(KeyReused)) => Err(CouponError::IdempotencyKeyReused),
            Some(Ok(_)) => {
                let copy_key = keys::coupon_copy(user, coupon);
                let item = self.get(&copy_key, || format!("get user {user}'s coupon {coupon}")).await?;
                let item = item.ok_or_else(|| anyhow!("user {user}'s coupon {coupon}, issued by a key, is gone"))?;
                // The copy as it was issued: unused (a use since is not the issue's answer).
                let copy = IssuedCoupon { used_at: None, ..copy_from_item(&item)? };
                Ok(Some(Keyed { value: copy, replayed: true }))
            }
        }
    }
}

impl UserCoupons for DynamoStore {
    async fn user_coupons(&self, user: UserId, page: PageRequest) -> Result<Page<IssuedCoupon>, CouponError> {
        let after = match &page.cursor {
            None => None,
            Some(cursor) => Some(cursor_coupon(cursor).ok_or(CouponError::BadCursor)?),
        };
        if !self.user_exists(user).await? {
            return Err(CouponError::UnknownUser(user));
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :copies)")
            .expression_attribute_values(":pk", s(keys::user_partition(user)))
            .expression_attribute_values(":copies", s(keys::COUPON_COPY_PREFIX))
            .set_exclusive_start_key(after.map(|id| keys::coupon_copy(user, id).item()))
            .consistent_read(true)
            .limit(page.limit as i32 + 1)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("list coupons of user {user}")))?;
        let items: Vec<IssuedCoupon> = output.items().iter().map(copy_from_item).collect::<anyhow::Result<_>>()?;
        Ok(Page::from_lookahead(items, page.limit, |c| cursor_after(c.coupon_id)))
    }
}

impl DynamoStore {
    /// The coupon's unchanging terms, from the process cache or the table. A rush's
    /// first requests arrive together: one of them reads the table while the others
    /// wait for its answer (a failed read is not kept; the next request reads again).
    async fn coupon_terms(&self, id: CouponId) -> Result<Coupon, CouponError> {
        let cell = {
            let known = self.coupon_terms.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
            match known {
                Some(cell) => cell,
                None => self.coupon_terms.write().unwrap_or_else(|p| p.into_inner()).entry(id).or_default().clone(),
            }
        };
        let terms = cell
            .get_or_try_init(|| async {
                // Consistent: a coupon an operator just made must be found by the first issue.
                let item = self.get(&keys::coupon(id), || format!("get coupon {id}")).await?;
                Ok::<_, CouponError>(coupon_from_item(&item.ok_or(CouponError::UnknownCoupon(id))?)?)
            })
            .await?;
        Ok(terms.clone())
    }

    pub(super) async fn user_exists(&self, user: UserId) -> Result<bool, DbError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::profile(user).item()))
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| db_error(e, || format!("check user {user}")))?;
        Ok(output.item.is_some())
    }

    /// The counters an issue may take from, in the order to try them: the coupon's
    /// own, or every shard not yet found empty from a random one on, so that a rush
    /// spreads over the shards.
    fn counters_to_try(&self, terms: &Coupon) -> Vec<u32> {
        let shards = terms.shards.max(1);
        let start = fastrand::u32(0..shards);
        let empty = self.empty_shards.read().unwrap_or_else(|p| p.into_inner());
        (0..shards).map(|i| (start + i) % shards).filter(|k| !empty.contains(&(terms.id, *k))).collect()
    }

    /// A counter refused for want of copies: it never has one again.
    fn found_empty(&self, coupon: CouponId, shard: u32) {
        self.empty_shards.write().unwrap_or_else(|p| p.into_inner()).insert((coupon, shard));
    }

    /// The transaction that issues `copy` from counter `shard` of `terms` (0 for a
    /// coupon of one shard), with the key's record when there is one.
    pub fn issue_transaction(
        &self,
        terms: &Coupon,
        copy: &IssuedCoupon,
        shard: u32,
        key: Option<&Record<'_>>,
        now: OffsetDateTime,
    ) -> Result<Transaction<IssueItem>, DbError> {
        let (coupon, user) = (copy.coupon_id, copy.user_id);
        let mut transaction = Transaction::new(format!("issue coupon {coupon} to user {user}"));
        let counter = if terms.shards > 1 { keys::coupon_shard(coupon, shard) } else { keys::coupon(coupon) };
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(counter.item()))
            .update_expression("SET issued = issued + :one")
            .condition_expression("attribute_exists(pk) AND issued < #total AND endsAt > :now")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .context("build coupon count update")
            .map_err(DbError::Other)?;
        transaction.update(IssueItem::Count, count);
        let user_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(keys::profile(user).item()))
            .condition_expression("attribute_exists(pk)")
            .build()
            .context("build user check")
            .map_err(DbError::Other)?;
        transaction.check(IssueItem::User, user_exists);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(copy_item(copy)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .context("build user coupon")
            .map_err(DbError::Other)?;
        transaction.put(IssueItem::Copy, put);
        if let Some(record) = key {
            transaction.put(IssueItem::Key, record.put(&self.table)?);
        }
        Ok(transaction)
    }
}

impl CouponAdmin for DynamoStore {
    async fn create_coupon(
        &self,
        coupon: NewCoupon,
        key: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> Result<Keyed<Coupon>, CouponError> {
        let numbered = key.as_ref().map(|key| NumberedKey {
            scope: KeyScope::Operators,
            key,
            fingerprint: coupon.fingerprint(),
            target: |number| CouponId::new(number).ok().map(Target::Coupon),
            at: now,
        });
        let made = |number| {
            let id = CouponId::new(number).map_err(|e| anyhow!("coupon id {number}: {e}"))?;
            Ok::<_, anyhow::Error>(Coupon {
                id,
                name: coupon.name.as_str().to_owned(),
                discount: coupon.discount,
                total: coupon.total,
                issued: 0,
                ends_at: coupon.ends_at,
                shards: coupon.shards,
            })
        };
        let build = |number| made(number).map(|c| coupon_items(&c)).map_err(DbError::Other);
        match self.create_numbered("coupons", build, numbered.as_ref()).await? {
            Err(KeyReused) => Err(CouponError::IdempotencyKeyReused),
            Ok(Created::New(number)) => Ok(Keyed { value: made(number)?, replayed: false }),
            // The same request (its fingerprint matched): the coupon as it made it, not
            // as issues have changed it since.
            Ok(Created::Replayed(stored)) => match stored.target {
                Target::Coupon(id) => Ok(Keyed { value: made(id.get())?, replayed: true }),
                _ => Err(CouponError::IdempotencyKeyReused),
            },
        }
    }
}

/// A new coupon as it is stored: its item, then its shards' when it has more than
/// one. Nothing is issued yet (`coupon.issued` is ignored for a sharded coupon).
pub fn coupon_items(coupon: &Coupon) -> Vec<Item> {
    let mut item = keys::coupon(coupon.id).item();
    item.insert("couponId".to_owned(), n(coupon.id));
    item.insert("name".to_owned(), s(&coupon.name));
    item.insert("discount".to_owned(), n(coupon.discount));
    item.insert("total".to_owned(), n(coupon.total));
    item.insert("endsAt".to_owned(), s(rfc3339(coupon.ends_at)));
    item.insert("shards".to_owned(), n(coupon.shards.max(1)));
    if coupon.shards <= 1 {
        item.insert("issued".to_owned(), n(coupon.issued));
        return vec![item];
    }
    let shards = (0..coupon.shards).map(|k| {
        let mut shard = keys::coupon_shard(coupon.id, k).item();
        shard.insert("couponId".to_owned(), n(coupon.id));
        shard.insert("shard".to_owned(), n(k));
        shard.insert("total".to_owned(), n(coupon.shard_total(k)));
        shard.insert("issued".to_owned(), n(0));
        shard.insert("endsAt".to_owned(), s(rfc3339(coupon.ends_at)));
        shard
    });
    std::iter::once(item).chain(shards).collect()
}

pub fn copy_item(copy: &IssuedCoupon) -> Item {
    let mut item = keys::coupon_copy(copy.user_id, copy.coupon_id).item();
    item.insert("couponId".to_owned(), n(copy.coupon_id));
    item.insert("userId".to_owned(), n(copy.user_id));
    item.insert("name".to_owned(), s(&copy.name));
    item.insert("discount".to_owned(), n(copy.discount));
    item.insert("issuedAt".to_owned(), s(rfc3339(copy.issued_at)));
    // Not `expiresAt`: that name is the table's TTL attribute (a number of seconds).
    item.insert("usableUntil".to_owned(), s(rfc3339(copy.expires_at)));
    if let Some(used) = copy.used_at {
        item.insert("usedAt".to_owned(), s(rfc3339(used)));
    }
    item
}

/// A coupon from its item: the count is the item's own when it has one shard, else 0
/// (its shards hold it). A coupon stored before shards has one.
pub fn coupon_from_item(item: &Item) -> anyhow::Result<Coupon> {
    let shards = item.get("shards").map(|_| get_u64(item, "shards")).transpose()?.unwrap_or(1);
    let shards = u32::try_from(shards).ok().filter(|k| *k >= 1).ok_or_else(|| anyhow!("shards: {shards}"))?;
    Ok(Coupon {
        id: CouponId::new(get_u64(item, "couponId")?).map_err(|e| anyhow!("couponId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        discount: get_money(item, "discount")?,
        total: get_u64(item, "total")?,
        issued: if shards == 1 { get_u64(item, "issued")? } else { 0 },
        ends_at: get_time(item, "endsAt")?,
        shards,
    })
}

pub fn copy_from_item(item: &Item) -> anyhow::Result<IssuedCoupon> {
    Ok(IssuedCoupon {
        coupon_id: CouponId::new(get_u64(item, "couponId")?).map_err(|e| anyhow!("couponId: {e}"))?,
        user_id: UserId::new(get_u64(item, "userId")?).map_err(|e| anyhow!("userId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        discount: get_money(item, "discount")?,
        issued_at: get_time(item, "issuedAt")?,
        expires_at: get_time(item, "usableUntil")?,
        used_at: get_optional_time(item, "usedAt")?,
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::CancellationReason;
    use time::macros::datetime;

    use super::*;
    use crate::adapters::dynamodb::transaction::{read_cancellation, Cancelled};

    const NOW: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);
    const ROLES: [IssueItem; 4] = [IssueItem::Count, IssueItem::User, IssueItem::Copy, IssueItem::Key];

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn coupon_failed(ends: &str) -> CancellationReason {
        CancellationReason::builder()
            .code("ConditionalCheckFailed")
            .item("pk", s("COUPON#1"))
            .item("issued", n(100))
            .item("total", n(100))
            .item("endsAt", s(ends))
            .build()
    }

    fn meaning(reasons: [CancellationReason; 3]) -> IssueRefused {
        let reasons = [reasons[0].clone(), reasons[1].clone(), reasons[2].clone(), reason("None")];
        keyed_meaning(reasons)
    }

    fn keyed_meaning(reasons: [CancellationReason; 4]) -> IssueRefused {
        let Cancelled::Refused(refused) = read_cancellation(&ROLES, &reasons) else { panic!("not refused") };
        refusal(&refused, CouponId::new(1).unwrap(), UserId::new(2).unwrap(), NOW)
    }

    #[test]
    fn a_failed_count_on_a_live_coupon_means_that_counter_is_empty() {
        let error = meaning([coupon_failed("2026-12-24T00:00:00.000Z"), reason("None"), reason("None")]);
        assert!(matches!(error, IssueRefused::CounterEmpty));
    }

    #[test]
    fn a_used_key_wins_over_every_other_refusal() {
        let failed = || reason("ConditionalCheckFailed");
        let error = keyed_meaning([coupon_failed("2026-12-24T00:00:00.000Z"), failed(), failed(), failed()]);
        assert!(matches!(error, IssueRefused::KeyUsed));
    }

    #[test]
    fn a_failed_count_on_an_ended_coupon_means_expired() {
        let error = meaning([coupon_failed("2026-11-24T10:00:00.000Z"), reason("None"), reason("None")]);
        assert!(matches!(error, IssueRefused::Refused(CouponError::Expired(_))));
    }

    #[test]
    fn a_failed_count_without_an_old_image_means_no_such_coupon() {
        let error = meaning([reason("ConditionalCheckFailed"), reason("None"), reason("None")]);
        assert!(matches!(error, IssueRefused::Refused(CouponError::UnknownCoupon(_))));
    }

    #[test]
    fn an_existing_copy_means_already_issued_even_when_also_sold_out() {
        let error =
            meaning([coupon_failed("2026-12-24T00:00:00.000Z"), reason("None"), reason("ConditionalCheckFailed")]);
        assert!(matches!(error, IssueRefused::Refused(CouponError::AlreadyIssued(..))));
    }

    #[test]
    fn a_failed_profile_check_means_no_such_user() {
        let error = meaning([reason("None"), reason("ConditionalCheckFailed"), reason("None")]);
        assert!(matches!(error, IssueRefused::Refused(CouponError::UnknownUser(_))));
    }

    #[test]
    fn a_new_coupon_round_trips_through_its_item() {
        let new = crate::coupons::Coupon {
            id: CouponId::new(4).unwrap(),
            name: "Rush".into(),
            discount: crate::money::Money::parse("1000.00").unwrap(),
            total: 100,
            issued: 0,
            ends_at: NOW + time::Duration::days(30),
            shards: 1,
        };
        let items = coupon_items(&new);
        assert_eq!(items.len(), 1, "one shard: the coupon counts on its own item");
        assert_eq!((items[0]["pk"].clone(), items[0]["sk"].clone()), (s("COUPON#4"), s("COUPON")));
        let coupon = coupon_from_item(&items[0]).unwrap();
        assert_eq!(coupon, new);
        let mut before_shards = items[0].clone();
        before_shards.remove("shards");
        assert_eq!(coupon_from_item(&before_shards).unwrap(), new, "a coupon stored before shards has one");
    }

    #[test]
    fn a_sharded_coupon_is_its_terms_and_a_counter_per_shard_holding_its_share() {
        let new = crate::coupons::Coupon {
            id: CouponId::new(5).unwrap(),
            name: "Rush".into(),
            discount: crate::money::Money::parse("1.00").unwrap(),
            total: 1_001,
            issued: 0,
            ends_at: NOW + time::Duration::days(30),
            shards: 16,
        };
        let items = coupon_items(&new);
        assert_eq!(items.len(), 17);
        assert!(!items[0].contains_key("issued"), "the shards count");
        assert_eq!(coupon_from_item(&items[0]).unwrap(), new);
        let pks: std::collections::BTreeSet<&str> = items.iter().map(|i| i["pk"].as_s().unwrap().as_str()).collect();
        assert_eq!(pks.len(), 17, "each shard is a partition of its own");
        assert_eq!((items[1]["pk"].clone(), items[1]["sk"].clone()), (s("COUPON#5#0"), s("SHARD")));
        let shares: u64 = items[1..].iter().map(|i| get_u64(i, "total").unwrap()).sum();
        assert_eq!(shares, 1_001);
        assert!(items[1..].iter().all(|i| get_u64(i, "issued").unwrap() == 0 && i["endsAt"] == items[0]["endsAt"]));
    }

    #[test]
    fn a_users_copy_round_trips_and_keeps_its_end_apart_from_the_ttl() {
        let copy = IssuedCoupon {
            coupon_id: CouponId::new(3).unwrap(),
            user_id: UserId::new(2).unwrap(),
            name: "Coupon 3".to_owned(),
            discount: crate::money::Money::parse("1000.00").unwrap(),
            issued_at: NOW,
            expires_at: NOW + time::Duration::days(30),
            used_at: Some(NOW + time::Duration::days(1)),
        };
        let item = copy_item(&copy);
        assert_eq!(item["pk"], s("USER#2"));
        assert_eq!(item["sk"], s("COUPON#00000000000000000003"));
        assert!(!item.contains_key("expiresAt"), "expiresAt is the table's TTL attribute");
        assert_eq!(copy_from_item(&item).unwrap(), copy);
    }
}
