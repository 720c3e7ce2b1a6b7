//! First-come, limited-quantity coupons: a coupon has a total, an issued count and an
//! end date; each user may hold one of each coupon, used at most once before it
//! expires. Issuing is exact under a rush: the count and the user's copy are written in
//! one conditional transaction (see the DynamoDB adapter), optionally behind a Redis
//! admission gate that turns away the requests that cannot succeed.
//!
//! A coupon's count may be split into shards ([`Coupon::shards`]), each counting its
//! own share of the total ([`shard_total`]) on a partition of its own: one counter item
//! takes at most about 500 issues a second on DynamoDB (1,000 write units a partition,
//! an issue's write counted twice in a transaction). An issue takes a copy from one
//! shard, and from another when that one is empty; the coupon is sold out only when
//! every shard is.

pub mod use_cases;

use std::future::Future;

use time::OffsetDateTime;

use crate::catalog::Keyed;
use crate::ids::{CouponId, IdempotencyKey, UserId};
use crate::money::Money;
use crate::pagination::{Cursor, Page, PageRequest};

/// A coupon as the shop defined it, with how many are issued so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: CouponId,
    pub name: String,
    pub discount: Money,
    pub total: u64,
    /// Over every shard.
    pub issued: u64,
    pub ends_at: OffsetDateTime,
    /// How many counters share the total: 1 is the coupon's own count.
    pub shards: u32,
}

impl Coupon {
    /// Shard `k`'s share of the total ([`shard_total`]).
    pub fn shard_total(&self, k: u32) -> u64 {
        shard_total(self.total, self.shards, k)
    }

    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.issued)
    }

    pub fn has_ended(&self, now: OffsetDateTime) -> bool {
        now >= self.ends_at
    }

    /// The copy `user` gets when issued one at `now`: unused, usable until the coupon ends.
    pub fn copy_for(&self, user: UserId, now: OffsetDateTime) -> IssuedCoupon {
        IssuedCoupon {
            coupon_id: self.id,
            user_id: user,
            name: self.name.clone(),
            discount: self.discount,
            issued_at: now,
            expires_at: self.ends_at,
            used_at: None,
        }
    }
}

/// A user's copy of a coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCoupon {
    pub coupon_id: CouponId,
    pub user_id: UserId,
    pub name: String,
    pub discount: Money,
    pub issued_at: OffsetDateTime,
    /// The coupon's end date: the copy cannot be used from then on.
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CouponStatus {
    Available,
    Used,
    Expired,
}

impl IssuedCoupon {
    /// Derived from the use and the end date against the clock, never stored.
    pub fn status(&self, now: OffsetDateTime) -> CouponStatus {
        if self.used_at.is_some() {
            CouponStatus::Used
        } else if now >= self.expires_at {
            CouponStatus::Expired
        } else {
            CouponStatus::Available
        }
    }
}

/// How many copies one coupon may offer.
pub const MAX_TOTAL: u64 = 10_000_000;

/// Coupons are sharded by the rule every hot count follows ([`crate::shards`]).
pub use crate::shards::{default_shards, shard_total, DEFAULT_SHARDS, MAX_SHARDS, SHARDED_FROM};

/// A coupon an operator creates: customers can then issue it as any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    pub name: crate::catalog::DisplayName,
    pub discount: Money,
    pub total: u64,
    pub ends_at: OffsetDateTime,
    /// 1 to [`MAX_SHARDS`], and no more than the total ([`default_shards`] when the
    /// operator does not say).
    pub shards: u32,
}

impl NewCoupon {
    /// What an idempotent retry must repeat for its key to be honoured. The shards
    /// are named only when the operator chose other than the default, so a key used
    /// before coupons had shards still matches its retry.
    pub fn fingerprint(&self) -> String {
        let ends = crate::clock::rfc3339(self.ends_at);
        let terms = format!("COUPON:{}:{}:{}:{ends}", self.name.as_str(), self.discount, self.total);
        if self.shards == default_shards(self.total) {
            terms
        } else {
            format!("{terms}:{}", self.shards)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    #[error("coupon {0} does not exist")]
    UnknownCoupon(CouponId),
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    #[error("coupon {0} is sold out")]
    SoldOut(CouponId),
    #[error("user {1} already holds coupon {0}")]
    AlreadyIssued(CouponId, UserId),
    #[error("coupon {0} has ended")]
    Expired(CouponId),
    #[error("too many coupon requests from user {0}; retry in a second")]
    OverBudget(UserId),
    #[error("cursor is not one this API issued")]
    BadCursor,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Reads a coupon with its current issued count.
pub trait CouponReader: Send + Sync {
    fn coupon(&self, id: CouponId) -> impl Future<Output = Result<Coupon, CouponError>> + Send;
}

/// Issues one copy of a coupon to a user, exactly: never past the total, never twice
/// to one user, never after the end date.
pub trait CouponIssuer: Send + Sync {
    /// The coupon's unchanging terms (name, discount, total, end); `issued` may be stale.
    fn terms(&self, coupon: CouponId) -> impl Future<Output = Result<Coupon, CouponError>> + Send;

    /// Issues a copy; with a key, a retry answers the copy its first request issued
    /// (marked replayed) instead of "already issued".
    fn issue(
        &self,
        coupon: CouponId,
        user: UserId,
        key: Option<&IdempotencyKey>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Keyed<IssuedCoupon>, CouponError>> + Send;

    /// The copy `key` issued to `user`, if it issued one: a keyed retry the gate
    /// refused (it knows the user holds a copy, or that none are left).
    fn issued_with(
        &self,
        coupon: CouponId,
        user: UserId,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Keyed<IssuedCoupon>>, CouponError>> + Send;

    /// Whether `user` holds a copy of `coupon`.
    fn holds(&self, coupon: CouponId, user: UserId) -> impl Future<Output = Result<bool, CouponError>> + Send;
}

/// What an issue with an `Idempotency-Key` must repeat for a retry to be its replay.
pub fn issue_fingerprint(coupon: CouponId) -> String {
    format!("ISSUE:{coupon}")
}

/// Creates coupons (operators).
pub trait CouponAdmin: Send + Sync {
    /// Creates a coupon with the next free id; with a key, a retry returns the first.
    fn create_coupon(
        &self,
        coupon: NewCoupon,
        key: Option<crate::ids::IdempotencyKey>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<crate::catalog::Keyed<Coupon>, CouponError>> + Send;
}

/// A boxed future, so the gate can live behind `dyn` in [`crate::Deps`].
pub type GateFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The gate's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A unit is reserved for the user; DynamoDB decides.
    Admitted,
    /// Every unit is taken or reserved: answer sold out without touching DynamoDB.
    SoldOut,
    /// The user already holds (or is being issued) this coupon.
    AlreadyHolds,
    /// The gate could not answer (Redis down or slow): DynamoDB alone decides.
    Bypassed,
}

/// An optional admission gate in front of [`CouponIssuer`] for rushes beyond what one
/// One user's budget of coupon issue requests: one client firing thousands of requests
/// in a rush must not spend the whole route's throttle and starve everyone else.
pub trait IssueBudget: Send + Sync {
    /// Spends one request of `user`'s budget.
    fn spend(&self, user: UserId) -> GateFuture<'_, Budget>;
}

/// What spending one request of a budget came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Within,
    /// Past the budget: turn the request away (429).
    Exceeded,
    /// The budget could not answer (Redis down): the request goes on.
    Unavailable,
}

/// DynamoDB item takes: it turns away requests that cannot succeed. DynamoDB stays the
/// truth; a reservation the table then refuses is released.
pub trait AdmissionGate: Send + Sync {
    fn admit<'a>(&'a self, coupon: &'a Coupon, user: UserId) -> GateFuture<'a, Admission>;
    /// Gives back `user`'s reservation after DynamoDB refused it.
    fn release<'a>(&'a self, coupon: &'a Coupon, user: UserId) -> GateFuture<'a, ()>;
    /// Remembers that DynamoDB said the coupon is sold out (it never un-sells).
    fn mark_sold_out<'a>(&'a self, coupon: &'a Coupon) -> GateFuture<'a, ()>;
}

/// Pages through a user's coupons in coupon-id order.
pub trait UserCoupons: Send + Sync {
    fn user_coupons(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<IssuedCoupon>, CouponError>> + Send;
}

pub fn cursor_after(id: CouponId) -> Cursor {
    Cursor::encode(&format!("c:{id}"))
}

pub fn cursor_coupon(cursor: &Cursor) -> Option<CouponId> {
    cursor.position().strip_prefix("c:").and_then(|id| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn copy(used: bool) -> IssuedCoupon {
        IssuedCoupon {
            coupon_id: CouponId::new(1).unwrap(),
            user_id: UserId::new(1).unwrap(),
            name: "c".into(),
            discount: Money::parse("10.00").unwrap(),
            issued_at: datetime!(2026-11-01 00:00 UTC),
            expires_at: datetime!(2026-12-01 00:00 UTC),
            used_at: used.then_some(datetime!(2026-11-02 00:00 UTC)),
        }
    }

    #[test]
    fn a_copy_is_available_until_its_end_then_expired_and_used_wins_over_both() {
        assert_eq!(copy(false).status(datetime!(2026-11-30 23:59:59 UTC)), CouponStatus::Available);
        assert_eq!(copy(false).status(datetime!(2026-12-01 00:00 UTC)), CouponStatus::Expired);
        assert_eq!(copy(true).status(datetime!(2026-12-05 00:00 UTC)), CouponStatus::Used);
    }
}
