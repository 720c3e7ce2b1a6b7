//! Coupons on DynamoDB.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | coupon | `COUPON#<id>` | `COUPON` | couponId, name, discount, total, issued, endsAt |
//! | a user's copy | `USER#<userId>` | `COUPON#<id, 20 digits>` | couponId, userId, name, discount, issuedAt, expiresAt, usedAt? |
//!
//! Issuing is one `TransactWriteItems`:
//! 1. `Update COUPON#c` `SET issued = issued + 1` under
//!    `attribute_exists(pk) AND issued < total AND endsAt > :now`;
//! 2. `ConditionCheck USER#u/PROFILE` `attribute_exists(pk)`;
//! 3. `Put USER#u/COUPON#c` under `attribute_not_exists(pk)`.
//!
//! So the count never passes the total, each user holds at most one copy, the number of
//! copies equals the count, and nothing is issued once the coupon has ended. The
//! cancellation reasons say which rule refused ([`classify_issue`]). A coupon's name,
//! discount, total and end date never change, so they are cached per process.

use std::sync::atomic::Ordering;

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::ledger::PROFILE_SK;
use super::{
    db_error, get_money, get_optional_time, get_s, get_time, get_u64, key, n, s, user_pk, DbError, DynamoStore, Item,
};
use crate::clock::rfc3339;
use crate::coupons::{
    cursor_after, cursor_coupon, Coupon, CouponError, CouponIssuer, CouponReader, IssuedCoupon, UserCoupons,
};
use crate::ids::{CouponId, UserId};
use crate::pagination::{Page, PageRequest};
use crate::retry::RetryPolicy;

pub const COUPON_SK: &str = "COUPON";

pub fn coupon_pk(id: CouponId) -> String {
    format!("COUPON#{id}")
}

pub fn copy_sk(id: CouponId) -> String {
    format!("COUPON#{:020}", id.get())
}

impl From<DbError> for CouponError {
    fn from(err: DbError) -> CouponError {
        match err {
            DbError::Unavailable(e) => CouponError::Unavailable(e),
            DbError::Other(e) => CouponError::Unexpected(e),
        }
    }
}

/// Why DynamoDB cancelled an issue transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueRejection {
    Conflict,
    UnknownCoupon,
    UnknownUser,
    AlreadyIssued,
    Expired,
    SoldOut,
    Other(String),
}

/// Maps the cancellation reasons of an issue transaction (0: the coupon, with its old
/// image; 1: the user's profile; 2: the user's copy) to the rule that refused. A
/// failed condition is decisive; a conflict alone is retried.
pub fn classify_issue(reasons: &[CancellationReason], now: OffsetDateTime) -> IssueRejection {
    let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
    if failed(2) {
        return IssueRejection::AlreadyIssued;
    }
    if failed(1) {
        return IssueRejection::UnknownUser;
    }
    if failed(0) {
        let Some(coupon) = reasons[0].item().filter(|item| item.contains_key("pk")) else {
            return IssueRejection::UnknownCoupon;
        };
        let ended = get_s(coupon, "endsAt").map(|ends| ends <= rfc3339(now).as_str()).unwrap_or(false);
        return if ended { IssueRejection::Expired } else { IssueRejection::SoldOut };
    }
    if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
        return IssueRejection::Conflict;
    }
    IssueRejection::Other(reasons.iter().map(|r| r.code().unwrap_or("None")).collect::<Vec<_>>().join(", "))
}

impl CouponReader for DynamoStore {
    async fn coupon(&self, id: CouponId) -> Result<Coupon, CouponError> {
        let item = self.coupon_item(id, true).await?.ok_or(CouponError::UnknownCoupon(id))?;
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
        let copy = IssuedCoupon {
            coupon_id: coupon,
            user_id: user,
            name: terms.name.clone(),
            discount: terms.discount,
            issued_at: now,
            expires_at: terms.ends_at,
            used_at: None,
        };
        let mut retry = 0;
        loop {
            self.metrics.coupon_issue_writes.fetch_add(1, Ordering::Relaxed);
            let rejection = match self.issue_transaction(&copy, now).await? {
                None => return Ok(copy),
                Some(rejection) => rejection,
            };
            return Err(match rejection {
                IssueRejection::Conflict => match RetryPolicy::TRANSACTION_CONFLICT.delay(retry) {
                    Some(delay) => {
                        tracing::debug!(%coupon, %user, retry, "transaction conflict, retrying");
                        tokio::time::sleep(delay).await;
                        retry += 1;
                        continue;
                    }
                    None => CouponError::Unavailable(anyhow!(
                        "issuing coupon {coupon} to user {user} still conflicting after {retry} retries"
                    )),
                },
                IssueRejection::UnknownCoupon => CouponError::UnknownCoupon(coupon),
                IssueRejection::UnknownUser => CouponError::UnknownUser(user),
                IssueRejection::AlreadyIssued => CouponError::AlreadyIssued(coupon, user),
                IssueRejection::Expired => CouponError::Expired(coupon),
                IssueRejection::SoldOut => CouponError::SoldOut(coupon),
                IssueRejection::Other(codes) => {
                    CouponError::Unexpected(anyhow!("issuing coupon {coupon} to user {user} cancelled: {codes}"))
                }
            });
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
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":copies", s("COUPON#"))
            .set_exclusive_start_key(after.map(|id| key(user_pk(user), copy_sk(id))))
            .consistent_read(true)
            .limit(page.limit as i32 + 1)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("list coupons of user {user}")))?;
        let mut items: Vec<IssuedCoupon> = output.items().iter().map(copy_from_item).collect::<anyhow::Result<_>>()?;
        let has_more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| has_more).map(|c| cursor_after(c.coupon_id));
        Ok(Page { items, next })
    }
}

impl DynamoStore {
    async fn coupon_item(&self, id: CouponId, consistent: bool) -> Result<Option<Item>, DbError> {
        if consistent {
            return self.get(coupon_pk(id), COUPON_SK, || format!("get coupon {id}")).await;
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(coupon_pk(id), COUPON_SK)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("get coupon {id}")))?;
        Ok(output.item)
    }

    /// The coupon's unchanging terms, from the process cache or the table.
    async fn coupon_terms(&self, id: CouponId) -> Result<Coupon, CouponError> {
        if let Some(terms) = self.coupon_terms.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(terms.clone());
        }
        let item = self.coupon_item(id, false).await?.ok_or(CouponError::UnknownCoupon(id))?;
        let terms = coupon_from_item(&item)?;
        self.coupon_terms.write().unwrap_or_else(|p| p.into_inner()).insert(id, terms.clone());
        Ok(terms)
    }

    pub(super) async fn user_exists(&self, user: UserId) -> Result<bool, DbError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK)))
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| db_error(e, || format!("check user {user}")))?;
        Ok(output.item.is_some())
    }

    /// `None` when the copy was issued, or the rule that refused.
    async fn issue_transaction(
        &self,
        copy: &IssuedCoupon,
        now: OffsetDateTime,
    ) -> Result<Option<IssueRejection>, DbError> {
        let (coupon, user) = (copy.coupon_id, copy.user_id);
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(coupon_pk(coupon), COUPON_SK)))
            .update_expression("SET issued = issued + :one")
            .condition_expression("attribute_exists(pk) AND issued < #total AND endsAt > :now")
            .expression_attribute_names("#total", "total")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .context("build coupon count update")
            .map_err(DbError::Other)?;
        let user_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .context("build user check")
            .map_err(DbError::Other)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(copy_item(copy)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .context("build user coupon")
            .map_err(DbError::Other)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(count).build())
            .transact_items(TransactWriteItem::builder().condition_check(user_exists).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(None),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    Ok(Some(classify_issue(cancelled.cancellation_reasons(), now)))
                }
                _ => Err(db_error(err, || format!("issue coupon {coupon} to user {user}"))),
            },
        }
    }
}

pub fn copy_item(copy: &IssuedCoupon) -> Item {
    let mut item = key(user_pk(copy.user_id), copy_sk(copy.coupon_id));
    item.insert("couponId".to_owned(), n(copy.coupon_id));
    item.insert("userId".to_owned(), n(copy.user_id));
    item.insert("name".to_owned(), s(&copy.name));
    item.insert("discount".to_owned(), n(copy.discount));
    item.insert("issuedAt".to_owned(), s(rfc3339(copy.issued_at)));
    item.insert("expiresAt".to_owned(), s(rfc3339(copy.expires_at)));
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
        expires_at: get_time(item, "expiresAt")?,
        used_at: get_optional_time(item, "usedAt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);

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

    #[test]
    fn a_failed_count_on_a_live_coupon_means_sold_out() {
        let reasons = [coupon_failed("2026-12-24T00:00:00.000Z"), reason("None"), reason("None")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::SoldOut);
    }

    #[test]
    fn a_failed_count_on_an_ended_coupon_means_expired() {
        let reasons = [coupon_failed("2026-11-24T10:00:00.000Z"), reason("None"), reason("None")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::Expired);
    }

    #[test]
    fn a_failed_count_without_an_old_image_means_no_such_coupon() {
        let reasons = [reason("ConditionalCheckFailed"), reason("None"), reason("None")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::UnknownCoupon);
    }

    #[test]
    fn an_existing_copy_means_already_issued_even_when_also_sold_out() {
        let reasons = [coupon_failed("2026-12-24T00:00:00.000Z"), reason("None"), reason("ConditionalCheckFailed")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::AlreadyIssued);
    }

    #[test]
    fn a_failed_profile_check_means_no_such_user() {
        let reasons = [reason("None"), reason("ConditionalCheckFailed"), reason("None")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::UnknownUser);
    }

    #[test]
    fn a_conflict_alone_is_retried_but_not_when_a_condition_failed() {
        let reasons = [reason("TransactionConflict"), reason("None"), reason("None")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::Conflict);
        let reasons = [coupon_failed("2026-12-24T00:00:00.000Z"), reason("TransactionConflict"), reason("None")];
        assert_eq!(classify_issue(&reasons, NOW), IssueRejection::SoldOut);
    }
}
