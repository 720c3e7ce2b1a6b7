//! Handlers of the four balance routes.

use http::StatusCode;
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use super::extract::{acting_user, idempotency_key, json_body, page_request};
use super::{json, replayed, ApiError, Handled};
use crate::balance::{use_cases, Applied, BalanceHistory, BalanceLedger, BalanceReader, LedgerEntry};
use crate::ids::UserId;
use crate::money::{Amount, Money};
use crate::Deps;

/// `{"amount": "1000.00"}` (a string or a JSON number), optionally naming the user.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeRequest {
    amount: Amount,
    user_id: Option<UserId>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BalanceBody {
    user_id: UserId,
    balance: Money,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeBody<'a> {
    user_id: UserId,
    balance: Money,
    entry: &'a LedgerEntry,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryBody<'a> {
    user_id: UserId,
    items: &'a [LedgerEntry],
    next_cursor: Option<&'a str>,
}

/// `GET /api/v1/users/{userId}/balance`
pub async fn get_balance<S: BalanceReader>(request: Request, deps: &Deps<S>) -> Handled {
    let user = acting_user(&request, &deps.identity, None)?;
    let balance = use_cases::get_balance(&deps.store, user).await?;
    json(StatusCode::OK, &BalanceBody { user_id: user, balance })
}

/// `POST /api/v1/users/{userId}/balance/charge`: the customer's own top-up, unless the
/// shop turned self-service top-up off (then an operator credits balances).
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
pub async fn use_balance<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Handled {
    let key = idempotency_key(&request)?;
    let body: ChangeRequest = json_body(&request)?;
    let user = acting_user(&request, &deps.identity, body.user_id)?;
    let applied = use_cases::use_balance(&deps.store, deps.clock.as_ref(), user, body.amount, key).await?;
    change_response(user, &applied)
}

/// `GET /api/v1/users/{userId}/balance/history?limit=&cursor=`
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
