//! Handlers of the coupon routes.

use http::StatusCode;
use lambda_http::Request;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ErrorBody;
use super::extract::{acting_user, idempotency_key, optional_json_body, page_request, path_id};
use super::params::{IdempotencyHeader, PageQuery};
use super::paths;
use super::{json, replayed, Handled, ListBody};
use crate::clock::rfc3339_millis;
use crate::coupons::{use_cases, Coupon, CouponIssuer, CouponReader, CouponStatus, IssuedCoupon, UserCoupons};
use crate::ids::{CouponId, UserId};
use crate::money::Money;
use crate::Deps;

/// The optional body of an issue: `{"userId": 7}`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IssueRequest {
    user_id: Option<UserId>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CouponBody<'a> {
    coupon_id: CouponId,
    name: &'a str,
    discount: Money,
    total: u64,
    issued: u64,
    remaining: u64,
    /// How many counters share the total (1: unsharded).
    shards: u32,
    #[serde(with = "rfc3339_millis")]
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
            shards: c.shards,
            ends_at: c.ends_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CopyBody<'a> {
    coupon_id: CouponId,
    user_id: UserId,
    name: &'a str,
    discount: Money,
    #[serde(with = "rfc3339_millis")]
    issued_at: OffsetDateTime,
    #[serde(with = "rfc3339_millis")]
    expires_at: OffsetDateTime,
    #[serde(with = "rfc3339_millis::option")]
    used_at: Option<OffsetDateTime>,
    status: CouponStatus,
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

/// `GET /api/v1/coupons/{couponId}`
#[utoipa::path(get, path = paths::COUPON, tag = "coupons", summary = "A coupon's terms and what remains", security(),
    params(("couponId" = CouponId, Path, description = "The coupon")),
    responses(
        (status = 200, description = "The coupon's terms and how many remain", body = CouponBody),
        (status = 400, description = "`INVALID_COUPON_ID`", body = ErrorBody),
        (status = 404, description = "`COUPON_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn get_coupon<S: CouponReader>(request: Request, deps: &Deps<S>) -> Handled {
    let coupon = use_cases::get_coupon(&deps.store, path_id(&request, "couponId")?).await?;
    json(StatusCode::OK, &CouponBody::from(&coupon))
}

/// `POST /api/v1/coupons/{couponId}` with `?userId=` or `{"userId": …}`
#[utoipa::path(post, path = paths::COUPON, tag = "coupons", summary = "Issue a first-come coupon",
    params(("couponId" = CouponId, Path, description = "The coupon"), ("userId" = Option<UserId>, Query, description = "The acting user: signed in, the token's own (may be left out); with `AUTH=off` locally, the one the client names"), IdempotencyHeader),
    request_body(content = Option<IssueRequest>, description = "Optional: the user may be named here instead of in the query"),
    responses(
        (status = 201, description = "Issued: the user's copy of the coupon (a keyed retry: the same copy again, `Idempotent-Replayed: true`)", body = CopyBody),
        (status = 400, description = "`INVALID_COUPON_ID`, `INVALID_USER_ID`", body = ErrorBody),
        (status = 404, description = "`COUPON_NOT_FOUND`, `USER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`COUPON_SOLD_OUT`: none left; `COUPON_ALREADY_ISSUED`: this user holds a copy already (an unkeyed retry of an issue that was made gets this; no other user's request ever does); `COUPON_EXPIRED`: past its end; `IDEMPOTENCY_KEY_REUSED`", body = ErrorBody),
        (status = 429, description = "`TOO_MANY_REQUESTS`: this user's budget of issue requests per second is spent (`Retry-After`); \
            or API Gateway's route throttle (`{\"message\"}`)", body = ErrorBody),
    ))]
pub async fn issue_coupon<S: CouponIssuer>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let coupon: CouponId = path_id(&request, "couponId")?;
    let body: IssueRequest = optional_json_body(&request)?.unwrap_or_default();
    let user = acting_user(&request, &deps.identity, body.user_id)?;
    use_cases::within_budget(deps.issue_budget.as_deref(), user).await?;
    let (store, gate, clock) = (&deps.store, deps.coupon_gate.as_ref(), deps.clock.as_ref());
    let issued = use_cases::issue(store, gate, clock, coupon, user, key.as_ref()).await?;
    // A replay answers the copy as it was issued, when it was available.
    let at = if issued.replayed { issued.value.issued_at } else { deps.clock.now() };
    Ok(replayed(json(StatusCode::CREATED, &copy_body(&issued.value, at))?, issued.replayed))
}

/// `GET /api/v1/users/{userId}/coupons?limit=&cursor=`
#[utoipa::path(get, path = paths::USER_COUPONS, tag = "coupons", summary = "A user's coupons", params(("userId" = UserId, Path, description = "The user: signed in, the token's own"), PageQuery),
    responses(
        (status = 200, description = "The user's coupons", body = ListBody<CopyBody>),
        (status = 400, description = "`INVALID_USER_ID`, `INVALID_LIMIT`, `INVALID_CURSOR`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn user_coupons<S: UserCoupons>(request: Request, deps: &Deps<S>) -> Handled {
    let user = acting_user(&request, &deps.identity, None)?;
    let page = use_cases::user_coupons(&deps.store, user, page_request(&request)?).await?;
    let now = deps.clock.now();
    let items: Vec<CopyBody<'_>> = page.items.iter().map(|c| copy_body(c, now)).collect();
    json(StatusCode::OK, &ListBody { items: &items, next_cursor: page.next.as_ref().map(|c| c.as_str()) })
}
