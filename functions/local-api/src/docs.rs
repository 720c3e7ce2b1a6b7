//! The API described, served locally only (API Gateway serves neither):
//! `/openapi.json`, the document the code derives ([`rushcart::http::openapi`]), and
//! Swagger UI at `/docs` on top of it.
//!
//! Swagger UI's assets come from the npm package `swagger-ui-dist`, which
//! `localstack/install.sh` puts in `.local/swagger-ui` (nothing is fetched at build or
//! run time). The page and its start-up script are ours; the assets are served from
//! a fixed list of file names, never from a path the client chooses.

use std::path::PathBuf;

use axum::extract::Path;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, StatusCode};

/// Where `localstack/install.sh` puts the assets, from the project root.
pub const DEFAULT_ASSETS: &str = ".local/swagger-ui/node_modules/swagger-ui-dist";

/// The assets the page loads, and their content types.
const ASSETS: &[(&str, &str)] = &[
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("favicon-32x32.png", "image/png"),
    ("favicon-16x16.png", "image/png"),
];

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>rushcart API</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/rushcart.js"></script>
</body>
</html>
"##;

/// Starts Swagger UI on this API's own document. "Try it out" calls this origin; a
/// token pasted in "Authorize" is kept across reloads.
const START: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"##;

/// `/openapi.json`, `/docs` and the assets under `/docs/`; `assets` is the
/// `swagger-ui-dist` folder.
pub fn routes(assets: PathBuf) -> Router {
    let document = rushcart::http::openapi::document_json();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .route("/docs", get(|| async { Html(PAGE) }))
        .route("/docs/", get(|| async { Html(PAGE) }))
        .route(
            "/docs/rushcart.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], START) }),
        )
        .route(
            "/docs/{file}",
            get(move |Path(file): Path<String>| {
                let assets = assets.clone();
                async move { asset(&assets, &file).await }
            }),
        )
}

async fn asset(assets: &std::path::Path, file: &str) -> Response {
    let Some((name, content_type)) = ASSETS.iter().find(|(name, _)| *name == file) else {
        return crate::gateway_message(StatusCode::NOT_FOUND, "Not Found");
    };
    match tokio::fs::read(assets.join(name)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, *content_type)], bytes).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, dir = %assets.display(), "Swagger UI's assets are missing");
            crate::gateway_message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Swagger UI's assets are not installed: run localstack/install.sh (make run does)",
            )
        }
    }
}
