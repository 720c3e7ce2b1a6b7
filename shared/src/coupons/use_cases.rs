//! The coupon use cases over the ports; the clock decides what "now" is.

use super::{
    Admission, AdmissionGate, Budget, Coupon, CouponError, CouponId, CouponIssuer, CouponReader, IssueBudget,
    IssuedCoupon, UserCoupons,
};
use std::sync::Arc;

use crate::catalog::Keyed;
use crate::clock::Clock;
use crate::ids::{IdempotencyKey, UserId};
use crate::metrics;
use crate::pagination::{Page, PageRequest};

pub async fn get_coupon(store: &impl CouponReader, id: CouponId) -> Result<Coupon, CouponError> {
    store.coupon(id).await
}

/// Spends one of `user`'s issue requests: [`CouponError::OverBudget`] past the budget.
/// A budget that cannot answer steps aside (counted as bypassed).
pub async fn within_budget(budget: Option<&dyn IssueBudget>, user: UserId) -> Result<(), CouponError> {
    let Some(budget) = budget else { return Ok(()) };
    let (outcome, result) = match budget.spend(user).await {
        Budget::Within => ("Within", Ok(())),
        Budget::Exceeded => ("Exceeded", Err(CouponError::OverBudget(user))),
        Budget::Unavailable => ("Bypassed", Ok(())),
    };
    metrics::count(metrics::COUPON_BUDGET, &[outcome], 1);
    result
}

/// Issues `coupon` to `user`, through the admission gate when there is one. With a
/// key, a retry of an issue that committed answers its copy again, marked replayed,
/// whatever the gate says.
pub async fn issue(
    store: &impl CouponIssuer,
    gate: Option<&Arc<dyn AdmissionGate>>,
    clock: &dyn Clock,
    coupon: CouponId,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> Result<Keyed<IssuedCoupon>, CouponError> {
    let issued = issue_through_gate(store, gate, clock, coupon, user, key).await;
    let outcome = match &issued {
        Ok(Keyed { replayed: false, .. }) => Some("Issued"),
        Ok(Keyed { replayed: true, .. }) => Some("Replayed"),
        Err(CouponError::SoldOut(_)) => Some("SoldOut"),
        Err(CouponError::AlreadyIssued(..)) => Some("AlreadyIssued"),
        Err(CouponError::Expired(_)) => Some("Expired"),
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        metrics::count(metrics::COUPON_ISSUES, &[outcome], 1);
    }
    issued
}

async fn issue_through_gate(
    store: &impl CouponIssuer,
    gate: Option<&Arc<dyn AdmissionGate>>,
    clock: &dyn Clock,
    coupon: CouponId,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> Result<Keyed<IssuedCoupon>, CouponError> {
    let now = clock.now();
    let Some(gate) = gate else { return store.issue(coupon, user, key, now).await };
    let terms = store.terms(coupon).await?;
    if terms.has_ended(now) {
        return refused(store, coupon, user, key, CouponError::Expired(coupon)).await;
    }
    let admission = gate.admit(&terms, user).await;
    let outcome = match admission {
        Admission::Admitted => "Admitted",
        Admission::SoldOut | Admission::AlreadyHolds => "Refused",
        Admission::Bypassed => "Bypassed",
    };
    metrics::count(metrics::COUPON_GATE, &[outcome], 1);
    match (admission, key) {
        (Admission::Admitted, _) => {}
        (Admission::Bypassed, _) => return store.issue(coupon, user, key, now).await,
        (Admission::SoldOut, _) => return refused(store, coupon, user, key, CouponError::SoldOut(coupon)).await,
        (Admission::AlreadyHolds, None) => return Err(CouponError::AlreadyIssued(coupon, user)),
        // The user holds a copy, or a request of theirs is being issued one. A keyed
        // retry whose first request was issued gets that copy; one whose user holds a
        // copy another request made is told so; only one that meets a request still in
        // flight goes on to DynamoDB, which decides (its key, or the copy, refuses a
        // second), with no reservation of its own to give back.
        (Admission::AlreadyHolds, Some(_)) => {
            return match settled(store, coupon, user, key).await? {
                Some(answer) => answer,
                None => store.issue(coupon, user, key, now).await,
            };
        }
    }
    let reservation = Reservation { gate, terms: &terms, user, settled: false };
    let issued = store.issue(coupon, user, key, now).await;
    match &issued {
        // The user holds a copy either way: the reservation stands.
        Ok(_) | Err(CouponError::AlreadyIssued(..)) => {}
        // The gate let through more than are left (it lost its state): teach it.
        Err(CouponError::SoldOut(_)) => {
            gate.mark_sold_out(&terms).await;
            gate.release(&terms, user).await;
        }
        Err(_) => gate.release(&terms, user).await,
    }
    reservation.settle();
    issued
}

/// What a request the coupon refuses (ended, or sold out) is told, from the table: the
/// copy its key's first request was issued (a keyed retry: the gate answers for the
/// coupon, not for the key), else that the user holds a copy (so a retry of an issue
/// that was made is never told sold out), else `refusal`. Reads the user's own items
/// only.
pub async fn refused(
    store: &impl CouponIssuer,
    coupon: CouponId,
    user: UserId,
    key: Option<&IdempotencyKey>,
    refusal: CouponError,
) -> Result<Keyed<IssuedCoupon>, CouponError> {
    settled(store, coupon, user, key).await?.unwrap_or(Err(refusal))
}

/// What the user's own items already answer: the copy `key`'s first request was
/// issued, or that the user holds a copy; `None` when they hold none.
async fn settled(
    store: &impl CouponIssuer,
    coupon: CouponId,
    user: UserId,
    key: Option<&IdempotencyKey>,
) -> Result<Option<Result<Keyed<IssuedCoupon>, CouponError>>, CouponError> {
    if let Some(key) = key {
        if let Some(copy) = store.issued_with(coupon, user, key).await? {
            return Ok(Some(Ok(copy)));
        }
    }
    let held = store.holds(coupon, user).await?;
    Ok(held.then_some(Err(CouponError::AlreadyIssued(coupon, user))))
}

/// A reservation the gate made for a request, released if the request is dropped
/// before DynamoDB's answer settles it (the function's deadline drops a handler that
/// waited too long): left behind, it would tell its user "already issued" without a
/// copy, and count against the coupon's total at the gate.
struct Reservation<'a> {
    gate: &'a Arc<dyn AdmissionGate>,
    terms: &'a super::Coupon,
    user: UserId,
    settled: bool,
}

impl Reservation<'_> {
    fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Released in a task of its own: the request's own is being dropped. Releasing
        // a reservation whose issue did commit only sends the user's next request on to
        // DynamoDB, which answers "already issued" itself.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (gate, terms, user) = (self.gate.clone(), self.terms.clone(), self.user);
            runtime.spawn(async move {
                gate.release(&terms, user).await;
                tracing::warn!(coupon = %terms.id, %user, "released the gate reservation of a request dropped mid-issue");
            });
        }
    }
}

pub async fn user_coupons(
    store: &impl UserCoupons,
    user: UserId,
    page: PageRequest,
) -> Result<Page<IssuedCoupon>, CouponError> {
    store.user_coupons(user, page).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::coupons::GateFuture;
    use crate::money::Money;

    /// A gate that admits everyone and counts releases.
    #[derive(Default)]
    struct CountingGate {
        released: AtomicU32,
    }

    impl AdmissionGate for CountingGate {
        fn admit<'a>(&'a self, _: &'a Coupon, _: UserId) -> GateFuture<'a, Admission> {
            Box::pin(async { Admission::Admitted })
        }
        fn release<'a>(&'a self, _: &'a Coupon, _: UserId) -> GateFuture<'a, ()> {
            Box::pin(async {
                self.released.fetch_add(1, Ordering::SeqCst);
            })
        }
        fn mark_sold_out<'a>(&'a self, _: &'a Coupon) -> GateFuture<'a, ()> {
            Box::pin(async {})
        }
    }

    /// A store whose issue never answers (a DynamoDB that hangs).
    struct Hanging(Coupon);

    impl CouponIssuer for Hanging {
        async fn terms(&self, _: CouponId) -> Result<Coupon, CouponError> {
            Ok(self.0.clone())
        }
        async fn issue(
            &self,
            _: CouponId,
            _: UserId,
            _: Option<&IdempotencyKey>,
            _: time::OffsetDateTime,
        ) -> Result<Keyed<IssuedCoupon>, CouponError> {
            std::future::pending().await
        }
        async fn issued_with(
            &self,
            _: CouponId,
            _: UserId,
            _: &IdempotencyKey,
        ) -> Result<Option<Keyed<IssuedCoupon>>, CouponError> {
            Ok(None)
        }
        async fn holds(&self, _: CouponId, _: UserId) -> Result<bool, CouponError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn a_request_dropped_mid_issue_gives_its_reservation_back() {
        let coupon = Coupon {
            id: CouponId::new(1).unwrap(),
            name: "one".into(),
            discount: Money::parse("1.00").unwrap(),
            total: 10,
            issued: 0,
            ends_at: time::OffsetDateTime::now_utc() + time::Duration::days(1),
            shards: 1,
        };
        let counting = Arc::new(CountingGate::default());
        let gate: Arc<dyn AdmissionGate> = counting.clone();
        let store = Hanging(coupon.clone());
        let clock = crate::clock::SystemClock;
        let user = UserId::new(7).unwrap();
        let dropped =
            tokio::time::timeout(Duration::from_millis(50), issue(&store, Some(&gate), &clock, coupon.id, user, None))
                .await;
        assert!(dropped.is_err(), "the issue hung and was dropped");
        for _ in 0..100 {
            if counting.released.load(Ordering::SeqCst) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the reservation of a dropped request was not released");
    }
}
