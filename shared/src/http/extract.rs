//! Request extractors: the only code that reads paths, queries, headers and bodies.
//!
//! A body is parsed once, into the route's typed request struct ([`json_body`]): ids
//! and money deserialise through their own parsers, an unknown or duplicate field is
//! refused, and an error names the field it is about with that field's code
//! (`INVALID_AMOUNT` for `amount`, `INVALID_PRODUCT_ID` for `products[2].productId` …).
//! Before any of that, a body must say it is JSON ([`require_json`]): anything else is
//! 415, so a cross-site form (`text/plain`, sent by a browser without a CORS preflight)
//! can never reach a write.
//!
//! [`acting_user`] is the single place that decides who is acting (see
//! [`crate::identity`]): the verified token's user, whom every place a request can
//! name a user (the `{userId}` path segment, `?userId=`, the body's `userId`) must
//! match — or, in the local trust-the-client mode, the user the request names.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt as _};
use serde::de::DeserializeOwned;

use super::error::Code;
use super::{ApiError, MAX_BODY_BYTES};
use crate::echo::quote;
use crate::identity::{Caller, ClaimNames, Identity};
use crate::ids::{IdempotencyKey, UserId};
use crate::pagination::PageRequest;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with no token: the catalogue, the top 5, a coupon's terms.
    Public,
    /// A signed-in customer, acting for themself.
    Customer,
    /// A signed-in operator (the operator role).
    Operator,
}

/// The error code of a request field, by its name: one vocabulary for every route.
fn field_code(field: &str) -> Code {
    match field {
        "amount" | "price" | "discount" => Code::InvalidAmount,
        "userId" => Code::InvalidUserId,
        "productId" => Code::InvalidProductId,
        "quantity" | "stock" | "add" | "total" | "shards" | "buckets" => Code::InvalidQuantity,
        "name" => Code::InvalidName,
        "endsAt" => Code::InvalidDate,
        "couponId" => Code::InvalidCouponId,
        "orderId" => Code::InvalidOrderId,
        "products" => Code::InvalidProducts,
        _ => Code::InvalidBody,
    }
}

/// A 400 about `field`, with the field's code: `"{field} {problem}"`.
pub fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(field_code(field), format!("{field} {problem}"))
}

/// The user the request acts for.
///
/// With verified claims: the token's user. A request that names a user anywhere —
/// the `{userId}` path segment, `?userId=`, the body's `userId` (`from_body`) — must
/// name that one (403 otherwise, nothing done); naming none means the token's user.
///
/// Trusting the client (local `AUTH=off`): the user the request names; every place
/// that names one must agree, and one must.
pub fn acting_user(request: &Request, identity: &Identity, from_body: Option<UserId>) -> Result<UserId, ApiError> {
    let user = decide_acting_user(request, identity, from_body)?;
    // The request's log lines say who acted (the span is `http::instrumented`'s).
    tracing::Span::current().record("user", user.get());
    Ok(user)
}

fn decide_acting_user(request: &Request, identity: &Identity, from_body: Option<UserId>) -> Result<UserId, ApiError> {
    let named = named_users(request, from_body)?;
    match identity {
        Identity::Claims(names) => {
            let caller = caller(request, names)?;
            let user = caller.user.ok_or_else(|| ApiError::forbidden("the token names no shop user"))?;
            match named.iter().find(|(_, other)| *other != user) {
                Some((place, other)) => {
                    Err(ApiError::forbidden(format!("this token acts for user {user}, not user {other} ({place})")))
                }
                None => Ok(user),
            }
        }
        Identity::TrustClient => {
            let mut named = named.into_iter();
            let (first, user) =
                named.next().ok_or_else(|| invalid("userId", "is required, as ?userId= or in the JSON body"))?;
            match named.find(|(_, other)| *other != user) {
                Some((place, other)) => {
                    Err(invalid("userId", format!("{user} in {first} and {other} in {place} disagree")))
                }
                None => Ok(user),
            }
        }
    }
}

/// The users a request names, and where.
fn named_users(request: &Request, from_body: Option<UserId>) -> Result<Vec<(&'static str, UserId)>, ApiError> {
    let from_path = request.path_parameters_ref().and_then(|params| params.first("userId")).map(parse_user);
    let from_query = request.query_string_parameters_ref().and_then(|q| q.first("userId")).map(parse_user);
    let named = [("the path", from_path.transpose()?), ("the query", from_query.transpose()?), ("the body", from_body)];
    Ok(named.into_iter().filter_map(|(place, user)| user.map(|user| (place, user))).collect())
}

/// The caller the authorizer verified; 401 when no verified token reached the
/// function (API Gateway would not have let the request through).
pub fn caller(request: &Request, names: &ClaimNames) -> Result<Caller, ApiError> {
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref().and_then(|a| a.jwt.as_ref()),
        _ => None,
    };
    let claims = claims.map(|jwt| &jwt.claims).filter(|claims| !claims.is_empty());
    claims.map(|claims| Caller::from_claims(claims, names)).ok_or_else(|| ApiError::unauthorized("no verified token"))
}

/// Operator routes: the caller must hold the operator role (anyone may, when the
/// client is trusted locally).
pub fn require_operator(request: &Request, identity: &Identity) -> Result<(), ApiError> {
    match identity {
        Identity::TrustClient => Ok(()),
        Identity::Claims(names) if caller(request, names)?.operator => Ok(()),
        Identity::Claims(names) => Err(ApiError::forbidden(format!("this needs the {} role", names.operator_role))),
    }
}

fn parse_user(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|e: crate::ids::IdError| invalid("userId", format!("{} {e}", quote(raw))))
}

/// An id from the path, e.g. `path_id::<CouponId>(request, "couponId")`.
pub fn path_id<T: std::str::FromStr>(request: &Request, name: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    let raw = request.path_parameters_ref().and_then(|params| params.first(name)).unwrap_or_default();
    raw.parse().map_err(|e: T::Err| invalid(name, format!("{} {e}", quote(raw))))
}

/// The optional `Idempotency-Key` header.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else { return Ok(None) };
    let text = value.to_str().map_err(|_| invalid_key())?;
    IdempotencyKey::parse(text).map(Some).map_err(|_| invalid_key())
}

fn invalid_key() -> ApiError {
    ApiError::bad_request(Code::InvalidIdempotencyKey, "Idempotency-Key must be 1 to 128 printable ASCII characters")
}

/// `limit` and `cursor` from the query string.
pub fn page_request(request: &Request) -> Result<PageRequest, ApiError> {
    let query = request.query_string_parameters();
    Ok(PageRequest::parse(query.first("limit"), query.first("cursor"))?)
}

/// The body as the route's request type `T`, with the size limit and errors that name
/// the field they are about.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    optional_json_body(request)?
        .ok_or_else(|| ApiError::bad_request(Code::InvalidBody, "a JSON object body is required"))
}

/// As [`json_body`], for routes whose body may be left out: `None` when it is empty
/// (or only whitespace).
pub fn optional_json_body<T: DeserializeOwned>(request: &Request) -> Result<Option<T>, ApiError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            format!("the body must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    require_json(request.headers())?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(None),
        Some(b'{') => {}
        Some(_) => {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(err) => malformed(err),
                Ok(_) => ApiError::bad_request(Code::InvalidBody, "the body must be a JSON object"),
            })
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(body_error)?;
    deserializer.end().map_err(malformed)?;
    Ok(Some(value))
}

/// A request body must be declared `Content-Type: application/json`: the type in any
/// case, with parameters (`; charset=utf-8`), but no charset other than UTF-8 (JSON is
/// UTF-8, RFC 8259). Missing, another type, or several Content-Type headers: 415
/// `UNSUPPORTED_MEDIA_TYPE`. The structured `application/*+json` types are refused
/// too: this API speaks plain JSON only, one media type for every route, and a
/// `merge-patch+json` body would promise semantics no route has.
pub fn require_json(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let mut values = headers.get_all(http::header::CONTENT_TYPE).iter();
    let refused = |what: String| {
        ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            format!("the body must be sent as Content-Type: application/json, not {what}"),
        )
    };
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(refused("without a Content-Type".to_owned())),
        (Some(_), Some(_)) => return Err(refused("several Content-Type headers".to_owned())),
        (Some(value), None) => value,
    };
    let text = value.to_str().map_err(|_| refused("a Content-Type that is not ASCII".to_owned()))?;
    let mut parts = text.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    let utf8 = parts.filter_map(|param| param.split_once('=')).all(|(name, value)| {
        !name.trim().eq_ignore_ascii_case("charset") || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    });
    if media_type.eq_ignore_ascii_case("application/json") && utf8 {
        Ok(())
    } else {
        Err(refused(quote(text)))
    }
}

fn malformed(err: serde_json::Error) -> ApiError {
    ApiError::bad_request(Code::MalformedJson, format!("the body is not valid JSON: {err}"))
}

/// Turns a deserialisation error into the 400 a client can act on.
fn body_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let inner = err.inner();
    if matches!(inner.classify(), Category::Syntax | Category::Eof | Category::Io) {
        return malformed(err.into_inner());
    }
    // serde_json appends the position; the field path says more.
    let text = inner.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    let quoted = |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next());
    if let Some(field) = quoted("unknown field `") {
        let field = field.to_owned();
        return ApiError::bad_request(
            Code::UnknownField,
            format!("{message}; `{field}` is not a field of this request"),
        );
    }
    if quoted("duplicate field `").is_some() {
        return ApiError::bad_request(Code::DuplicateField, message);
    }
    let path: Vec<String> = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    if let Some(missing) = quoted("missing field `") {
        // A line's missing field is the list's problem: `products` names it.
        let code_of = path.first().map(String::as_str).unwrap_or(missing);
        let place = err.path().to_string();
        let within = if path.is_empty() { String::new() } else { format!(" in {place}") };
        return ApiError::bad_request(field_code(code_of), format!("{missing} is required{within}"));
    }
    let place = err.path().to_string();
    let field = path.last().map(String::as_str).unwrap_or("body");
    let joiner = if message.starts_with("must ") { " " } else { ": " };
    ApiError::bad_request(field_code(field), format!("{place}{joiner}{message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProductId;
    use crate::money::Amount;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Line {
        #[allow(dead_code)]
        product_id: ProductId,
        #[allow(dead_code)]
        quantity: u64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Body {
        amount: Option<Amount>,
        user_id: Option<UserId>,
        #[allow(dead_code)]
        products: Option<Vec<Line>>,
    }

    fn parse(body: &str) -> Result<Option<Body>, ApiError> {
        parse_as(Some("application/json"), body)
    }

    fn parse_as(content_type: Option<&str>, body: &str) -> Result<Option<Body>, ApiError> {
        let mut request = Request::new(lambda_http::Body::Text(body.to_owned()));
        if let Some(content_type) = content_type {
            request.headers_mut().insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        optional_json_body(&request)
    }

    fn refused(body: &str) -> (&'static str, String) {
        let err = parse(body).expect_err(body);
        (err.code.as_str(), err.message)
    }

    #[test]
    fn money_and_ids_parse_exactly_from_strings_and_numbers() {
        let body = parse(r#"{"amount": 250.50, "userId": "7"}"#).unwrap().unwrap();
        assert_eq!(body.amount.unwrap().to_string(), "250.50");
        assert_eq!(body.user_id.unwrap().get(), 7);
        let body = parse(r#"{"amount": "0.10"}"#).unwrap().unwrap();
        assert_eq!(body.amount.unwrap().to_string(), "0.10");
        assert!(parse("  ").unwrap().is_none(), "an empty body is no body");
    }

    #[test]
    fn an_error_names_its_field_with_the_fields_code() {
        let (code, message) = refused(r#"{"amount": 1.234}"#);
        assert_eq!((code, message.as_str()), ("INVALID_AMOUNT", "amount must have at most 2 fractional digits"));
        let (code, message) = refused(r#"{"amount": 1e3}"#);
        assert_eq!(code, "INVALID_AMOUNT", "{message}");
        let (code, message) =
            refused(r#"{"products": [{"productId": 1, "quantity": 1}, {"productId": "x", "quantity": 1}]}"#);
        assert_eq!(code, "INVALID_PRODUCT_ID");
        assert!(message.starts_with("products[1].productId "), "{message}");
        let (code, _) = refused(r#"{"products": [{"productId": 1, "quantity": -2}]}"#);
        assert_eq!(code, "INVALID_QUANTITY");
        let (code, message) = refused(r#"{"products": [{"quantity": 1}]}"#);
        assert_eq!((code, message.as_str()), ("INVALID_PRODUCTS", "productId is required in products[0]"));
        let (code, _) = refused(r#"{"userId": -1}"#);
        assert_eq!(code, "INVALID_USER_ID");
    }

    #[test]
    fn unknown_and_duplicate_fields_are_refused() {
        let (code, message) = refused(r#"{"ammount": 5}"#);
        assert_eq!(code, "UNKNOWN_FIELD");
        assert!(message.contains("`ammount`"), "{message}");
        let (code, message) = refused(r#"{"amount": 5, "amount": 6}"#);
        assert_eq!((code, message.as_str()), ("DUPLICATE_FIELD", "duplicate field `amount`"));
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_refused_as_such() {
        assert_eq!(refused("not json").0, "MALFORMED_JSON");
        assert_eq!(refused(r#"{"amount": 5"#).0, "MALFORMED_JSON");
        assert_eq!(refused("[]").0, "INVALID_BODY");
        assert_eq!(refused(r#"{"amount": 5} trailing"#).0, "MALFORMED_JSON");
        let huge = format!(r#"{{"amount": "{}"}}"#, "9".repeat(MAX_BODY_BYTES));
        assert_eq!(parse(&huge).unwrap_err().status, http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn a_body_is_read_only_when_it_says_it_is_json() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json; foo=bar",
        ] {
            let body =
                parse_as(Some(accepted), r#"{"amount": "5.00"}"#).unwrap_or_else(|e| panic!("{accepted}: {e:?}"));
            assert_eq!(body.unwrap().amount.unwrap().to_string(), "5.00", "{accepted}");
        }
        for refused in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/merge-patch+json"),
            Some("application/json; charset=utf-16"),
            Some("application/jsonx"),
            Some(""),
        ] {
            let err = parse_as(refused, r#"{"amount": "5.00"}"#).expect_err(&format!("{refused:?}"));
            assert_eq!(
                (err.status, err.code),
                (http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::UnsupportedMediaType),
                "{refused:?}"
            );
        }
        // Before any parsing: a body that is not even JSON is refused for its type.
        assert_eq!(parse_as(Some("text/plain"), "amount=5").unwrap_err().code, Code::UnsupportedMediaType);
        // No body needs no type.
        assert!(parse_as(None, "").unwrap().is_none());
    }

    #[test]
    fn two_content_types_are_refused() {
        let mut request = Request::new(lambda_http::Body::Text("{}".to_owned()));
        request.headers_mut().append(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
        request.headers_mut().append(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(optional_json_body::<Body>(&request).unwrap_err().code, Code::UnsupportedMediaType);
    }

    #[test]
    fn an_error_quotes_at_most_the_start_of_a_long_value() {
        let long = "z".repeat(8192);
        for body in [
            format!(r#"{{"products": [{{"productId": 1, "quantity": "{long}"}}]}}"#),
            format!(r#"{{"{long}": 1}}"#),
            format!(r#"{{"userId": "{long}"}}"#),
            format!(r#"{{"amount": "{long}"}}"#),
            format!(r#"{{"amount": {{"{long}": 1}}}}"#),
        ] {
            let (code, message) = refused(&body);
            assert!(message.chars().count() < 200, "{code}: {message}");
            assert!(!message.contains(&"z".repeat(33)), "{code}: {message}");
        }
        let err = parse_as(Some(&format!("text/{long}")), "{}").unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
    }
}
