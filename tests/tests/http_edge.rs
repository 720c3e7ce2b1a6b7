//! The HTTP edge, against the real local stack: what every route does with a request
//! around its use case — the media type a body must declare, the one spelling of an
//! id, how little of the input an error repeats, the headers on every answer, and the
//! `Location` of what a 201 created. A refused request changes nothing, checked from
//! the table.

use rushcart::http::routes::{Access, ROUTES};
use rushcart_tests::shop::{request_for, shop, snapshot};
use rushcart_tests::TestApp;
use serde_json::{json, Value};

/// One request with exactly these parts; its status, headers and JSON body (or null).
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if !body.is_empty() {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let bytes = response.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The token a route needs: an operator's on operator routes, user 1's elsewhere.
fn token_for(app: &TestApp, access: Access) -> String {
    match access {
        Access::Operator => app.operator_token(900),
        _ => app.token(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_not_declared_json_is_415_on_every_route_that_reads_one_and_changes_nothing() {
    let (app, order) = shop().await;
    let before = snapshot(&app, &order).await;
    let mut routes = 0;
    for route in ROUTES.iter().filter(|r| r.method.as_str() != "GET") {
        let (path, body) = request_for(route.path, route.function, &order);
        // Routes whose body is optional read one when it is there.
        let body = if body.is_empty() { json!({"userId": 1}).to_string() } else { body };
        let token = token_for(&app, route.access);
        // What a cross-site form or a careless client sends: no type, a form's types,
        // and JSON-looking types that are not application/json.
        for content_type in [
            None,
            Some("text/plain"),
            Some("text/plain; charset=utf-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/merge-patch+json"),
            Some("application/json; charset=utf-16"),
        ] {
            let (status, headers, answer) =
                send(&app, route.method.as_str(), &path, Some(&token), content_type, &body).await;
            assert_eq!(status, 415, "{} {path} as {content_type:?}: {answer}", route.method);
            assert_eq!(answer["code"], "UNSUPPORTED_MEDIA_TYPE", "{path}");
            assert_eq!(answer["requestId"].as_str(), headers["apigw-requestid"].to_str().ok(), "{path}");
        }
        routes += 1;
    }
    assert!(routes >= 12, "every POST and PUT route was tried ({routes})");
    assert_eq!(snapshot(&app, &order).await, before, "a body of another type changed nothing");
}

#[tokio::test]
async fn a_json_body_with_its_charset_named_is_read() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    let token = app.token(1);
    let (status, _, answer) = send(
        &app,
        "POST",
        "/api/v1/users/1/balance/charge",
        Some(&token),
        Some("Application/JSON; charset=UTF-8"),
        r#"{"amount": "5.00"}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(app.balance(1).await, "15.00");
    // The local issuer's own route asks the same of its body.
    let (status, _, answer) = send(&app, "POST", "/_local/token", None, Some("text/plain"), r#"{"userId": 1}"#).await;
    assert_eq!((status, answer["code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numeric_id_with_leading_zeros_a_sign_or_blanks_is_400_wherever_it_is_named() {
    let (app, order) = shop().await;
    let before = snapshot(&app, &order).await;
    let (customer, operator) = (app.token(1), app.operator_token(900));
    let json_type = Some("application/json");
    // Each of these used to reach the record of the plain spelling (product 7, coupon 1,
    // user 1).
    let refused: Vec<(&str, &str, &str, &str)> = vec![
        ("GET", "/api/v1/products/007", "", "INVALID_PRODUCT_ID"),
        ("GET", "/api/v1/products/01", "", "INVALID_PRODUCT_ID"),
        ("GET", "/api/v1/products/%2B1", "", "INVALID_PRODUCT_ID"),
        ("GET", "/api/v1/products/%201", "", "INVALID_PRODUCT_ID"),
        ("GET", "/api/v1/products/1%20", "", "INVALID_PRODUCT_ID"),
        ("GET", "/api/v1/coupons/01", "", "INVALID_COUPON_ID"),
        ("GET", "/api/v1/users/01/balance", "", "INVALID_USER_ID"),
        ("GET", "/api/v1/users/%2B1/orders", "", "INVALID_USER_ID"),
        ("GET", "/api/v1/users/1/balance?userId=01", "", "INVALID_USER_ID"),
        ("GET", "/api/v1/users/1/coupons?userId=%2B1", "", "INVALID_USER_ID"),
        ("POST", "/api/v1/coupons/01", "", "INVALID_COUPON_ID"),
        ("POST", "/api/v1/coupons/1?userId=001", "", "INVALID_USER_ID"),
        ("POST", "/api/v1/coupons/1", r#"{"userId": "01"}"#, "INVALID_USER_ID"),
        ("POST", "/api/v1/users/1/balance/charge", r#"{"amount": "1.00", "userId": "01"}"#, "INVALID_USER_ID"),
        ("POST", "/api/v1/users/1/balance/use", r#"{"amount": "1.00", "userId": " 1"}"#, "INVALID_USER_ID"),
        ("POST", "/api/v1/orders", r#"{"products": [{"productId": "01", "quantity": 1}]}"#, "INVALID_PRODUCT_ID"),
        (
            "POST",
            "/api/v1/orders",
            r#"{"products": [{"productId": 1, "quantity": 1}], "couponId": "+1"}"#,
            "INVALID_COUPON_ID",
        ),
        ("PUT", "/api/v1/admin/products/01", r#"{"price": "2.00"}"#, "INVALID_PRODUCT_ID"),
        ("POST", "/api/v1/admin/products/01/stock", r#"{"add": 1}"#, "INVALID_PRODUCT_ID"),
        ("POST", "/api/v1/admin/users/01/balance/charge", r#"{"amount": "1.00"}"#, "INVALID_USER_ID"),
    ];
    for (method, path, body, code) in refused {
        let token = if path.starts_with("/api/v1/admin/") { &operator } else { &customer };
        let (status, _, answer) = send(&app, method, path, Some(token), json_type, body).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some(code)), "{method} {path} {body}: {answer}");
    }
    assert_eq!(snapshot(&app, &order).await, before, "no other spelling changed anything");
    // The one spelling still works.
    let (status, _, _) = send(&app, "GET", "/api/v1/products/1", None, None, "").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_id_reads_in_either_case_and_one_that_overflows_is_400() {
    let (app, order) = shop().await;
    let owner = app.token(2);
    let lower = order.to_ascii_lowercase();
    assert_ne!(lower, order);

    let (status, _, answer) = send(&app, "GET", &format!("/api/v1/orders/{lower}"), Some(&owner), None, "").await;
    assert_eq!((status, answer["orderId"].as_str()), (200, Some(order.as_str())), "{answer}");

    // The first character carries 3 bits; `8` is `0` with a bit past 128 that the
    // decoder used to drop, so this named the same order.
    assert!(order.starts_with('0'), "{order}");
    let overflowing = format!("8{}", &order[1..]);
    let (status, _, answer) = send(&app, "GET", &format!("/api/v1/orders/{overflowing}"), Some(&owner), None, "").await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("INVALID_ORDER_ID")), "{answer}");
    let pay = |id: &str| json!({"orderId": id}).to_string();
    let (status, _, answer) =
        send(&app, "POST", "/api/v1/payment", Some(&owner), Some("application/json"), &pay(&overflowing)).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("INVALID_ORDER_ID")), "{answer}");
    let (_, _, unpaid) = send(&app, "GET", &format!("/api/v1/orders/{order}"), Some(&owner), None, "").await;
    assert_eq!(unpaid["status"], "PENDING_PAYMENT");

    // Paid by its lower-case spelling, it is the same order that is paid.
    let (status, _, paid) =
        send(&app, "POST", "/api/v1/payment", Some(&owner), Some("application/json"), &pay(&lower)).await;
    assert_eq!((status, paid["orderId"].as_str()), (200, Some(order.as_str())), "{paid}");
    let (_, _, read) = send(&app, "GET", &format!("/api/v1/orders/{order}"), Some(&owner), None, "").await;
    assert_eq!(read["status"], "PAID");
    let payment = paid["paymentId"].as_str().unwrap();
    assert_eq!(payment, payment.to_ascii_uppercase(), "ids are written in upper case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_quotes_at_most_a_short_prefix_of_an_8_kb_value() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    let token = app.token(1);
    let long = "x".repeat(8192);
    let json_type = Some("application/json");
    let requests: Vec<(&str, String, String, Option<String>)> = vec![
        ("GET", format!("/api/v1/products/{long}"), String::new(), None),
        ("GET", format!("/api/v1/orders/{long}"), String::new(), None),
        ("GET", format!("/api/v1/users/1/balance?userId={long}"), String::new(), None),
        ("GET", format!("/api/v1/users/1/balance/history?cursor={long}"), String::new(), None),
        ("GET", format!("/api/v1/products?limit={long}"), String::new(), None),
        ("POST", "/api/v1/users/1/balance/charge".into(), json!({ "amount": long }).to_string(), None),
        (
            "POST",
            "/api/v1/users/1/balance/charge".into(),
            json!({ "amount": "1.00", long.as_str(): 1 }).to_string(),
            None,
        ),
        (
            "POST",
            "/api/v1/users/1/balance/charge".into(),
            json!({ "amount": "1.00", "userId": long }).to_string(),
            None,
        ),
        ("POST", "/api/v1/orders".into(), json!({"products": [{"productId": long, "quantity": 1}]}).to_string(), None),
        ("POST", "/api/v1/orders".into(), json!({"products": [{"productId": 1, "quantity": long}]}).to_string(), None),
        ("POST", "/api/v1/payment".into(), json!({ "orderId": long }).to_string(), None),
        ("POST", "/_local/token".into(), json!({ "userId": long }).to_string(), None),
        ("POST", "/api/v1/users/1/balance/charge".into(), r#"{"amount": "1.00"}"#.into(), Some(format!("text/{long}"))),
    ];
    for (method, path, body, content_type) in &requests {
        let content_type = content_type.as_deref().or(json_type);
        let (status, _, answer) = send(&app, method, path, Some(&token), content_type, body).await;
        let shown: String = path.chars().take(40).collect();
        assert!(status == 400 || status == 415, "{method} {shown}: {status} {answer}");
        let message = answer["message"].as_str().unwrap_or_else(|| panic!("{method} {shown}: {answer}"));
        assert!(message.chars().count() <= 160, "{method} {shown}: {message}");
        assert!(!message.contains(&"x".repeat(33)), "{method} {shown}: {message}");
    }
    assert_eq!(app.balance(1).await, "10.00", "nothing was charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_nosniff_and_no_answer_about_someone_may_be_stored() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    app.seed_products(1, "1.00", 5).await;
    let (customer, operator) = (app.token(1), app.operator_token(900));
    let json_type = Some("application/json");
    // The functions' answers, success or refusal, on routes that are not public.
    let private = [
        send(&app, "GET", "/api/v1/users/1/balance", Some(&customer), None, "").await,
        send(&app, "GET", "/api/v1/users/999/balance", Some(&app.token(999)), None, "").await,
        send(&app, "POST", "/api/v1/users/1/balance/charge", Some(&customer), json_type, "{}").await,
        send(&app, "POST", "/api/v1/users/2/balance/charge", Some(&customer), json_type, r#"{"amount": 1}"#).await,
        send(&app, "GET", "/api/v1/admin/orders/nope", Some(&operator), None, "").await,
        send(&app, "GET", "/api/v1/admin/orders/nope", Some(&customer), None, "").await,
    ];
    let statuses: Vec<u16> = private.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(statuses, [200, 404, 400, 403, 400, 403]);
    for (status, headers, _) in &private {
        assert_eq!(headers["x-content-type-options"], "nosniff", "{status}");
        assert_eq!(headers["cache-control"], "no-store", "{status}");
    }
    // Public answers may be cached; they too say nosniff.
    for path in ["/api/v1/products", "/api/v1/products/1", "/api/v1/products/2"] {
        let (status, headers, _) = send(&app, "GET", path, None, None, "").await;
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path} {status}");
        assert!(headers.get("cache-control").is_none(), "{path} {status}");
    }
    // What the local API answers itself: an unrouted 404, the authorizer's 401, 413.
    let own = [
        send(&app, "GET", "/api/v1/nowhere", None, None, "").await,
        send(&app, "GET", "/api/v1/users/1/balance", None, None, "").await,
        send(&app, "POST", "/api/v1/users/1/balance/charge", Some(&customer), json_type, &" ".repeat(64 * 1024)).await,
    ];
    let statuses: Vec<u16> = own.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(statuses, [404, 401, 413]);
    for (status, headers, _) in &own {
        assert_eq!(headers["x-content-type-options"], "nosniff", "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_201_that_creates_something_names_its_url_in_location() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;
    app.seed_products(1, "1.00", 5).await;
    let (customer, operator) = (app.token(1), app.operator_token(900));
    let post = |path: &'static str, token: String, body: Value, key: &'static str| {
        let request = app.http.post(app.url(path)).bearer_auth(token).header("idempotency-key", key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
            (status, location, response.json::<Value>().await.unwrap())
        }
    };

    let order = json!({"products": [{"productId": 1, "quantity": 1}]});
    let (status, location, created) = post("/api/v1/orders", customer.clone(), order.clone(), "o-1").await;
    assert_eq!(status, 201, "{created}");
    let id = created["orderId"].as_str().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/api/v1/orders/{id}").as_str()));
    let (status, _, read) = send(&app, "GET", location.as_deref().unwrap(), Some(&customer), None, "").await;
    assert_eq!((status, read["orderId"].as_str()), (200, Some(id)), "the Location answers the order");
    let (_, replayed, _) = post("/api/v1/orders", customer.clone(), order, "o-1").await;
    assert_eq!(replayed, location, "a retry names the same order");

    let product = json!({"name": "Kettle", "price": "39.90", "stock": 5});
    let (status, location, created) = post("/api/v1/admin/products", operator.clone(), product, "p-1").await;
    assert_eq!(status, 201, "{created}");
    let id = created["productId"].as_u64().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/api/v1/products/{id}").as_str()));
    let (status, _, read) = send(&app, "GET", location.as_deref().unwrap(), None, None, "").await;
    assert_eq!((status, read["name"].as_str()), (200, Some("Kettle")));

    let coupon = json!({"name": "Spring", "discount": "1.00", "total": 3, "endsAt": "2099-01-01T00:00:00Z"});
    let (status, location, created) = post("/api/v1/admin/coupons", operator, coupon, "c-1").await;
    assert_eq!(status, 201, "{created}");
    let id = created["couponId"].as_u64().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/api/v1/coupons/{id}").as_str()));
    let (status, _, read) = send(&app, "GET", location.as_deref().unwrap(), None, None, "").await;
    assert_eq!((status, read["remaining"].as_u64()), (200, Some(3)));
}
