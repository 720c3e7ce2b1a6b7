//! The coupon use cases over the ports; the clock decides what "now" is.

use super::{Coupon, CouponError, CouponId, CouponIssuer, CouponReader, IssuedCoupon, UserCoupons};
use crate::clock::Clock;
use crate::ids::UserId;
use crate::pagination::{Page, PageRequest};

pub async fn get_coupon(store: &impl CouponReader, id: CouponId) -> Result<Coupon, CouponError> {
    store.coupon(id).await
}

pub async fn issue(
    store: &impl CouponIssuer,
    clock: &dyn Clock,
    coupon: CouponId,
    user: UserId,
) -> Result<IssuedCoupon, CouponError> {
    store.issue(coupon, user, clock.now()).await
}

pub async fn user_coupons(
    store: &impl UserCoupons,
    user: UserId,
    page: PageRequest,
) -> Result<Page<IssuedCoupon>, CouponError> {
    store.user_coupons(user, page).await
}
