//! Every error the API returns: `{"code": "SCREAMING_SNAKE", "message": "..."}` with a
//! fitting status. Faults become opaque 500/503 bodies; their full cause chain goes to
//! the log, never to the client. A message quotes at most a short prefix of what the
//! client sent ([`crate::echo`]).

use http::StatusCode;
use lambda_http::{Body, Response};

use crate::balance::BalanceError;
use crate::catalog::CatalogError;
use crate::coupons::CouponError;
use crate::orders::OrderError;
use crate::pagination::PageError;
use crate::top::TopError;

macro_rules! codes {
    ($($code:ident = $text:literal,)*) => {
        /// Every error code a function answers: the one vocabulary of the API, each
        /// named in the OpenAPI document (a test holds [`Code::ALL`] to it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$code,)*];

            /// As clients read it: `SCREAMING_SNAKE_CASE`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => $text,)*
                }
            }
        }
    };
}

codes! {
    AlreadyPaid = "ALREADY_PAID",
    BalanceLimitExceeded = "BALANCE_LIMIT_EXCEEDED",
    CouponAlreadyIssued = "COUPON_ALREADY_ISSUED",
    CouponExpired = "COUPON_EXPIRED",
    CouponNotFound = "COUPON_NOT_FOUND",
    CouponSoldOut = "COUPON_SOLD_OUT",
    CouponUnavailable = "COUPON_UNAVAILABLE",
    DuplicateField = "DUPLICATE_FIELD",
    Forbidden = "FORBIDDEN",
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED",
    InsufficientBalance = "INSUFFICIENT_BALANCE",
    InternalError = "INTERNAL_ERROR",
    InvalidAmount = "INVALID_AMOUNT",
    InvalidBody = "INVALID_BODY",
    InvalidCouponId = "INVALID_COUPON_ID",
    InvalidCursor = "INVALID_CURSOR",
    InvalidDate = "INVALID_DATE",
    InvalidIdempotencyKey = "INVALID_IDEMPOTENCY_KEY",
    InvalidLimit = "INVALID_LIMIT",
    InvalidName = "INVALID_NAME",
    InvalidOrderId = "INVALID_ORDER_ID",
    InvalidProducts = "INVALID_PRODUCTS",
    InvalidProductId = "INVALID_PRODUCT_ID",
    InvalidQuantity = "INVALID_QUANTITY",
    InvalidUserId = "INVALID_USER_ID",
    MalformedJson = "MALFORMED_JSON",
    OrderCancelled = "ORDER_CANCELLED",
    OrderExpired = "ORDER_EXPIRED",
    OrderNotFound = "ORDER_NOT_FOUND",
    OrderRefunded = "ORDER_REFUNDED",
    OrderTooLarge = "ORDER_TOO_LARGE",
    OutOfStock = "OUT_OF_STOCK",
    PayloadTooLarge = "PAYLOAD_TOO_LARGE",
    ProductNotFound = "PRODUCT_NOT_FOUND",
    RefundWindowClosed = "REFUND_WINDOW_CLOSED",
    ServiceUnavailable = "SERVICE_UNAVAILABLE",
    StockLimitExceeded = "STOCK_LIMIT_EXCEEDED",
    TooManyRequests = "TOO_MANY_REQUESTS",
    Unauthorized = "UNAUTHORIZED",
    UnknownField = "UNKNOWN_FIELD",
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE",
    UserNotFound = "USER_NOT_FOUND",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<String>,
}

/// Every error a function answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong, for programs: `SCREAMING_SNAKE_CASE`, listed per operation.
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$", examples("INSUFFICIENT_BALANCE"))]
    code: &'a str,
    /// What went wrong, for people.
    message: &'a str,
    /// API Gateway's id of the request (also its `apigw-requestid` header): quote it
    /// when reporting a failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    request_id: Option<&'a str>,
}

/// How long a client should wait before retrying a 503 (seconds): the SDK's own
/// retries have already spent their budget on the call that failed.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl ApiError {
    /// An error answer. Whatever the message quotes is cut to a short prefix here
    /// ([`crate::echo::shorten_quoted`]): the backstop for texts a library wrote with
    /// the client's input in them.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        let message = crate::echo::shorten_quoted(&message.into());
        ApiError { status, code, message, challenge: None }
    }

    /// No token, or one the authorizer would not accept: answered exactly as API
    /// Gateway's JWT authorizer answers (`{"message":"Unauthorized"}` with a bearer
    /// challenge), whether the authorizer or a function says it.
    pub fn unauthorized(description: &str) -> ApiError {
        // A quoted-string: nothing that could end it or break the header.
        let description: String =
            description.chars().map(|c| if c == '"' || c == '\\' || c.is_control() { ' ' } else { c }).collect();
        let challenge = format!(r#"Bearer scope="" error="invalid_token" error_description="{description}""#);
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: Code::Unauthorized,
            message: "Unauthorized".to_owned(),
            challenge: Some(challenge),
        }
    }

    /// The token is fine but may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, Code::Forbidden, message)
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A fault: logged in full here, opaque to the client.
    pub fn internal(cause: anyhow::Error) -> ApiError {
        tracing::error!(error = %format!("{cause:#}"), debug = ?cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::InternalError, "internal error")
    }

    /// A dependency is down or overloaded; nothing changed and a retry is safe.
    pub fn unavailable(cause: anyhow::Error) -> ApiError {
        tracing::error!(error = %format!("{cause:#}"), "dependency unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::ServiceUnavailable,
            "the service is temporarily unavailable; retry later",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        self.into_response_for(None)
    }

    /// The answer, its body carrying `requestId` (API Gateway's id of the request) so a
    /// client can quote it; a 503 also says when to retry (`Retry-After`).
    pub fn into_response_for(self, request_id: Option<&str>) -> Response<Body> {
        let bytes = if self.code == Code::Unauthorized {
            // The authorizer's own answer carries no id in its body.
            serde_json::to_vec(&serde_json::json!({ "message": self.message }))
        } else {
            serde_json::to_vec(&ErrorBody { code: self.code.as_str(), message: &self.message, request_id })
        };
        let bytes = bytes.unwrap_or_else(|_| b"{\"code\":\"INTERNAL_ERROR\"}".to_vec());
        let mut response = Response::new(Body::Binary(bytes));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        if let Some(challenge) = self.challenge.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
            headers.insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<BalanceError> for ApiError {
    fn from(err: BalanceError) -> ApiError {
        let message = err.to_string();
        match err {
            BalanceError::UnknownUser(_) => ApiError::new(StatusCode::NOT_FOUND, Code::UserNotFound, message),
            BalanceError::InsufficientBalance => {
                ApiError::new(StatusCode::CONFLICT, Code::InsufficientBalance, message)
            }
            BalanceError::BalanceLimitExceeded => {
                ApiError::new(StatusCode::CONFLICT, Code::BalanceLimitExceeded, message)
            }
            BalanceError::IdempotencyKeyReused => {
                ApiError::new(StatusCode::CONFLICT, Code::IdempotencyKeyReused, message)
            }
            BalanceError::BadCursor => ApiError::bad_request(Code::InvalidCursor, message),
            BalanceError::Unavailable(cause) => ApiError::unavailable(cause),
            BalanceError::Unexpected(cause) => ApiError::internal(cause),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> ApiError {
        let message = err.to_string();
        match err {
            CatalogError::UnknownProduct(_) => ApiError::new(StatusCode::NOT_FOUND, Code::ProductNotFound, message),
            CatalogError::BadCursor => ApiError::bad_request(Code::InvalidCursor, message),
            CatalogError::IdempotencyKeyReused => {
                ApiError::new(StatusCode::CONFLICT, Code::IdempotencyKeyReused, message)
            }
            CatalogError::StockLimitExceeded(_) => {
                ApiError::new(StatusCode::CONFLICT, Code::StockLimitExceeded, message)
            }
            CatalogError::Unavailable(cause) => ApiError::unavailable(cause),
            CatalogError::Unexpected(cause) => ApiError::internal(cause),
        }
    }
}

impl From<CouponError> for ApiError {
    fn from(err: CouponError) -> ApiError {
        let message = err.to_string();
        match err {
            CouponError::UnknownCoupon(_) => ApiError::new(StatusCode::NOT_FOUND, Code::CouponNotFound, message),
            CouponError::UnknownUser(_) => ApiError::new(StatusCode::NOT_FOUND, Code::UserNotFound, message),
            CouponError::SoldOut(_) => ApiError::new(StatusCode::CONFLICT, Code::CouponSoldOut, message),
            CouponError::AlreadyIssued(..) => ApiError::new(StatusCode::CONFLICT, Code::CouponAlreadyIssued, message),
            CouponError::Expired(_) => ApiError::new(StatusCode::CONFLICT, Code::CouponExpired, message),
            CouponError::OverBudget(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::TooManyRequests, message),
            CouponError::BadCursor => ApiError::bad_request(Code::InvalidCursor, message),
            CouponError::IdempotencyKeyReused => {
                ApiError::new(StatusCode::CONFLICT, Code::IdempotencyKeyReused, message)
            }
            CouponError::Unavailable(cause) => ApiError::unavailable(cause),
            CouponError::Unexpected(cause) => ApiError::internal(cause),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> ApiError {
        let message = err.to_string();
        let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, message.clone());
        match err {
            OrderError::UnknownUser(_) => ApiError::new(StatusCode::NOT_FOUND, Code::UserNotFound, message),
            OrderError::UnknownProduct(_) => ApiError::new(StatusCode::NOT_FOUND, Code::ProductNotFound, message),
            OrderError::UnknownOrder => ApiError::new(StatusCode::NOT_FOUND, Code::OrderNotFound, message),
            OrderError::CouponUnavailable => conflict(Code::CouponUnavailable),
            OrderError::OutOfStock(_) => conflict(Code::OutOfStock),
            OrderError::InsufficientBalance => conflict(Code::InsufficientBalance),
            OrderError::AlreadyPaid => conflict(Code::AlreadyPaid),
            OrderError::Expired => conflict(Code::OrderExpired),
            OrderError::Cancelled => conflict(Code::OrderCancelled),
            OrderError::Refunded => conflict(Code::OrderRefunded),
            OrderError::RefundWindowClosed => conflict(Code::RefundWindowClosed),
            OrderError::BalanceLimitExceeded => conflict(Code::BalanceLimitExceeded),
            OrderError::BadCursor => ApiError::bad_request(Code::InvalidCursor, message),
            OrderError::IdempotencyKeyReused => conflict(Code::IdempotencyKeyReused),
            OrderError::TooLarge => ApiError::bad_request(Code::OrderTooLarge, message),
            OrderError::Unavailable(cause) => ApiError::unavailable(cause),
            OrderError::Unexpected(cause) => ApiError::internal(cause),
        }
    }
}

impl From<TopError> for ApiError {
    fn from(err: TopError) -> ApiError {
        match err {
            TopError::Unavailable(cause) => ApiError::unavailable(cause),
            TopError::Unexpected(cause) => ApiError::internal(cause),
        }
    }
}

impl From<PageError> for ApiError {
    fn from(err: PageError) -> ApiError {
        let code = match err {
            PageError::BadLimit => Code::InvalidLimit,
            PageError::BadCursor => Code::InvalidCursor,
        };
        ApiError::bad_request(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).expect("JSON")
    }

    #[test]
    fn an_error_quotes_the_request_id_and_a_503_says_when_to_retry() {
        let conflict = ApiError::new(StatusCode::CONFLICT, Code::AlreadyPaid, "paid").into_response_for(Some("r-1"));
        assert_eq!(body(&conflict), serde_json::json!({"code": "ALREADY_PAID", "message": "paid", "requestId": "r-1"}));
        assert!(conflict.headers().get(http::header::RETRY_AFTER).is_none());

        let down = ApiError::unavailable(anyhow::anyhow!("connection refused")).into_response_for(Some("r-2"));
        assert_eq!(down.status(), 503);
        assert_eq!(down.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(body(&down)["requestId"], "r-2");
        assert!(!body(&down).to_string().contains("refused"), "the cause stays in the log");

        let without = ApiError::bad_request(Code::InvalidBody, "no").into_response_for(None);
        assert!(body(&without).get("requestId").is_none());
    }

    #[test]
    fn the_authorizers_401_keeps_its_own_shape() {
        let response = ApiError::unauthorized("expired").into_response_for(Some("r-3"));
        assert_eq!(body(&response), serde_json::json!({"message": "Unauthorized"}));
        assert!(response.headers().contains_key(http::header::WWW_AUTHENTICATE));
    }
}
