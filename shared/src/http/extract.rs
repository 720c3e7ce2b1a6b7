//! Request extractors: the only code that reads paths, queries, headers and bodies.
//!
//! [`acting_user`] is the single place that decides who is acting. Today the client
//! names the user, as in the baseline; when an API Gateway JWT authorizer is added,
//! this function compares the token's subject with the named user (403 otherwise) and
//! no use case changes.

use std::collections::HashMap;

use lambda_http::{Request, RequestExt as _};
use serde_json::value::RawValue;

use super::{ApiError, MAX_BODY_BYTES};
use crate::ids::{IdempotencyKey, UserId};
use crate::money::{Amount, MoneyError};
use crate::pagination::PageRequest;

/// The user the request acts for: the `{userId}` path parameter where the route has
/// one, otherwise `?userId=` or the JSON body's `userId` (which must agree if both are
/// sent).
pub fn acting_user(request: &Request) -> Result<UserId, ApiError> {
    if let Some(raw) = request.path_parameters_ref().and_then(|params| params.first("userId")) {
        return parse_user(raw);
    }
    let from_query =
        request.query_string_parameters_ref().and_then(|q| q.first("userId")).map(parse_user).transpose()?;
    let has_body = !request.body().as_ref().iter().all(u8::is_ascii_whitespace);
    let from_body = if has_body { json_object(request)?.user_id("userId")? } else { None };
    match (from_query, from_body) {
        (Some(query), Some(body)) if query != body => Err(ApiError::bad_request(
            "INVALID_USER_ID",
            format!("userId {query} in the query and {body} in the body disagree"),
        )),
        (Some(user), _) | (None, Some(user)) => Ok(user),
        (None, None) => {
            Err(ApiError::bad_request("INVALID_USER_ID", "userId is required, as ?userId= or in the JSON body"))
        }
    }
}

fn parse_user(raw: &str) -> Result<UserId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("INVALID_USER_ID", format!("userId {raw:?} must be a positive integer")))
}

/// A numeric id from the path, e.g. `path_id::<CouponId>(request, "couponId", "INVALID_COUPON_ID")`.
pub fn path_id<T: std::str::FromStr>(request: &Request, name: &str, code: &'static str) -> Result<T, ApiError> {
    let raw = request.path_parameters_ref().and_then(|params| params.first(name)).unwrap_or_default().to_owned();
    raw.parse().map_err(|_| ApiError::bad_request(code, format!("{name} {raw:?} must be a positive integer")))
}

/// The optional `Idempotency-Key` header.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else { return Ok(None) };
    let text = value.to_str().map_err(|_| invalid_key())?;
    IdempotencyKey::parse(text).map(Some).map_err(|_| invalid_key())
}

fn invalid_key() -> ApiError {
    ApiError::bad_request("INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 128 printable ASCII characters")
}

/// `limit` and `cursor` from the query string.
pub fn page_request(request: &Request) -> Result<PageRequest, ApiError> {
    let query = request.query_string_parameters();
    Ok(PageRequest::parse(query.first("limit"), query.first("cursor"))?)
}

/// A JSON object body whose values are kept as their exact source text, so numbers are
/// never rounded through `f64`.
pub struct JsonObject(HashMap<String, Box<RawValue>>);

/// Parses a raw JSON integer or digit string as an id.
pub fn parse_raw_id<T: std::str::FromStr>(raw: &str, field: &str, code: &'static str) -> Result<T, ApiError> {
    let text = match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).unwrap_or_default(),
        _ => raw.to_owned(),
    };
    text.parse().map_err(|_| ApiError::bad_request(code, format!("{field} {raw} must be a positive integer")))
}

/// Reads the body as a JSON object, with the size limit and clear errors.
pub fn json_object(request: &Request) -> Result<JsonObject, ApiError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the body must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("INVALID_BODY", "a JSON object body is required"));
    }
    let value: Box<RawValue> = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("MALFORMED_JSON", format!("the body is not valid JSON: {e}")))?;
    serde_json::from_str(value.get())
        .map(JsonObject)
        .map_err(|_| ApiError::bad_request("INVALID_BODY", "the body must be a JSON object"))
}

impl JsonObject {
    /// The raw JSON text of a field, if present.
    pub fn raw(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(|v| v.get())
    }

    /// An optional numeric id field (a JSON integer or a string of digits); `null`
    /// counts as absent.
    pub fn id<T: std::str::FromStr>(&self, field: &str, code: &'static str) -> Result<Option<T>, ApiError> {
        match self.raw(field) {
            None | Some("null") => Ok(None),
            Some(raw) => parse_raw_id(raw, field, code).map(Some),
        }
    }

    /// An optional id field: a JSON integer or a string of digits.
    pub fn user_id(&self, field: &str) -> Result<Option<UserId>, ApiError> {
        let Some(raw) = self.0.get(field).map(|v| v.get()) else { return Ok(None) };
        let text = match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(raw).unwrap_or_default(),
            _ => raw.to_owned(),
        };
        text.parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request("INVALID_USER_ID", format!("{field} {raw} must be a positive integer")))
    }

    /// A required money field: a JSON string or number, parsed exactly.
    pub fn amount(&self, field: &str) -> Result<Amount, ApiError> {
        let raw = self
            .0
            .get(field)
            .ok_or_else(|| ApiError::bad_request("INVALID_AMOUNT", format!("{field} is required")))?
            .get();
        let text = match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(raw)
                .map_err(|_| ApiError::bad_request("INVALID_AMOUNT", format!("{field} is not a valid string")))?,
            Some(b'-' | b'0'..=b'9') => raw.to_owned(),
            _ => {
                return Err(ApiError::bad_request(
                    "INVALID_AMOUNT",
                    format!("{field} must be a decimal string such as \"1000.00\" or a JSON number, not {raw}"),
                ))
            }
        };
        Amount::parse(&text).map_err(|e: MoneyError| super::error::invalid_amount(field, e))
    }
}
