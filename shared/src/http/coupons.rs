//! Handlers of the coupon routes.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use time::OffsetDateTime;

use super::extract::{acting_user, page_request, path_id};
use super::{json, serialize_time, ApiError, ListBody};
use crate::coupons::{use_cases, Coupon, CouponIssuer, CouponReader, CouponStatus, IssuedCoupon, UserCoupons};
use crate::ids::{CouponId, UserId};
use crate::money::Money;
use crate::Deps;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CouponBody<'a> {
    coupon_id: CouponId,
    name: &'a str,
    discount: Money,
    total: u64,
    issued: u64,
    remaining: u64,
    #[serde(serialize_with = "serialize_time")]
    ends_at: OffsetDateTime,
}

impl<'a> From<&'a Coupon> for CouponBody<'a> {
    fn from(c: &'a Coupon) -> Self {
        CouponBody {
            coupon_id: c.id,
            name: &c.name,
            discount: c.discount,
            total: c.total,
            issued: c.issued,
            remaining: c.remaining(),
            ends_at: c.ends_at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyBody<'a> {
    coupon_id: CouponId,
    user_id: UserId,
    name: &'a str,
    discount: Money,
    #[serde(serialize_with = "serialize_time")]
    issued_at: OffsetDateTime,
    #[serde(serialize_with = "serialize_time")]
    expires_at: OffsetDateTime,
    #[serde(serialize_with = "serialize_optional_time")]
    used_at: Option<OffsetDateTime>,
    status: CouponStatus,
}

fn serialize_optional_time<S: serde::Serializer>(
    at: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_time(at, serializer),
        None => serializer.serialize_none(),
    }
}

fn copy_body(copy: &IssuedCoupon, now: OffsetDateTime) -> CopyBody<'_> {
    CopyBody {
        coupon_id: copy.coupon_id,
        user_id: copy.user_id,
        name: &copy.name,
        discount: copy.discount,
        issued_at: copy.issued_at,
        expires_at: copy.expires_at,
        used_at: copy.used_at,
        status: copy.status(now),
    }
}

fn coupon_id(request: &Request) -> Result<CouponId, ApiError> {
    path_id(request, "couponId", "INVALID_COUPON_ID")
}

/// `GET /api/v1/coupons/{couponId}`
pub async fn get_coupon<S: CouponReader>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let coupon = use_cases::get_coupon(&deps.store, coupon_id(&request)?).await?;
        Ok::<_, ApiError>(json(StatusCode::OK, &CouponBody::from(&coupon)))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `POST /api/v1/coupons/{couponId}` with `?userId=` or `{"userId": …}`
pub async fn issue_coupon<S: CouponIssuer>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let coupon = coupon_id(&request)?;
        let user = acting_user(&request)?;
        let copy =
            use_cases::issue(&deps.store, deps.coupon_gate.as_deref(), deps.clock.as_ref(), coupon, user).await?;
        Ok::<_, ApiError>(json(StatusCode::CREATED, &copy_body(&copy, deps.clock.now())))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `GET /api/v1/users/{userId}/coupons?limit=&cursor=`
pub async fn user_coupons<S: UserCoupons>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let user = acting_user(&request)?;
        let page = use_cases::user_coupons(&deps.store, user, page_request(&request)?).await?;
        let now = deps.clock.now();
        let items: Vec<CopyBody<'_>> = page.items.iter().map(|c| copy_body(c, now)).collect();
        let body = ListBody { items: &items, next_cursor: page.next.as_ref().map(|c| c.as_str()) };
        Ok::<_, ApiError>(json(StatusCode::OK, &body))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}
