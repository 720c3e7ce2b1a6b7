//! The local stand-in for API Gateway: every HTTP function of `template.yaml` on one
//! port, each route calling the same handler its Lambda calls.
//!
//! The routes come from the one route table, [`rushcart::http::routes::ROUTES`]. Each
//! request becomes a `lambda_http::Request` as API Gateway would hand it over: path and
//! query parameters filled in, and a request context with the request id (also sent
//! back as `apigw-requestid`). What API Gateway does in front of every function is a
//! layer here: request ids, header-read, body and whole-request timeouts, the body
//! limit, and its own answers (`{"message": "Not Found"}` for what no route takes).
//! `GET /_local/dynamodb-calls` (local only, never deployed) reports the DynamoDB calls
//! each route made ([`calls`]).

// Counting each request's DynamoDB calls wraps the handler futures once more, past
// the compiler's default depth for computing their layout.
#![recursion_limit = "256"]

pub mod calls;
pub mod feed;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt as _};
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::http::routes::{dispatch, ROUTES};
use rushcart::http::{ApiError, MAX_BODY_BYTES};
use rushcart::Deps;
use tokio::net::TcpListener;

/// How long a client and a function may take, as API Gateway bounds them.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the request line and headers.
    pub header_read: Duration,
    /// For the body, once the headers are in.
    pub body_read: Duration,
    /// For the function's answer: API Gateway's integration timeout for an HTTP API.
    pub integration: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            integration: Duration::from_secs(30),
        }
    }
}

/// The header API Gateway answers with the request's id.
pub const REQUEST_ID_HEADER: &str = "apigw-requestid";

/// The whole local API: every route of the table, API Gateway's own answers, and the
/// layers that stand for what it does in front of every function.
pub fn router(deps: Arc<Deps<DynamoStore>>, timeouts: Timeouts) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        let deps = deps.clone();
        let function = route.function;
        let method = MethodFilter::try_from(route.method.clone()).expect("the route table uses standard methods");
        router = router.route(
            route.path,
            on(method, move |params: RawPathParams, request: Request| {
                let deps = deps.clone();
                async move { invoke(function, params, request, &deps).await }
            }),
        );
    }
    router
        .route("/_local/dynamodb-calls", axum::routing::get(|| async { axum::Json(calls::snapshot()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(timeouts.body_read))
        .layer(axum::middleware::from_fn(move |request, next| gateway(request, next, timeouts.integration)))
}

/// API Gateway's answer to a method or path no route takes.
async fn not_found() -> Response {
    gateway_message(StatusCode::NOT_FOUND, "Not Found")
}

/// An answer API Gateway gives itself: `{"message": …}`.
pub fn gateway_message(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
}

/// What API Gateway does around every request: give it an id (in the request's
/// extensions for the function, and in the `apigw-requestid` answer header), and cut
/// it off after the integration timeout.
async fn gateway(mut request: Request, next: axum::middleware::Next, integration: Duration) -> Response {
    let id = RequestId(ulid::Ulid::new().to_string());
    request.extensions_mut().insert(id.clone());
    let mut response = match tokio::time::timeout(integration, next.run(request)).await {
        Ok(response) => response,
        Err(_) => gateway_message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
    };
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The id API Gateway gives a request.
#[derive(Debug, Clone)]
struct RequestId(String);

/// Hands one request to `function` as API Gateway would.
async fn invoke(function: &'static str, params: RawPathParams, request: Request, deps: &Deps<DynamoStore>) -> Response {
    let (parts, body) = request.into_parts();
    // The function refuses bodies past its limit; read no more than that, so a large
    // body is never buffered whole.
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if caused_by::<LengthLimitError>(err.as_ref()) => {
            let error = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
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
    let path_parameters: HashMap<String, String> =
        params.iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
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
    context.route_key = ROUTES.iter().find(|r| r.function == function).map(|r| format!("{} {}", r.method, r.path));
    context.request_id = request_id;
    context.stage = Some("$default".to_owned());
    context.http = http;
    context.time_epoch = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
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
    let response = calls::counted(function, dispatch(function, lambda_request, deps)).await;
    match response {
        Some(response) => from_lambda(response),
        None => not_found().await,
    }
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

/// Serves until `shutdown` completes, with API Gateway's timeouts.
pub async fn serve(listener: TcpListener, deps: Arc<Deps<DynamoStore>>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, deps, Timeouts::default(), shutdown).await
}

/// [`serve`] with other timeouts. Connections are kept alive between requests.
pub async fn serve_with(
    listener: TcpListener,
    deps: Arc<Deps<DynamoStore>>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let service = hyper_util::service::TowerToHyperService::new(router(deps, timeouts));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (stream, _) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.header_read)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}
