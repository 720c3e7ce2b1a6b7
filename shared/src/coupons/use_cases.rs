//! The coupon use cases over the ports; the clock decides what "now" is.

use super::{
    Admission, AdmissionGate, Budget, Coupon, CouponError, CouponId, CouponIssuer, CouponReader, IssueBudget,
    IssuedCoupon, UserCoupons,
};
use crate::clock::Clock;
use crate::ids::UserId;
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
    metrics::count("CouponBudget", &[outcome], 1);
    result
}

/// Issues `coupon` to `user`, through the admission gate when there is one.
pub async fn issue(
    store: &impl CouponIssuer,
    gate: Option<&dyn AdmissionGate>,
    clock: &dyn Clock,
    coupon: CouponId,
    user: UserId,
) -> Result<IssuedCoupon, CouponError> {
    let issued = issue_through_gate(store, gate, clock, coupon, user).await;
    let outcome = match &issued {
        Ok(_) => Some("Issued"),
        Err(CouponError::SoldOut(_)) => Some("SoldOut"),
        Err(CouponError::AlreadyIssued(..)) => Some("AlreadyIssued"),
        Err(CouponError::Expired(_)) => Some("Expired"),
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        metrics::count("CouponIssues", &[outcome], 1);
    }
    issued
}

async fn issue_through_gate(
    store: &impl CouponIssuer,
    gate: Option<&dyn AdmissionGate>,
    clock: &dyn Clock,
    coupon: CouponId,
    user: UserId,
) -> Result<IssuedCoupon, CouponError> {
    let now = clock.now();
    let Some(gate) = gate else { return store.issue(coupon, user, now).await };
    let terms = store.terms(coupon).await?;
    if terms.has_ended(now) {
        return Err(CouponError::Expired(coupon));
    }
    let admission = gate.admit(&terms, user).await;
    let outcome = match admission {
        Admission::Admitted => "Admitted",
        Admission::SoldOut | Admission::AlreadyHolds => "Refused",
        Admission::Bypassed => "Bypassed",
    };
    metrics::count("CouponGate", &[outcome], 1);
    match admission {
        Admission::Admitted => {}
        Admission::SoldOut => return Err(CouponError::SoldOut(coupon)),
        Admission::AlreadyHolds => return Err(CouponError::AlreadyIssued(coupon, user)),
        Admission::Bypassed => return store.issue(coupon, user, now).await,
    }
    let issued = store.issue(coupon, user, now).await;
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
    issued
}

pub async fn user_coupons(
    store: &impl UserCoupons,
    user: UserId,
    page: PageRequest,
) -> Result<Page<IssuedCoupon>, CouponError> {
    store.user_coupons(user, page).await
}
