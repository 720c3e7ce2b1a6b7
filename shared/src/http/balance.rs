//! Handlers of the four balance routes.

use http::StatusCode;
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::extract::{acting_user, idempotency_key, json_body, page_request};
use super::paths;
use super::{json, replayed, ApiError, Handled};
use crate::balance::{use_cases, Applied, BalanceHistory, BalanceLedger, BalanceReader, LedgerEntry};
use crate::http::params::{IdempotencyHeader, PageQuery};
use crate::ids::UserId;
use crate::money::{Amount, Money};
use crate::Deps;

/// `{"amount": "1000.00"}` (a string or a JSON number), optionally naming the user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeRequest {
    amount: Amount,
    user_id: Option<UserId>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BalanceBody {
    user_id: UserId,
    balance: Money,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChangeBody<'a> {
    user_id: UserId,
    balance: Money,
    entry: &'a LedgerEntry,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct HistoryBody<'a> {
    user_id: UserId,
    items: &'a [LedgerEntry],
    next_cursor: Option<&'a str>,
}

/// `GET /api/v1/users/{userId}/balance`
#[utoipa::path(get, path = paths::BALANCE, tag = "balance", summary = "A user's balance", params(("userId" = UserId, Path, description = "The user: signed in, the token's own")),
    responses(
        (status = 200, description = "The balance", body = BalanceBody),
        (status = 400, description = "`INVALID_USER_ID`: the path's user is not a positive integer", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn get_balance<S: BalanceReader>(request: Request, deps: &Deps<S>) -> Handled {
    let user = acting_user(&request, &deps.identity, None)?;
    let balance = use_cases::get_balance(&deps.store, user).await?;
    json(StatusCode::OK, &BalanceBody { user_id: user, balance })
}

/// `POST /api/v1/users/{userId}/balance/charge`: the customer's own top-up, unless the
/// shop turned self-service top-up off (then an operator credits balances).
#[utoipa::path(post, path = paths::BALANCE_CHARGE, tag = "balance", summary = "Top up a balance", params(("userId" = UserId, Path, description = "The user: signed in, the token's own"), IdempotencyHeader), request_body = ChangeRequest,
    responses(
        (status = 200, description = "Applied (or, with a known `Idempotency-Key`, the first answer again)", body = ChangeBody),
        (status = 400, description = "`INVALID_AMOUNT`, `INVALID_USER_ID`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the request names a user other than the token's, or the shop turned self-service top-up off", body = ErrorBody),
        (status = 409, description = "`BALANCE_LIMIT_EXCEEDED`: the balance would pass 1000000000.00; `IDEMPOTENCY_KEY_REUSED`: the key came with another request", body = ErrorBody),
    ))]
pub async fn charge<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Handled {
    if !deps.self_service_top_up {
        return Err(ApiError::forbidden("this shop credits balances itself; top-up is not self-service"));
    }
    let key = idempotency_key(&request)?;
    let body: ChangeRequest = json_body(&request)?;
    let user = acting_user(&request, &deps.identity, body.user_id)?;
    let applied = use_cases::charge(&deps.store, deps.clock.as_ref(), user, body.amount, key).await?;
    change_response(user, &applied)
}

/// `POST /api/v1/users/{userId}/balance/use`
#[utoipa::path(post, path = paths::BALANCE_USE, tag = "balance", summary = "Spend from a balance", params(("userId" = UserId, Path, description = "The user: signed in, the token's own"), IdempotencyHeader), request_body = ChangeRequest,
    responses(
        (status = 200, description = "Applied (or, with a known `Idempotency-Key`, the first answer again)", body = ChangeBody),
        (status = 400, description = "`INVALID_AMOUNT`, `INVALID_USER_ID`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`INSUFFICIENT_BALANCE`: nothing taken; `IDEMPOTENCY_KEY_REUSED`: the key came with another request", body = ErrorBody),
    ))]
pub async fn use_balance<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let body: ChangeRequest = json_body(&request)?;
    let user = acting_user(&request, &deps.identity, body.user_id)?;
    let applied = use_cases::use_balance(&deps.store, deps.clock.as_ref(), user, body.amount, key).await?;
    change_response(user, &applied)
}

/// `GET /api/v1/users/{userId}/balance/history?limit=&cursor=`
#[utoipa::path(get, path = paths::BALANCE_HISTORY, tag = "balance", summary = "A balance's history", params(("userId" = UserId, Path, description = "The user: signed in, the token's own"), PageQuery),
    responses(
        (status = 200, description = "The entries, newest first", body = HistoryBody),
        (status = 400, description = "`INVALID_USER_ID`, `INVALID_LIMIT`, `INVALID_CURSOR`", body = ErrorBody),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
    ))]
pub async fn history<S: BalanceHistory>(request: Request, deps: &Deps<S>) -> Handled {
    let user = acting_user(&request, &deps.identity, None)?;
    let page = use_cases::history(&deps.store, deps.clock.as_ref(), user, page_request(&request)?).await?;
    let body = HistoryBody { user_id: user, items: &page.items, next_cursor: page.next.as_ref().map(|c| c.as_str()) };
    json(StatusCode::OK, &body)
}

pub(super) fn change_response(user: UserId, applied: &Applied) -> Handled {
    let body = ChangeBody { user_id: user, balance: applied.entry.balance_after, entry: &applied.entry };
    Ok(replayed(json(StatusCode::OK, &body)?, applied.replayed))
}
