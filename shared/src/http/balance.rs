//! Handlers of the four balance routes.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::extract::{acting_user, idempotency_key, json_object, page_request};
use super::{json, ApiError};
use crate::balance::{use_cases, Applied, BalanceHistory, BalanceLedger, BalanceReader, LedgerEntry};
use crate::ids::UserId;
use crate::money::Money;
use crate::Deps;

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
pub async fn get_balance<S: BalanceReader>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let user = acting_user(&request)?;
        let balance = use_cases::get_balance(&deps.store, user).await?;
        Ok::<_, ApiError>(json(StatusCode::OK, &BalanceBody { user_id: user, balance }))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `POST /api/v1/users/{userId}/balance/charge`
pub async fn charge<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let user = acting_user(&request)?;
        let key = idempotency_key(&request)?;
        let amount = json_object(&request)?.amount("amount")?;
        let applied = use_cases::charge(&deps.store, deps.clock.as_ref(), user, amount, key).await?;
        Ok::<_, ApiError>(change_response(user, &applied))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `POST /api/v1/users/{userId}/balance/use`
pub async fn use_balance<S: BalanceLedger>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let user = acting_user(&request)?;
        let key = idempotency_key(&request)?;
        let amount = json_object(&request)?.amount("amount")?;
        let applied = use_cases::use_balance(&deps.store, deps.clock.as_ref(), user, amount, key).await?;
        Ok::<_, ApiError>(change_response(user, &applied))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

/// `GET /api/v1/users/{userId}/balance/history?limit=&cursor=`
pub async fn history<S: BalanceHistory>(request: Request, deps: &Deps<S>) -> Response<Body> {
    let result = async {
        let user = acting_user(&request)?;
        let page = page_request(&request)?;
        let page = use_cases::history(&deps.store, user, page).await?;
        let body =
            HistoryBody { user_id: user, items: &page.items, next_cursor: page.next.as_ref().map(|c| c.as_str()) };
        Ok::<_, ApiError>(json(StatusCode::OK, &body))
    };
    result.await.unwrap_or_else(ApiError::into_response)
}

fn change_response(user: UserId, applied: &Applied) -> Response<Body> {
    let body = ChangeBody { user_id: user, balance: applied.entry.balance_after, entry: &applied.entry };
    let mut response = json(StatusCode::OK, &body);
    if applied.replayed {
        response.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
    }
    response
}
