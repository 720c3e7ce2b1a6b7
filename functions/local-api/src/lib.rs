//! The local stand-in for API Gateway: every HTTP function of `template.yaml` on one
//! port, each route calling the same handler its Lambda calls.
//!
//! [`ROUTES`] is the route table; a test compares it with the template's `HttpApi`
//! events, so the two cannot drift. Requests become `lambda_http::Request`s with path
//! and query parameters filled in as API Gateway would. `GET /_local/dynamodb-calls`
//! (local only, never deployed) reports the DynamoDB calls each route made ([`calls`]).

// Counting each request's DynamoDB calls wraps the handler futures once more, past
// the compiler's default depth for computing their layout.
#![recursion_limit = "256"]

pub mod calls;
pub mod feed;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use lambda_http::{Body, RequestExt as _};
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::http::{balance, catalog, coupons, instrumented, orders, top, ApiError};
use rushcart::Deps;
use tokio::net::TcpListener;

/// One HTTP route: method, API Gateway path template, and the function (its folder
/// under `functions/`) that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub function: &'static str,
}

pub const ROUTES: &[Route] = &[
    Route { method: Method::GET, path: "/api/v1/users/{userId}/balance", function: "get-balance" },
    Route { method: Method::POST, path: "/api/v1/users/{userId}/balance/charge", function: "charge-balance" },
    Route { method: Method::POST, path: "/api/v1/users/{userId}/balance/use", function: "use-balance" },
    Route { method: Method::GET, path: "/api/v1/users/{userId}/balance/history", function: "balance-history" },
    Route { method: Method::GET, path: "/api/v1/products", function: "list-products" },
    Route { method: Method::GET, path: "/api/v1/products/top", function: "products-top" },
    Route { method: Method::GET, path: "/api/v1/products/{productId}", function: "get-product" },
    Route { method: Method::GET, path: "/api/v1/coupons/{couponId}", function: "get-coupon" },
    Route { method: Method::POST, path: "/api/v1/coupons/{couponId}", function: "issue-coupon" },
    Route { method: Method::GET, path: "/api/v1/users/{userId}/coupons", function: "user-coupons" },
    Route { method: Method::POST, path: "/api/v1/orders", function: "create-order" },
    Route { method: Method::GET, path: "/api/v1/orders/{orderId}", function: "get-order" },
    Route { method: Method::POST, path: "/api/v1/payment", function: "pay-order" },
];

/// Lambda's own request payload limit; larger bodies never reach a function.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Calls the handler of `function`, exactly as that function's `main` does.
pub async fn dispatch(
    function: &'static str,
    request: lambda_http::Request,
    deps: &Deps<DynamoStore>,
) -> lambda_http::Response<Body> {
    instrumented(function, request, |request| async move {
        match function {
            "get-balance" => balance::get_balance(request, deps).await,
            "charge-balance" => balance::charge(request, deps).await,
            "use-balance" => balance::use_balance(request, deps).await,
            "balance-history" => balance::history(request, deps).await,
            "list-products" => catalog::list_products(request, deps).await,
            "get-product" => catalog::get_product(request, deps).await,
            "get-coupon" => coupons::get_coupon(request, deps).await,
            "issue-coupon" => coupons::issue_coupon(request, deps).await,
            "user-coupons" => coupons::user_coupons(request, deps).await,
            "create-order" => orders::create_order(request, deps).await,
            "get-order" => orders::get_order(request, deps).await,
            "pay-order" => orders::pay(request, deps).await,
            "products-top" => top::top(request, deps).await,
            other => ApiError::internal(anyhow::anyhow!("route to unknown function {other}")).into_response(),
        }
    })
    .await
}

/// Matches a path against a template such as `/api/v1/users/{userId}/balance`.
pub fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut wanted = template.trim_matches('/').split('/');
    let mut given = path.trim_matches('/').split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    let value = percent_decode(g)?;
                    if value.is_empty() {
                        return None;
                    }
                    params.insert(name.to_owned(), value);
                } else if w != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

fn percent_decode(segment: &str) -> Option<String> {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes()).next().map(|(_, v)| v.into_owned())
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

/// Serves until `shutdown` completes.
pub async fn serve(listener: TcpListener, deps: Arc<Deps<DynamoStore>>, shutdown: impl Future<Output = ()>) {
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
        let deps = deps.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let deps = deps.clone();
                async move { Ok::<_, Infallible>(handle(request, &deps).await) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}

async fn handle(request: hyper::Request<Incoming>, deps: &Deps<DynamoStore>) -> hyper::Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == "/_local/dynamodb-calls" && request.method() == Method::GET {
        let body = serde_json::to_string(&calls::snapshot()).unwrap_or_default();
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        return response;
    }
    let mut allowed = false;
    // As in API Gateway, a route with fewer {parameters} wins: /products/top beats
    // /products/{productId}.
    let found = ROUTES
        .iter()
        .filter_map(|route| {
            let params = match_path(route.path, &path)?;
            allowed = true;
            (route.method == request.method()).then_some((route, params))
        })
        .min_by_key(|(_, params)| params.len());
    let Some((route, params)) = found else {
        let error = if allowed {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed on this path")
        } else {
            ApiError::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", format!("no route for {path}"))
        };
        return to_hyper(error.into_response());
    };

    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let error = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body too large");
            return to_hyper(error.into_response());
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
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        query.entry(name.into_owned()).or_default().push(value.into_owned());
    }
    let mut lambda_request = lambda_http::Request::new(body);
    *lambda_request.method_mut() = parts.method;
    *lambda_request.uri_mut() = parts.uri;
    *lambda_request.headers_mut() = parts.headers;
    let lambda_request =
        lambda_request.with_path_parameters(params).with_query_string_parameters(query).with_raw_http_path(path);
    to_hyper(calls::counted(route.function, dispatch(route.function, lambda_request, deps)).await)
}

fn to_hyper(response: lambda_http::Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates_capture_their_parameters() {
        let params = match_path("/api/v1/users/{userId}/balance", "/api/v1/users/42/balance").unwrap();
        assert_eq!(params["userId"], "42");
        assert!(match_path("/api/v1/users/{userId}/balance", "/api/v1/users/42/balance/use").is_none());
        assert!(match_path("/api/v1/users/{userId}/balance", "/api/v1/users//balance").is_none());
        let params = match_path("/api/v1/users/{userId}/balance", "/api/v1/users/a%20b/balance").unwrap();
        assert_eq!(params["userId"], "a b");
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?} twice");
            }
        }
    }
}
