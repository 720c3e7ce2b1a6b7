//! The API described: the OpenAPI document derived from the code is the same set of
//! operations as the route table, `template.yaml` and the local API; it is valid
//! OpenAPI 3.1; the copy in docs/ is current; and `make run` serves it with Swagger UI.

use std::collections::BTreeSet;

use rushcart::http::openapi::document_json;
use rushcart::http::routes::ROUTES;
use rushcart_tests::TestApp;
use serde_json::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn document() -> Value {
    serde_json::from_str(&document_json()).expect("the document is JSON")
}

/// (METHOD, path) of every operation in the document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// (METHOD, path) of every `HttpApi` event in template.yaml.
fn template_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("read template.yaml");
    let template: serde_norway::Value = serde_norway::from_str(&text).expect("template.yaml is YAML");
    let mut routes = BTreeSet::new();
    for (_, resource) in template["Resources"].as_mapping().expect("Resources") {
        for (_, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("HttpApi") {
                let method = event["Properties"]["Method"].as_str().expect("Method").to_uppercase();
                let path = event["Properties"]["Path"].as_str().expect("Path").to_owned();
                routes.insert((method, path));
            }
        }
    }
    routes
}

#[test]
fn the_document_the_route_table_and_the_template_name_the_same_operations() {
    let document = document();
    let table: BTreeSet<(String, String)> = ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_owned())).collect();
    assert_eq!(operations(&document), table, "the document and the route table");
    assert_eq!(template_routes(), table, "template.yaml and the route table");
    assert_eq!(table.len(), ROUTES.len());
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let validator = root().join(".venv/bin/openapi-spec-validator");
    assert!(validator.exists(), "{} is missing: localstack/install.sh installs it", validator.display());
    let file = std::env::temp_dir().join(format!("rushcart-openapi-{}.json", std::process::id()));
    std::fs::write(&file, document_json()).expect("write the document");
    let output = std::process::Command::new(&validator).arg(&file).output().expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&file);
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "openapi-spec-validator: {said}");
    assert!(said.contains(": OK"), "{said}");
}

#[test]
fn the_copy_in_docs_is_the_document_the_code_derives() {
    let written = std::fs::read_to_string(root().join("docs/openapi.json")).expect("read docs/openapi.json");
    assert!(written.trim_end() == document_json().trim_end(), "docs/openapi.json is stale: run make openapi");
}

#[tokio::test]
async fn the_local_api_serves_the_document_and_every_operation_in_it() {
    let app = TestApp::spawn().await;
    let served: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, document());
    for (method, path) in operations(&served) {
        // Any id will do: what matters is that a route, not API Gateway's 404, answers.
        let concrete = path
            .replace("{userId}", "1")
            .replace("{productId}", "1")
            .replace("{couponId}", "1")
            .replace("{orderId}", "01JDQ8Z4ZV7V4E7Q2W8J5K3M9N");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.http.request(method.clone(), app.url(&concrete)).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            !(status == 404 && body == serde_json::json!({"message": "Not Found"})),
            "{method} {path}: nothing serves it"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_its_installed_assets() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/rushcart.js"] {
        assert!(html.contains(asset), "the page loads {asset}");
        let response = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let start = app.http.get(app.url("/docs/rushcart.js")).send().await.unwrap().text().await.unwrap();
    assert!(start.contains("\"/openapi.json\""), "{start}");
    // Only the listed assets, never a path the client picks.
    for path in ["/docs/package.json", "/docs/..%2F..%2FCargo.toml", "/docs/index.html"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}
