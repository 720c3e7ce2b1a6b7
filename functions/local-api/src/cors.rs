//! CORS as API Gateway answers it for the template's `HttpApi` (`CorsConfiguration`),
//! so a browser app on a local dev server meets locally what it will meet deployed.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) to any
//!   path is answered here, before any route or the authorizer, with 204: the allow
//!   headers when the origin is allowed, none when it is not (the browser then refuses
//!   the real request).
//! - Any other request from an allowed origin gets `Access-Control-Allow-Origin` (the
//!   origin itself) and `Access-Control-Expose-Headers` on its answer, whoever answered
//!   it (a function, the authorizer's 401, an unrouted 404); from another origin, or
//!   with no `Origin`, nothing is added.
//!
//! The allowed origins come from `CORS_ALLOWED_ORIGINS` (comma-separated), by default
//! [`DEFAULT_ALLOWED_ORIGINS`], the default of the template's `CorsAllowedOrigins`
//! parameter; the methods, headers and max age are the template's (tests hold both to
//! `template.yaml`). An entry is an exact origin (`https://shop.example.com`), `*`
//! (any origin), or `http://*` / `https://*` (any origin of that scheme), as API
//! Gateway allows. Beyond API Gateway, an answer that names one origin says
//! `Vary: Origin`, so no cache hands it to another origin.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderValue, Method, StatusCode};

/// The default of `CorsAllowedOrigins` in `template.yaml`: a browser app served by a
/// local dev server.
pub const DEFAULT_ALLOWED_ORIGINS: &str = "http://localhost:3000,http://127.0.0.1:3000";
/// `AllowMethods` of the template's `CorsConfiguration`.
pub const ALLOW_METHODS: &[&str] = &["GET", "POST", "PUT", "OPTIONS"];
/// `AllowHeaders`: what a browser may send beyond the CORS-safe ones.
pub const ALLOW_HEADERS: &[&str] = &["Authorization", "Content-Type", "Idempotency-Key"];
/// `ExposeHeaders`: what a browser app may read of an answer beyond the CORS-safe ones.
pub const EXPOSE_HEADERS: &[&str] = &["apigw-requestid", "Location", "Retry-After"];
/// `MaxAge`: how long a browser may reuse a preflight's answer (seconds).
pub const MAX_AGE_SECONDS: u32 = 600;

/// The origins whose browser apps may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Default for Cors {
    fn default() -> Cors {
        Cors::parse(DEFAULT_ALLOWED_ORIGINS).unwrap_or(Cors { origins: Vec::new() })
    }
}

impl Cors {
    /// A comma-separated list, as `CORS_ALLOWED_ORIGINS` and the template parameter
    /// hold it; blanks around entries are ignored, an empty list allows no origin.
    pub fn parse(list: &str) -> anyhow::Result<Cors> {
        let origins: Vec<String> =
            list.split(',').map(str::trim).filter(|origin| !origin.is_empty()).map(str::to_owned).collect();
        for origin in &origins {
            let Some((scheme, rest)) = origin.split_once("://") else {
                anyhow::ensure!(origin == "*", "{origin:?} is not an origin (scheme://host[:port], or *)");
                continue;
            };
            anyhow::ensure!(
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/'),
                "{origin:?} is not an origin (scheme://host[:port], without a path)"
            );
            anyhow::ensure!(rest == "*" || !rest.contains('*'), "{origin:?}: a wildcard stands for the whole host");
        }
        Ok(Cors { origins })
    }

    /// `CORS_ALLOWED_ORIGINS`, or [`DEFAULT_ALLOWED_ORIGINS`] when it is not set.
    pub fn from_env() -> anyhow::Result<Cors> {
        match std::env::var("CORS_ALLOWED_ORIGINS") {
            Ok(list) => Cors::parse(&list),
            Err(_) => Ok(Cors::default()),
        }
    }

    /// The `Access-Control-Allow-Origin` a request from `origin` gets, if any.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let text = origin.to_str().ok()?;
        self.origins.iter().find_map(|allowed| {
            if allowed == "*" {
                Some(HeaderValue::from_static("*"))
            } else if allowed == text || allowed.strip_suffix('*').is_some_and(|scheme| text.starts_with(scheme)) {
                Some(origin.clone())
            } else {
                None
            }
        })
    }
}

/// The CORS middleware (see the module doc).
pub async fn layer(cors: std::sync::Arc<Cors>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(ORIGIN).cloned();
    let allowed = origin.as_ref().and_then(|origin| cors.allow_origin(origin));
    let preflight = request.method() == Method::OPTIONS
        && origin.is_some()
        && request.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Some(allowed) = allowed {
            let headers = response.headers_mut();
            add_origin(headers, allowed);
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, listed(ALLOW_METHODS));
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, listed(ALLOW_HEADERS));
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECONDS));
        }
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(allowed) = allowed {
        let headers = response.headers_mut();
        add_origin(headers, allowed);
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, listed(EXPOSE_HEADERS));
    }
    response
}

fn add_origin(headers: &mut http::HeaderMap, allowed: HeaderValue) {
    if allowed != "*" {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
}

/// `a, b, c` as one header value (the constants are plain ASCII tokens).
fn listed(items: &[&str]) -> HeaderValue {
    HeaderValue::from_str(&items.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(cors: &Cors, origin: &str) -> Option<String> {
        cors.allow_origin(&HeaderValue::from_str(origin).unwrap()).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn the_default_allows_exactly_the_local_dev_servers() {
        let cors = Cors::default();
        assert_eq!(allows(&cors, "http://localhost:3000").as_deref(), Some("http://localhost:3000"));
        assert_eq!(allows(&cors, "http://127.0.0.1:3000").as_deref(), Some("http://127.0.0.1:3000"));
        for other in ["http://localhost:3001", "https://localhost:3000", "http://evil.example", "null"] {
            assert_eq!(allows(&cors, other), None, "{other}");
        }
    }

    #[test]
    fn wildcards_allow_any_origin_or_any_of_one_scheme() {
        let any = Cors::parse("*").unwrap();
        assert_eq!(allows(&any, "https://anywhere.example").as_deref(), Some("*"));
        let https = Cors::parse(" https://* , http://localhost:5173 ").unwrap();
        assert_eq!(allows(&https, "https://shop.example").as_deref(), Some("https://shop.example"));
        assert_eq!(allows(&https, "http://localhost:5173").as_deref(), Some("http://localhost:5173"));
        assert_eq!(allows(&https, "http://shop.example"), None);
        assert_eq!(Cors::parse("").unwrap(), Cors { origins: Vec::new() });
    }

    #[test]
    fn a_list_entry_that_is_no_origin_is_refused_at_start() {
        for bad in ["localhost:3000", "http://localhost:3000/app", "ftp://x", "http://", "https://*.example.com"] {
            assert!(Cors::parse(bad).is_err(), "{bad}");
        }
    }
}
