//! The HTTP edge: the one error → response mapping, the request extractors, and one
//! handler per use case. Handlers are short: extract → parse → one use case → respond.

pub mod balance;
pub mod catalog;
pub mod coupons;
pub mod error;
pub mod extract;
pub mod orders;
pub mod top;

use lambda_http::{Body, Response};
use serde::Serialize;
use time::OffsetDateTime;

pub use error::ApiError;

/// Bodies past this are refused with 413 before any parsing (API Gateway allows 10 MB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn json<T: Serialize>(status: http::StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => respond(status, bytes),
        Err(err) => ApiError::internal(anyhow::Error::new(err).context("serialise response")).into_response(),
    }
}

fn respond(status: http::StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::Binary(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// Serialises a time as RFC 3339 UTC (`2026-11-24T10:00:00.000Z`).
pub fn serialize_time<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::clock::rfc3339(*at))
}

/// Runs one request inside a span that carries its route and request id, so every log
/// line of the request can be found together.
pub async fn instrumented<F, Fut>(route: &'static str, request: lambda_http::Request, handle: F) -> Response<Body>
where
    F: FnOnce(lambda_http::Request) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    use lambda_http::RequestExt as _;
    use tracing::Instrument as _;
    let request_id = request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .or_else(|| request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let span =
        tracing::info_span!("request", route, method = %request.method(), path = %request.uri().path(), request_id);
    async move {
        let response = handle(request).await;
        tracing::info!(status = response.status().as_u16(), "handled");
        response
    }
    .instrument(span)
    .await
}

/// A paginated list body: `{"items": [...], "nextCursor": "..." | null}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBody<'a, T: Serialize> {
    pub items: &'a [T],
    pub next_cursor: Option<&'a str>,
}

/// The `main` of an HTTP Lambda: build the dependencies once, then hand each API
/// Gateway request to `$handler` inside a request span.
#[macro_export]
macro_rules! http_lambda {
    ($name:literal, $handler:path) => {
        #[tokio::main]
        async fn main() -> Result<(), lambda_http::Error> {
            $crate::telemetry::init();
            let deps = &$crate::Deps::from_env().await?;
            lambda_http::run(lambda_http::service_fn(move |request: lambda_http::Request| async move {
                Ok::<_, lambda_http::Error>(
                    $crate::http::instrumented($name, request, |request| $handler(request, deps)).await,
                )
            }))
            .await
        }
    };
}
