//! Coupons on DynamoDB (keys in [`super::keys`]).
//!
//! | item | attributes |
//! |---|---|
//! | coupon | couponId, name, discount, total, issued, endsAt |
//! | a user's copy | couponId, userId, name, discount, issuedAt, usableUntil, usedAt?, orderId? |
//!
//! Issuing is one `TransactWriteItems`:
//! 1. `Update COUPON#c` `SET issued = issued + 1` under
//!    `attribute_exists(pk) AND issued < total AND endsAt > :now`;
//! 2. `ConditionCheck USER#u/PROFILE` `attribute_exists(pk)`;
//! 3. `Put USER#u/COUPON#c` under `attribute_not_exists(pk)`.
//!
//! So the count never passes the total, each user holds at most one copy, the number of
//! copies equals the count, and nothing is issued once the coupon has ended. The failed
//! items say which rule refused ([`refusal`]). A coupon's name, discount, total and end
//! date never change, so they are cached per process.

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::types::{ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, Update};
use time::OffsetDateTime;

use super::counters::{Created, NumberedKey};
use super::idempotency::{KeyReused, Target};
use super::keys::KeyScope;
use super::transaction::{Refusal, Transaction};
use super::{db_error, get_money, get_optional_time, get_s, get_time, get_u64, keys, n, s, DbError, DynamoStore, Item};
use crate::catalog::Keyed;
use crate::clock::rfc3339;
use crate::coupons::{
    cursor_after, cursor_coupon, Coupon, CouponAdmin, CouponError, CouponIssuer, CouponReader, IssuedCoupon, NewCoupon,
    UserCoupons,
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
    /// The coupon's count (its old image comes back on failure).
    Count,
    /// The user's profile, which must exist.
    User,
    /// The user's copy, which must not.
    Copy,
}

/// What a refused issue means. An existing copy wins (the user already holds one, even
/// if the coupon is also sold out by now); a failed count on a coupon that exists is
/// sold out, or expired once its end has passed.
pub fn refusal(refused: &Refusal<IssueItem>, coupon: CouponId, user: UserId, now: OffsetDateTime) -> CouponError {
    if refused.failed(IssueItem::Copy) {
        return CouponError::AlreadyIssued(coupon, user);
    }
    if refused.failed(IssueItem::User) {
        return CouponError::UnknownUser(user);
    }
    match refused.old_item(IssueItem::Count).filter(|item| item.contains_key("pk")) {
        None => CouponError::UnknownCoupon(coupon),
        Some(old) => {
            let ended = get_s(old, "endsAt").map(|ends| ends <= rfc3339(now).as_str()).unwrap_or(false);
            if ended {
                CouponError::Expired(coupon)
            } else {
                CouponError::SoldOut(coupon)
            }
        }
    }
}

impl CouponReader for DynamoStore {
    async fn coupon(&self, id: CouponId) -> Result<Coupon, CouponError> {
        let item = self.get(&keys::coupon(id), || format!("get coupon {id}")).await?;
        let item = item.ok_or(CouponError::UnknownCoupon(id))?;
        Ok(coupon_from_item(&item)?)
    }
}

impl CouponIssuer for DynamoStore {
    async fn terms(&self, coupon: CouponId) -> Result<Coupon, CouponError> {
        self.coupon_terms(coupon).await
    }

    async fn issue(&self, coupon: CouponId, user: UserId, now: OffsetDateTime) -> Result<IssuedCoupon, CouponError> {
        let terms = self.coupon_terms(coupon).await?;
        if terms.has_ended(now) {
            return Err(CouponError::Expired(coupon));
        }
        let copy = terms.copy_for(user, now);
        // Every attempt is a write DynamoDB must take: the count a gate keeps low.
        let mut transaction = self.issue_transaction(&copy, now)?;
        if let Some(probe) = self.probe() {
            let probe = probe.clone();
            transaction = transaction.on_each_attempt(std::sync::Arc::new(move || probe.coupon_issue_sent()));
        }
        match self.transact(&transaction).await? {
            Ok(()) => Ok(copy),
            Err(refused) => Err(refusal(&refused, coupon, user, now)),
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

    /// The transaction that issues `copy`.
    pub fn issue_transaction(
        &self,
        copy: &IssuedCoupon,
        now: OffsetDateTime,
    ) -> Result<Transaction<IssueItem>, DbError> {
        let (coupon, user) = (copy.coupon_id, copy.user_id);
        let mut transaction = Transaction::new(format!("issue coupon {coupon} to user {user}"));
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::coupon(coupon).item()))
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
            })
        };
        let build = |number| made(number).map(|c| coupon_item(&c)).map_err(DbError::Other);
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

/// A coupon as it is stored: its terms and how many are issued.
pub fn coupon_item(coupon: &Coupon) -> Item {
    let mut item = keys::coupon(coupon.id).item();
    item.insert("couponId".to_owned(), n(coupon.id));
    item.insert("name".to_owned(), s(&coupon.name));
    item.insert("discount".to_owned(), n(coupon.discount));
    item.insert("total".to_owned(), n(coupon.total));
    item.insert("issued".to_owned(), n(coupon.issued));
    item.insert("endsAt".to_owned(), s(rfc3339(coupon.ends_at)));
    item
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

pub fn coupon_from_item(item: &Item) -> anyhow::Result<Coupon> {
    Ok(Coupon {
        id: CouponId::new(get_u64(item, "couponId")?).map_err(|e| anyhow!("couponId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        discount: get_money(item, "discount")?,
        total: get_u64(item, "total")?,
        issued: get_u64(item, "issued")?,
        ends_at: get_time(item, "endsAt")?,
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
    const ROLES: [IssueItem; 3] = [IssueItem::Count, IssueItem::User, IssueItem::Copy];

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

    fn meaning(reasons: [CancellationReason; 3]) -> CouponError {
        let Cancelled::Refused(refused) = read_cancellation(&ROLES, &reasons) else { panic!("not refused") };
        refusal(&refused, CouponId::new(1).unwrap(), UserId::new(2).unwrap(), NOW)
    }

    #[test]
    fn a_failed_count_on_a_live_coupon_means_sold_out() {
        let error = meaning([coupon_failed("2026-12-24T00:00:00.000Z"), reason("None"), reason("None")]);
        assert!(matches!(error, CouponError::SoldOut(_)));
    }

    #[test]
    fn a_failed_count_on_an_ended_coupon_means_expired() {
        let error = meaning([coupon_failed("2026-11-24T10:00:00.000Z"), reason("None"), reason("None")]);
        assert!(matches!(error, CouponError::Expired(_)));
    }

    #[test]
    fn a_failed_count_without_an_old_image_means_no_such_coupon() {
        let error = meaning([reason("ConditionalCheckFailed"), reason("None"), reason("None")]);
        assert!(matches!(error, CouponError::UnknownCoupon(_)));
    }

    #[test]
    fn an_existing_copy_means_already_issued_even_when_also_sold_out() {
        let error =
            meaning([coupon_failed("2026-12-24T00:00:00.000Z"), reason("None"), reason("ConditionalCheckFailed")]);
        assert!(matches!(error, CouponError::AlreadyIssued(..)));
    }

    #[test]
    fn a_failed_profile_check_means_no_such_user() {
        let error = meaning([reason("None"), reason("ConditionalCheckFailed"), reason("None")]);
        assert!(matches!(error, CouponError::UnknownUser(_)));
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
        };
        let item = coupon_item(&new);
        assert_eq!((item["pk"].clone(), item["sk"].clone()), (s("COUPON#4"), s("COUPON")));
        let coupon = coupon_from_item(&item).unwrap();
        assert_eq!((coupon.id, coupon.total, coupon.issued, coupon.ends_at), (new.id, 100, 0, new.ends_at));
        assert_eq!((coupon.name.as_str(), coupon.discount), ("Rush", new.discount));
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
