//! The local stand-in for API Gateway: every HTTP function of `template.yaml` on one
//! port, each route calling the same handler its Lambda calls.
//!
//! The routes come from the one route table, [`rushcart::http::routes::ROUTES`]. Each
//! request becomes a `lambda_http::Request` as API Gateway would hand it over: path and
//! query parameters filled in, and a request context with the request id (also sent
//! back as `apigw-requestid`) and the verified token's claims. What API Gateway does in
//! front of every function is a layer here: the JWT authorizer on every route that is
//! not public ([`issuer`]), request ids, idle, header-read, body and whole-request timeouts,
//! the limit on the request line and headers, the body limit, CORS ([`cors`]), and its
//! own answers (`{"message": "Not Found"}` for what no route takes,
//! `{"message": "Unauthorized"}` for a missing or bad token, `{"message": "Request-URI
//! Too Long"}` …). Every answer says `X-Content-Type-Options: nosniff`: the functions'
//! (they set it themselves, as deployed, with `Cache-Control: no-store` on every route
//! that is not public) and the local API's own.
//!
//! Local only, never deployed: `/_local/token` (mint a token), the issuer's
//! `/_local/.well-known/openid-configuration` and `/_local/jwks.json`,
//! `/_local/dynamodb-calls` (the DynamoDB calls each route made, [`calls`]),
//! `/_local/metrics` (the EMF metrics the functions wrote, summed, [`metrics`]; with the
//! capacity model on, its counters as `capacity`), and the
//! API's description: `/openapi.json` and Swagger UI at `/docs` ([`docs`]).

// Counting each request's DynamoDB calls wraps the handler futures once more, past
// the compiler's default depth for computing their layout.
#![recursion_limit = "256"]

pub mod calls;
pub mod cors;
pub mod docs;
pub mod feed;
pub mod flood;
pub mod head_errors;
pub mod issuer;
pub mod metrics;
pub mod pacing;
pub mod throttle;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, RawPathParamsRejection};
use axum::extract::{RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use issuer::LocalIssuer;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt as _};
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::http::routes::{dispatch, Access, RouteInfo, ROUTES};
use rushcart::http::{ApiError, Code, MAX_BODY_BYTES};
use rushcart::Deps;
use tokio::net::TcpListener;

/// How long a client and a function may take, as API Gateway bounds them.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a keep-alive connection between requests: from the end of an answer (or
    /// the connection's start) to the first byte of the next request.
    pub idle: Duration,
    /// For the request line and headers, from their first byte.
    pub header_read: Duration,
    /// For the whole body, from the end of the headers: a body still arriving then is
    /// refused (408) and no function is called.
    pub body_read: Duration,
    /// For the function's answer, from the moment it is called with the whole request:
    /// API Gateway's integration timeout for an HTTP API.
    pub integration: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            // API Gateway keeps an idle connection open for a minute and more; the
            // baseline's own client sleeps 10 s between the requests of one connection.
            idle: Duration::from_secs(60),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            integration: Duration::from_secs(30),
        }
    }
}

/// The header API Gateway answers with the request's id.
pub const REQUEST_ID_HEADER: &str = "apigw-requestid";

/// API Gateway HTTP API's limit on the request line plus headers (bytes).
pub const MAX_HEAD_BYTES: usize = 10_240;

/// hyper's read buffer, which must hold a whole request head: far past
/// [`MAX_HEAD_BYTES`], so that heads up to this size reach the [`gateway`] layer and
/// are refused there with API Gateway's JSON answer. A head past it gets hyper's own
/// 431, which [`head_errors`] gives the same JSON body (see [`serve`]).
const READ_BUFFER_BYTES: usize = 128 * 1024;

/// The most header lines hyper parses: as many of the shortest possible line (`a:` and
/// CRLF, 4 bytes) as fit in [`MAX_HEAD_BYTES`], so that every head API Gateway would
/// take is parsed and [`gateway`] decides (hyper's default stops at 100).
const MAX_HEADER_LINES: usize = MAX_HEAD_BYTES / 4;

/// How the local API stands in for API Gateway.
#[derive(Clone, Default)]
pub struct Settings {
    pub timeouts: Timeouts,
    /// The issuer whose tokens the authorizer accepts; `None` is `AUTH=off`, the
    /// baseline's trust-the-client mode (the functions then take the user the client
    /// names).
    pub issuer: Option<Arc<LocalIssuer>>,
    /// The `swagger-ui-dist` folder `/docs` serves its assets from;
    /// [`docs::DEFAULT_ASSETS`] (from the working directory) when `None`.
    pub swagger_ui: Option<std::path::PathBuf>,
    /// The origins allowed to call from a browser (`CORS_ALLOWED_ORIGINS`).
    pub cors: Arc<cors::Cors>,
    /// The route throttles of template.yaml; `None` lifts them (`THROTTLE=off`).
    pub throttles: Option<Arc<throttle::Throttles>>,
    /// The capacity model's counters (`CAPACITY_METRICS_URL`, with `CAPACITY=aws`):
    /// `/_local/metrics` shows them as `capacity`.
    pub capacity_metrics: Option<String>,
    /// The edge's flood rules (`FLOOD=on`, [`flood`]); `None`: no rule in front.
    pub flood: Option<Arc<flood::FloodRules>>,
}

/// The whole local API: every route of the table, API Gateway's own answers, and the
/// layers that stand for what it does in front of every function.
pub fn router(deps: Arc<Deps<DynamoStore>>, settings: Settings) -> Router {
    // What the functions emit is summed for /_local/metrics.
    metrics::install();
    let mut router = Router::new();
    for route in ROUTES {
        let deps = deps.clone();
        let function = route.function;
        let authorizer = settings.issuer.clone().filter(|_| route.access != Access::Public);
        let throttles = settings.throttles.clone();
        let route_key = Arc::new(route.key());
        let timeouts = settings.timeouts;
        let method = MethodFilter::try_from(route.method.clone()).expect("the route table uses standard methods");
        let template = route.path;
        router = router.route(
            route.path,
            on(method, move |params: Result<RawPathParams, RawPathParamsRejection>, request: Request| {
                let (deps, authorizer, throttles, route_key) =
                    (deps.clone(), authorizer.clone(), throttles.clone(), route_key.clone());
                // A parameter that does not decode to UTF-8 (`%ff`) is handed over as
                // sent, for the function to refuse in JSON after the authorizer has
                // run, as API Gateway would; axum's own refusal is plain text.
                let params: Vec<(String, String)> = match params {
                    Ok(params) => params.iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
                    Err(_) => raw_params(template, request.uri().path()),
                };
                async move {
                    // API Gateway throttles a route before its authorizer runs.
                    if throttles.is_some_and(|throttles| !throttles.admit(&route_key)) {
                        metrics::local().gateway_answer(&route_key, StatusCode::TOO_MANY_REQUESTS);
                        return gateway_message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                    }
                    let claims = match &authorizer {
                        None => None,
                        Some(issuer) => {
                            let header =
                                request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                            match issuer.verify(header) {
                                Ok(claims) => Some(claims),
                                Err(why) => {
                                    metrics::local().gateway_answer(&route_key, StatusCode::UNAUTHORIZED);
                                    return from_lambda(ApiError::unauthorized(&why).into_response());
                                }
                            }
                        }
                    };
                    invoke(function, params, request, claims, &deps, timeouts).await
                }
            }),
        );
    }
    if let Some(issuer) = settings.issuer.clone() {
        router = router.merge(issuer_routes(issuer));
    }
    let assets = settings.swagger_ui.clone().unwrap_or_else(|| docs::DEFAULT_ASSETS.into());
    router = router.merge(docs::routes(assets));
    let timeouts = settings.timeouts;
    let cors = settings.cors.clone();
    let capacity = settings.capacity_metrics.clone();
    let flood = settings.flood.clone();
    // Each layer wraps what is above it, so a request meets the gateway's limits and
    // ids first, then CORS (a preflight never reaches a route or the authorizer), then
    // the body timeout and the routes.
    router
        .route("/_local/dynamodb-calls", axum::routing::get(|| async { axum::Json(calls::snapshot()) }))
        .route(
            "/_local/metrics",
            axum::routing::get(move || async move {
                let mut snapshot = metrics::local().snapshot();
                if let Some(url) = &capacity {
                    snapshot["capacity"] = capacity_metrics(url).await;
                }
                axum::Json(snapshot)
            })
            .delete(|| async {
                metrics::local().reset();
                StatusCode::NO_CONTENT
            }),
        )
        .merge(throttle_routes(settings.throttles.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(timeouts.body_read))
        .layer(axum::middleware::from_fn(move |request, next| cors::layer(cors.clone(), request, next)))
        .layer(axum::middleware::from_fn(move |request, next| flood_rules(flood.clone(), request, next)))
        .layer(axum::middleware::from_fn(gateway))
}

/// The edge's flood rules in front of everything API Gateway does ([`flood`]): a source
/// past its limit is answered 403 `{"message":"Forbidden"}`, as WAF answers it. The
/// local API's own endpoints are not behind them (they are never deployed).
async fn flood_rules(
    rules: Option<Arc<flood::FloodRules>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(rules) = rules.filter(|_| !request.uri().path().starts_with("/_local/")) else {
        return next.run(request).await;
    };
    let address = request.extensions().get::<flood::ClientAddress>().map(|client| client.0);
    let authorization = request.headers().get(http::header::AUTHORIZATION).map(|value| value.as_bytes());
    match rules.admit(address, authorization, std::time::Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(rule) => {
            metrics::local().gateway_answer(&format!("WAF {rule}"), StatusCode::FORBIDDEN);
            gateway_message(StatusCode::FORBIDDEN, "Forbidden")
        }
    }
}

/// The capacity model's counters, or what kept them from being read.
async fn capacity_metrics(url: &str) -> serde_json::Value {
    let read = async {
        let response = reqwest::get(url).await?.error_for_status()?;
        response.json::<serde_json::Value>().await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), read).await {
        Ok(Ok(counters)) => counters,
        Ok(Err(err)) => serde_json::json!({ "error": format!("{url}: {err}") }),
        Err(_) => serde_json::json!({ "error": format!("{url}: no answer within 2 s") }),
    }
}

/// `GET /_local/throttles` (the limits now) and `PUT /_local/throttles`
/// `{"route": "GET /api/v1/products/top", "rate": 0, "burst": 0}`: an operator's change
/// of a route's limits at run time, as `aws apigatewayv2 update-stage --route-settings`.
fn throttle_routes(throttles: Option<Arc<throttle::Throttles>>) -> Router {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Change {
        route: String,
        rate: f64,
        burst: f64,
    }
    let describe = |throttles: &throttle::Throttles| {
        let limit = |l: throttle::Limit| serde_json::json!({ "rate": l.rate, "burst": l.burst });
        let routes: serde_json::Map<String, serde_json::Value> =
            throttles.routes().into_iter().map(|(key, l)| (key, limit(l))).collect();
        axum::Json(serde_json::json!({ "default": limit(throttles.default_limit()), "routes": routes })).into_response()
    };
    let off = || gateway_message(StatusCode::NOT_FOUND, "throttling is off (THROTTLE=off)");
    let reading = throttles.clone();
    Router::new().route(
        "/_local/throttles",
        axum::routing::get(move || async move { reading.as_deref().map(describe).unwrap_or_else(off) }).put(
            move |body: Result<axum::body::Bytes, BytesRejection>| async move {
                let Some(throttles) = throttles.as_deref() else { return off() };
                let body = match body {
                    Ok(body) => body,
                    Err(refused) => return body_refused(&refused),
                };
                let change: Change = match serde_json::from_slice(&body) {
                    Ok(change) => change,
                    Err(err) => {
                        let message = format!(r#"expected {{"route": "GET /path", "rate": n, "burst": n}}: {err}"#);
                        return from_lambda(ApiError::bad_request(Code::InvalidBody, message).into_response());
                    }
                };
                let known = ROUTES.iter().any(|r| r.key() == change.route);
                let valid = change.rate >= 0.0 && change.burst >= 0.0 && change.rate.is_finite() && change.burst.is_finite();
                if !known || !valid {
                    let message = format!("{:?} is no route, or its limits are not numbers ≥ 0", change.route);
                    return from_lambda(ApiError::bad_request(Code::InvalidBody, message).into_response());
                }
                throttles.set(&change.route, throttle::Limit { rate: change.rate, burst: change.burst });
                tracing::warn!(route = %change.route, rate = change.rate, burst = change.burst, "route throttle changed");
                describe(throttles)
            },
        ),
    )
}

/// API Gateway's answer to a method or path no route takes.
async fn not_found() -> Response {
    gateway_message(StatusCode::NOT_FOUND, "Not Found")
}

/// An answer API Gateway gives itself: `{"message": …}`.
pub fn gateway_message(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
}

/// What API Gateway does around every request: refuse a request line and headers past
/// [`MAX_HEAD_BYTES`], give the request an id (in its extensions for the function, and
/// in the `apigw-requestid` answer header),
/// and say `nosniff` on every answer.
async fn gateway(mut request: Request, next: axum::middleware::Next) -> Response {
    let id = RequestId(ulid::Ulid::generate().to_string());
    let started = std::time::Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = if let Some(refusal) = head_too_large(&request) {
        refusal
    } else {
        request.extensions_mut().insert(id.clone());
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    headers.insert(http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The access log, as the HTTP API's: one line per request, throttled and refused
    // ones too (those never reach a function's log), findable by the id the client saw.
    if !path.starts_with("/_local/") {
        tracing::info!(
            target: "access",
            request_id = %id.0,
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            latency_ms = rushcart::http::millis(started.elapsed()),
            "access"
        );
    }
    response
}

/// API Gateway's answer to a request line plus headers past [`MAX_HEAD_BYTES`]: 414
/// when the URI alone is past it, 431 otherwise. The size is counted as the head's
/// HTTP/1.1 text: `METHOD SP target SP HTTP/1.1 CRLF`, each `name: value CRLF`, and the
/// closing CRLF (hyper has already dropped the blanks around values, which API Gateway
/// would not count either).
fn head_too_large(request: &Request) -> Option<Response> {
    let target = request.uri().to_string().len();
    if target > MAX_HEAD_BYTES {
        return Some(gateway_message(StatusCode::URI_TOO_LONG, "Request-URI Too Long"));
    }
    let line = request.method().as_str().len() + 1 + target + 1 + "HTTP/1.1".len() + 2;
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + 2).sum();
    (line + headers + 2 > MAX_HEAD_BYTES)
        .then(|| gateway_message(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large"))
}

/// The id API Gateway gives a request.
#[derive(Debug, Clone)]
struct RequestId(String);

/// The local issuer's own routes: tokens, discovery, keys.
fn issuer_routes(issuer: Arc<LocalIssuer>) -> Router {
    let minting = issuer.clone();
    let discovery = issuer.clone();
    Router::new()
        .route(
            "/_local/token",
            axum::routing::post(move |headers: http::HeaderMap, body: Result<axum::body::Bytes, BytesRejection>| {
                let issuer = minting.clone();
                async move {
                    match body {
                        Ok(body) => mint(&issuer, &headers, &body),
                        Err(refused) => body_refused(&refused),
                    }
                }
            }),
        )
        .route(
            "/_local/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery.discovery()) }),
        )
        .route("/_local/jwks.json", axum::routing::get(move || async move { axum::Json(issuer.jwks()) }))
}

/// A local route's body that could not be read (past axum's 2 MB default, say), refused
/// in JSON as the functions refuse theirs, not in axum's plain text.
fn body_refused(refused: &BytesRejection) -> Response {
    let status = refused.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { Code::PayloadTooLarge } else { Code::InvalidBody };
    from_lambda(ApiError::new(status, code, refused.body_text()).into_response())
}

/// `POST /_local/token` `{"userId": 42}` or `{"userId": 42, "admin": true}`, sent as
/// JSON (`Content-Type: application/json`) as the functions' bodies are.
fn mint(issuer: &LocalIssuer, headers: &http::HeaderMap, body: &[u8]) -> Response {
    if let Err(refused) = rushcart::http::extract::require_json(headers) {
        return from_lambda(refused.into_response());
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct TokenRequest {
        user_id: rushcart::ids::UserId,
        #[serde(default)]
        admin: bool,
    }
    let request: TokenRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => {
            let message = format!(r#"expected {{"userId": n, "admin"?: true}}: {err}"#);
            return from_lambda(ApiError::bad_request(Code::InvalidBody, message).into_response());
        }
    };
    match issuer.mint(request.user_id, request.admin) {
        Ok(token) => axum::Json(serde_json::json!({
            "token": token,
            "tokenType": "Bearer",
            "expiresIn": issuer::TOKEN_LIFETIME.as_secs(),
        }))
        .into_response(),
        Err(err) => from_lambda(ApiError::internal(err).into_response()),
    }
}

/// Hands one request to `function` as API Gateway would, with the claims its
/// authorizer verified.
async fn invoke(
    function: &'static str,
    params: Vec<(String, String)>,
    request: Request,
    claims: Option<issuer::Claims>,
    deps: &Deps<DynamoStore>,
    timeouts: Timeouts,
) -> Response {
    let (parts, body) = request.into_parts();
    // The function refuses bodies past its limit; read no more than that, so a large
    // body is never buffered whole. The whole body must be in within `body_read` (the
    // layer's own timer restarts with every frame, so a slow trickle would pass it).
    let Ok(read) = tokio::time::timeout(timeouts.body_read, Limited::new(body, MAX_BODY_BYTES).collect()).await else {
        return gateway_message(StatusCode::REQUEST_TIMEOUT, "Request Timeout");
    };
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(err) if caused_by::<LengthLimitError>(err.as_ref()) => {
            let error = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            );
            return from_lambda(error.into_response());
        }
        Err(err) if caused_by::<tower_http::timeout::TimeoutError>(err.as_ref()) => {
            return gateway_message(StatusCode::REQUEST_TIMEOUT, "Request Timeout");
        }
        Err(err) => {
            tracing::debug!(error = %err, "reading a request body failed");
            return gateway_message(StatusCode::BAD_REQUEST, "Bad Request");
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(err) => Body::Binary(err.into_bytes()),
        }
    };
    let path_parameters: HashMap<String, String> = params.into_iter().collect();
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        query.entry(name.into_owned()).or_default().push(value.into_owned());
    }
    let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.clone());
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(parts.uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".to_owned());
    http.source_ip = Some("127.0.0.1".to_owned());
    http.user_agent = parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = ROUTES.iter().find(|r| r.function == function).map(RouteInfo::key);
    context.request_id = request_id;
    context.stage = Some("$default".to_owned());
    context.http = http;
    context.time_epoch = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    if let Some(claims) = claims {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims;
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
    }
    let path = parts.uri.path().to_owned();
    let mut lambda_request = lambda_http::Request::new(body);
    *lambda_request.method_mut() = parts.method;
    *lambda_request.uri_mut() = parts.uri;
    *lambda_request.headers_mut() = parts.headers;
    let lambda_request = lambda_request
        .with_path_parameters(path_parameters)
        .with_query_string_parameters(query)
        .with_raw_http_path(path)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    // API Gateway's integration timeout runs from the call, not from the request's
    // first byte: a slow upload does not eat into the function's time.
    match tokio::time::timeout(timeouts.integration, calls::counted(function, dispatch(function, lambda_request, deps)))
        .await
    {
        Ok(Some(response)) => from_lambda(response),
        Ok(None) => not_found().await,
        Err(_) => gateway_message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
    }
}

/// The parameters of route `template` (`/api/v1/users/{userId}/balance`) in `path`, each
/// as its segment was sent, still percent-encoded.
fn raw_params(template: &str, path: &str) -> Vec<(String, String)> {
    template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(part, segment)| {
            let name = part.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), segment.to_owned()))
        })
        .collect()
}

/// Whether `T` is anywhere in the error's chain of causes.
fn caused_by<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<T>() {
            return true;
        }
        cause = err.source();
    }
    false
}

fn from_lambda(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Runs the scheduled top-5 refresh every `period`, as EventBridge does on AWS, until
/// the process ends.
pub async fn run_refresher(deps: Arc<Deps<DynamoStore>>, period: std::time::Duration) {
    let Some(cache) = deps.top_cache.clone() else { return };
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        match rushcart::top::refresh(&deps.store, cache.as_ref(), deps.clock.as_ref()).await {
            Ok(value) => tracing::info!(items = value.items.len(), "top 5 refreshed"),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "top-5 refresh failed"),
        }
    }
}

/// Serves until `shutdown` completes. Connections are kept alive between requests, for
/// [`Timeouts::idle`]; a request's head must arrive within [`Timeouts::header_read`] of
/// its first byte ([`pacing`] keeps both clocks; hyper's own header timer is off).
///
/// What hyper itself refuses — a request it cannot parse at all (400), a head past
/// [`READ_BUFFER_BYTES`] (431), a URI past 65,534 bytes (414) — hyper answers inside its
/// connection state machine with a bare head; [`head_errors`] swaps that for API
/// Gateway's `{"message": …}` on its way out. Everything that parses, however large up to
/// the buffer, reaches [`gateway`] and gets the JSON answer there.
pub async fn serve(
    listener: TcpListener,
    deps: Arc<Deps<DynamoStore>>,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) {
    let timeouts = settings.timeouts;
    let service = hyper_util::service::TowerToHyperService::new(router(deps, settings));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let routes = service.clone();
        // Each request knows its connection's client, for the flood rules.
        let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(flood::ClientAddress(peer.ip()));
            hyper::service::Service::call(&routes, request)
        });
        tokio::spawn(async move {
            let stream = pacing::Paced::new(head_errors::JsonErrors::new(stream), timeouts.idle, timeouts.header_read);
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .max_buf_size(READ_BUFFER_BYTES)
                .max_headers(MAX_HEADER_LINES)
                .header_read_timeout(None)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}
