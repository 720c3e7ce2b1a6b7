//! The HTTP edge: the routes, the request extractors, the one error → response mapping,
//! and one handler per use case. Handlers are short: extract → parse → one use case →
//! respond, returning `Result<Response, ApiError>`; [`instrumented`] is the one place
//! an error becomes a response, and the one place every answer gets the headers the
//! edge owes it ([`edge_headers`]), so the deployed functions send them as the local
//! API does.

pub mod admin;
pub mod balance;
pub mod catalog;
pub mod coupons;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod orders;
pub mod params;
pub mod paths;
pub mod routes;
pub mod top;

use lambda_http::{Body, Response};
use serde::Serialize;

pub use error::{ApiError, Code};
use extract::Access;

/// What every handler returns.
pub type Handled = Result<Response<Body>, ApiError>;

/// Bodies past this are refused with 413 before any parsing (API Gateway allows 10 MB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON response.
pub fn json<T: Serialize>(status: http::StatusCode, value: &T) -> Handled {
    let bytes = serde_json::to_vec(value)
        .map_err(|err| ApiError::internal(anyhow::Error::new(err).context("serialise the response")))?;
    let mut response = Response::new(Body::Binary(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// A 201 for something that now has its own URL: the JSON body, and `Location` naming
/// that URL ([`paths::fill`]). A replayed creation
/// answers the same `Location`.
pub fn created<T: Serialize>(location: &str, value: &T) -> Handled {
    let mut response = json(http::StatusCode::CREATED, value)?;
    let location = http::HeaderValue::from_str(location)
        .map_err(|err| ApiError::internal(anyhow::Error::new(err).context(format!("Location {location:?}"))))?;
    response.headers_mut().insert(http::header::LOCATION, location);
    Ok(response)
}

/// The headers every answer of a function carries, success or error:
/// `X-Content-Type-Options: nosniff` (a browser never second-guesses the JSON type we
/// declare), and on every route that is not [`Access::Public`] `Cache-Control:
/// no-store`, since its answers are someone's data and no browser or proxy may keep a
/// copy. Public answers (the catalogue, the top 5, a coupon's terms) are left
/// cacheable.
pub fn edge_headers(response: &mut Response<Body>, access: Access) {
    let headers = response.headers_mut();
    headers.insert(http::header::X_CONTENT_TYPE_OPTIONS, http::HeaderValue::from_static("nosniff"));
    if access != Access::Public {
        headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    }
}

/// The header that marks the answer to a retry.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Marks the answer to a retry that matched an earlier request's `Idempotency-Key`.
pub fn replayed(mut response: Response<Body>, replayed: bool) -> Response<Body> {
    if replayed {
        response.headers_mut().insert(REPLAYED_HEADER, http::HeaderValue::from_static("true"));
    }
    response
}

/// The response for a handler's result: an error becomes its JSON answer here, and
/// nowhere else, carrying the API Gateway request id the client can quote.
pub fn respond_to(request_id: Option<&str>, handled: Handled) -> Response<Body> {
    handled.unwrap_or_else(|err| err.into_response_for(request_id))
}

/// [`respond_to`] a request with no id (handler tests).
pub fn respond(handled: Handled) -> Response<Body> {
    respond_to(None, handled)
}

/// The id API Gateway gave the request (`requestContext.requestId`, which it also
/// answers in the `apigw-requestid` header).
pub fn gateway_request_id(request: &lambda_http::Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt as _;
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.request_id.clone(),
        _ => None,
    }
}

/// Runs one request inside a span that carries its route and both request ids
/// (Lambda's and API Gateway's), so every log line of the request can be found
/// together and by the id its client saw, turns an error into its response, and gives
/// every answer the [`edge_headers`] of a route with `access`.
pub async fn instrumented<F, Fut>(
    route: &'static str,
    access: Access,
    request: lambda_http::Request,
    handle: F,
) -> Response<Body>
where
    F: FnOnce(lambda_http::Request) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    use lambda_http::RequestExt as _;
    use tracing::Instrument as _;
    let request_id = request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .or_else(|| request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let gateway_id = gateway_request_id(&request);
    // X-Ray's trace id, which Lambda hands each invocation when tracing is active.
    let trace_id = request.lambda_context_ref().and_then(|ctx| ctx.xray_trace_id.clone()).unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        route,
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        apigw_request_id = gateway_id.as_deref().unwrap_or_default(),
        trace_id,
        // The acting user, once the request has named one (extract::acting_user).
        user = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let budget = answer_within(&request);
    async move {
        let handled = match tokio::time::timeout(budget, handle(request)).await {
            Ok(handled) => handled,
            // Dropping the handler mid-call is what a lost connection does to it, and
            // every step is built to survive that: a change commits in one transaction
            // (with its Idempotency-Key's record), so a retry with the key finds the
            // first outcome and an unkeyed request's 503 says as much as a timeout;
            // what follows a commit (a ledger row, a payment's failure record) is
            // finished by a later read or is bookkeeping; a coupon gate reservation
            // left behind is checked against DynamoDB before anyone is refused by it.
            Err(_) => Err(ApiError::unavailable(anyhow::anyhow!(
                "the function gave up on the request after {budget:?}: its dependencies did not answer in time"
            ))),
        };
        let mut response = respond_to(gateway_id.as_deref(), handled);
        edge_headers(&mut response, access);
        let elapsed = started.elapsed();
        let status = response.status();
        tracing::info!(status = status.as_u16(), latency_ms = millis(elapsed), "handled");
        // The request's count and latency in one EMF record (one log line, not two).
        let class = [route, status_class(status)];
        crate::metrics::record(&[
            crate::metrics::sample(crate::metrics::REQUESTS, &class, 1.0),
            crate::metrics::sample(crate::metrics::LATENCY, &class[..1], crate::metrics::millis(elapsed)),
        ]);
        response
    }
    .instrument(span)
    .await
}

/// The longest a function works on one request before it answers 503 itself: below
/// the functions' timeout (template.yaml `Timeout: 10`), so a dependency that hangs
/// past the SDK's own timeouts (8 s an operation) still gets its client a JSON 503
/// with `Retry-After`, never Lambda's timeout (which API Gateway answers as a 500).
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(9);

/// What is left for a request: [`REQUEST_DEADLINE`], or less when the invocation's
/// own deadline (Lambda's) comes sooner, keeping a quarter second to answer.
fn answer_within(request: &lambda_http::Request) -> std::time::Duration {
    use lambda_http::RequestExt as _;
    let lambda_left = request.lambda_context_ref().filter(|ctx| ctx.deadline > 0).and_then(|ctx| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
        // Less than the margin left: answer at once rather than be cut off.
        Some(
            std::time::Duration::from_millis(ctx.deadline)
                .checked_sub(now + std::time::Duration::from_millis(250))
                .unwrap_or_default(),
        )
    });
    lambda_left.map_or(REQUEST_DEADLINE, |left| left.min(REQUEST_DEADLINE))
}

/// A duration in milliseconds to the microsecond, for a log line.
pub fn millis(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `2xx`, `4xx`, `5xx` …: the dimension requests are counted by.
fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A paginated list body: `{"items": [...], "nextCursor": "..." | null}`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListBody<'a, T: Serialize> {
    pub items: &'a [T],
    pub next_cursor: Option<&'a str>,
}

/// The `main` of an HTTP Lambda: build the dependencies once, then hand each API
/// Gateway request to the handler of `$route` (a type in [`routes`]) inside a request
/// span.
#[macro_export]
macro_rules! http_lambda {
    ($route:ident) => {
        #[tokio::main]
        async fn main() -> Result<(), lambda_http::Error> {
            use $crate::http::routes::Route as _;
            // Asked (`<binary> --route`; Lambda passes no arguments), the binary names
            // the route it serves and stops: the tests hold every function to the route
            // table this way.
            if std::env::args().nth(1).as_deref() == Some("--route") {
                let route = &$crate::http::routes::$route::METHOD;
                println!("{} {route} {}", $crate::http::routes::$route::FUNCTION, $crate::http::routes::$route::PATH);
                return Ok(());
            }
            $crate::telemetry::init();
            let deps = &$crate::Deps::from_env().await?;
            lambda_http::run(lambda_http::service_fn(move |request: lambda_http::Request| async move {
                Ok::<_, lambda_http::Error>(
                    $crate::http::instrumented(
                        $crate::http::routes::$route::FUNCTION,
                        $crate::http::routes::$route::ACCESS,
                        request,
                        |request| $crate::http::routes::$route::handle(request, deps),
                    )
                    .await,
                )
            }))
            .await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(access: Access, handled: Handled) -> Response<Body> {
        instrumented("test-route", access, lambda_http::Request::default(), |_| async { handled }).await
    }

    #[tokio::test]
    async fn every_answer_says_nosniff_and_only_public_ones_may_be_cached() {
        let ok = || json(http::StatusCode::OK, &serde_json::json!({"ok": true}));
        let refused = || Err(ApiError::bad_request(Code::InvalidBody, "no"));
        for access in [Access::Customer, Access::Operator] {
            for response in [answer(access, ok()).await, answer(access, refused()).await] {
                assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{access:?}");
                assert_eq!(response.headers()["cache-control"], "no-store", "{access:?}");
            }
        }
        for response in [answer(Access::Public, ok()).await, answer(Access::Public, refused()).await] {
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
            assert!(response.headers().get("cache-control").is_none());
        }
    }

    #[tokio::test]
    async fn a_handler_that_outlives_the_invocation_is_answered_503_before_lambda_kills_it() {
        use lambda_http::RequestExt as _;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let mut context = lambda_http::Context::default();
        // Lambda's deadline in 600 ms: the answer is due 250 ms before it.
        context.deadline = (now + std::time::Duration::from_millis(600)).as_millis() as u64;
        let request = lambda_http::Request::default().with_lambda_context(context);
        let hung = |_| std::future::pending::<Handled>();
        let response = instrumented("test-route", Access::Customer, request, hung).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
    }

    #[test]
    fn a_creation_names_its_new_url() {
        let response = created("/api/v1/orders/01J0000000000000000000000A", &serde_json::json!({})).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/api/v1/orders/01J0000000000000000000000A");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
