//! Sign-in and roles against the real local stack, through the local API's authorizer:
//! every route's 401 for a stranger, 403/404 for another customer, 403 for a customer
//! on an operator route — each time with the data checked unchanged from the table —
//! and every kind of token the authorizer must refuse.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::future::join_all;
use rushcart::http::routes::{Access, ROUTES};
use rushcart_testkit::audit::check_orders;
use rushcart_tests::capacity::unavailable;
use rushcart_tests::invariants::users;
use rushcart_tests::shop::{request_for, shop, snapshot};
use rushcart_tests::TestApp;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_answers_a_stranger_401_as_api_gateway_does_and_changes_nothing() {
    let (app, order) = shop().await;
    let before = snapshot(&app, &order).await;
    for route in ROUTES {
        let (path, body) = request_for(route.path, route.function, &order);
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let mut request = app.http.request(method, app.url(&path)).header("content-type", "application/json");
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if route.access == Access::Public {
            assert_ne!(status, 401, "{} is public", route.path);
            continue;
        }
        assert_eq!(status, 401, "{} {}", route.method, route.path);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"message": "Unauthorized"}), "{}", route.path);
    }
    assert_eq!(snapshot(&app, &order).await, before, "a stranger changed nothing");
}

/// A token signed by the app's own key, with `change` made to valid claims.
fn signed_with(app: &TestApp, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims_of(&app.token(1));
    change(&mut claims);
    app.issuer.sign(&claims).unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_the_authorizer_would_reject_is_401() {
    let (app, order) = shop().await;
    let before = snapshot(&app, &order).await;
    let valid = app.token(1);
    let (head, payload, signature) = {
        let mut parts = valid.split('.');
        (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
    };
    let header_of =
        |alg: &str| URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT", "kid": app.issuer.kid()}).to_string());
    let other_issuer = rushcart_local_api::issuer::LocalIssuer::generate(format!("{}/_local", app.base_url)).unwrap();
    let flipped = {
        let mut bytes = signature.into_bytes();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let hs256 = {
        // The classic confusion: HMAC with the public key as the secret.
        let jwks = app.issuer.jwks().to_string();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(app.issuer.kid().to_owned());
        let key = jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims_of(&valid), &key).unwrap()
    };
    let bad: Vec<(&str, String)> = vec![
        ("expired", signed_with(&app, |c| c["exp"] = json!(now() - 60))),
        ("not yet valid", signed_with(&app, |c| c["nbf"] = json!(now() + 600))),
        ("wrong issuer", signed_with(&app, |c| c["iss"] = json!("https://issuer.example.com"))),
        ("wrong audience", signed_with(&app, |c| c["client_id"] = json!("another-client"))),
        ("an aud that is not ours beside our client_id", signed_with(&app, |c| c["aud"] = json!("another-api"))),
        ("issued in the future", signed_with(&app, |c| c["iat"] = json!(now() + 600))),
        ("two issuers", signed_with(&app, |c| c["iss"] = json!([c["iss"].clone(), "https://issuer.example.com"]))),
        (
            "no expiry",
            signed_with(&app, |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("unknown kid", other_issuer.mint(rushcart::ids::UserId::new(1).unwrap(), false).unwrap()),
        ("bad signature", format!("{head}.{payload}.{flipped}")),
        ("alg none", format!("{}.{payload}.", header_of("none"))),
        ("HS256 with the public key", hs256),
        ("truncated", valid[..valid.len() - 20].to_owned()),
        ("garbage", "not-a-token".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in &bad {
        let (status, body) = app.get_as("/api/v1/users/1/balance", Some(token)).await;
        assert_eq!((status, &body), (401, &json!({"message": "Unauthorized"})), "{what}");
        let (status, _) = app.post_as("/api/v1/users/1/balance/use", r#"{"amount": "1.00"}"#, None, Some(token)).await;
        assert_eq!(status, 401, "{what}");
    }
    let response = app
        .http
        .get(app.url("/api/v1/users/1/balance"))
        .header("authorization", format!("Basic {valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "only bearer tokens");
    assert_eq!(app.get_as("/api/v1/users/1/balance", Some(&valid)).await.0, 200, "the valid token works");
    assert_eq!(snapshot(&app, &order).await, before, "no refused token changed anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_acts_for_themself_only() {
    let (app, theirs) = shop().await;
    let before = snapshot(&app, &theirs).await;
    let mine = app.token(1);
    let me = Some(mine.as_str());
    let forbidden = [
        ("GET", "/api/v1/users/2/balance", ""),
        ("GET", "/api/v1/users/2/balance/history", ""),
        ("GET", "/api/v1/users/2/coupons", ""),
        ("GET", "/api/v1/users/2/orders", ""),
        ("POST", "/api/v1/users/2/balance/use", r#"{"amount": "1.00"}"#),
        ("POST", "/api/v1/users/2/balance/charge", r#"{"amount": "1.00"}"#),
        ("POST", "/api/v1/users/1/balance/use", r#"{"amount": "1.00", "userId": 2}"#),
        ("POST", "/api/v1/coupons/1?userId=2", ""),
        ("POST", "/api/v1/coupons/1", r#"{"userId": 2}"#),
        ("POST", "/api/v1/orders", r#"{"userId": 2, "products": [{"productId": 1, "quantity": 1}]}"#),
    ];
    for (method, path, body) in forbidden {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, answer) = app.send_as(method, path, body, None, me).await;
        assert_eq!((status, answer["code"].as_str()), (403, Some("FORBIDDEN")), "{path} {body}: {answer}");
    }
    let pay_theirs = json!({"orderId": theirs}).to_string();
    let (status, answer) = app.post_as("/api/v1/payment", &pay_theirs, None, me).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("ORDER_NOT_FOUND")), "someone else's order is not found");
    let (status, _) = app.get_as(&format!("/api/v1/orders/{theirs}"), me).await;
    assert_eq!(status, 404);
    let pay_as_them = json!({"orderId": theirs, "userId": 2}).to_string();
    assert_eq!(app.post_as("/api/v1/payment", &pay_as_them, None, me).await.0, 403);
    assert_eq!(snapshot(&app, &theirs).await, before, "nothing of user 2's changed");

    // Naming no one means the token's user; naming oneself works too.
    let (status, copy) = app.post_as("/api/v1/coupons/1", "", None, me).await;
    assert_eq!((status, copy["userId"].as_u64()), (201, Some(1)), "{copy}");
    let (status, order) =
        app.post_as("/api/v1/orders", r#"{"products": [{"productId": 2, "quantity": 1}]}"#, None, me).await;
    assert_eq!((status, order["userId"].as_u64()), (201, Some(1)), "{order}");
    let pay_mine = json!({"orderId": order["orderId"]}).to_string();
    assert_eq!(app.post_as("/api/v1/payment", &pay_mine, None, me).await.0, 200);
    assert_eq!(app.get_as(&format!("/api/v1/orders/{}", order["orderId"].as_str().unwrap()), me).await.0, 200);
    let (status, listed) = app.get_as("/api/v1/users/1/orders", me).await;
    let listed: Vec<&str> = listed["items"].as_array().unwrap().iter().filter_map(|o| o["orderId"].as_str()).collect();
    assert_eq!((status, listed), (200, vec![order["orderId"].as_str().unwrap()]), "only my own orders");
    assert_eq!(app.get_as("/api/v1/users/1/balance", me).await.1["balance"], "990.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_on_any_operator_route_is_403_and_nothing_changes() {
    let (app, order) = shop().await;
    let before = snapshot(&app, &order).await;
    let customer = app.token(1);
    for route in ROUTES.iter().filter(|r| r.access == Access::Operator) {
        let (path, body) = request_for(route.path, route.function, &order);
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let (status, answer) = app.send_as(method, &path, &body, Some("k-1"), Some(&customer)).await;
        assert_eq!((status, answer["code"].as_str()), (403, Some("FORBIDDEN")), "{path}: {answer}");
    }
    assert_eq!(snapshot(&app, &order).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_run_the_catalogue_and_coupons_and_credit_balances() {
    let (app, _) = shop().await;
    let op = app.operator_token(900);
    let op = Some(op.as_str());

    let body = r#"{"name": "Kettle", "price": "39.90", "stock": 50}"#;
    let (status, product) = app.post_as("/api/v1/admin/products", body, Some("new-kettle"), op).await;
    assert_eq!(status, 201, "{product}");
    assert_eq!(product["productId"], 4, "the next id after the seeded products");
    let (status, again) = app.post_as("/api/v1/admin/products", body, Some("new-kettle"), op).await;
    assert_eq!((status, &again), (201, &product), "a retry with the key is the first answer");
    let (status, reused) = app
        .post_as("/api/v1/admin/products", r#"{"name": "Pot", "price": "1.00", "stock": 1}"#, Some("new-kettle"), op)
        .await;
    assert_eq!((status, reused["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")));
    assert_eq!(app.get("/api/v1/products/4").await.1["name"], "Kettle");

    let (status, changed) =
        app.send_as(reqwest::Method::PUT, "/api/v1/admin/products/4", r#"{"price": "35.00"}"#, None, op).await;
    assert_eq!((status, changed["price"].as_str(), changed["name"].as_str()), (200, Some("35.00"), Some("Kettle")));
    let (status, restocked) =
        app.post_as("/api/v1/admin/products/4/stock", r#"{"add": 25}"#, Some("restock-4"), op).await;
    assert_eq!((status, restocked["stock"].as_u64()), (200, Some(75)));
    let (_, again) = app.post_as("/api/v1/admin/products/4/stock", r#"{"add": 25}"#, Some("restock-4"), op).await;
    assert_eq!(again["stock"], 75, "the keyed restock counted once");

    let coupon =
        json!({"name": "Winter", "discount": "5.00", "total": 2, "endsAt": "2099-01-01T00:00:00+09:00"}).to_string();
    let (status, created) = app.post_as("/api/v1/admin/coupons", &coupon, None, op).await;
    assert_eq!(
        (status, created["couponId"].as_u64(), created["remaining"].as_u64()),
        (201, Some(2), Some(2)),
        "{created}"
    );
    assert_eq!(created["endsAt"], "2098-12-31T15:00:00.000Z", "times are kept in UTC");
    assert_eq!(app.post("/api/v1/coupons/2?userId=1", "", None).await.0, 201, "customers issue it like any other");

    let (status, credited) =
        app.post_as("/api/v1/admin/users/2/balance/charge", r#"{"amount": "100.00"}"#, None, op).await;
    assert_eq!((status, credited["balance"].as_str()), (200, Some("1100.00")), "{credited}");
    assert_eq!(credited["entry"]["type"], "CREDIT");
    // A key the customer used is not the operators': it cannot swallow their credit.
    assert_eq!(app.post("/api/v1/users/2/balance/charge", r#"{"amount": "1.00"}"#, Some("pay-in-7")).await.0, 200);
    let credit = r#"{"amount": "1.00"}"#;
    let (status, credited) = app.post_as("/api/v1/admin/users/2/balance/charge", credit, Some("pay-in-7"), op).await;
    assert_eq!((status, credited["balance"].as_str()), (200, Some("1102.00")), "{credited}");
    let (_, again) = app.post_as("/api/v1/admin/users/2/balance/charge", credit, Some("pay-in-7"), op).await;
    assert_eq!(again, credited, "the operators' retry is their first answer");

    let before = app.get("/api/v1/products?limit=100").await.1;
    let invalid = [
        ("/api/v1/admin/products", r#"{"name": "", "price": "1.00", "stock": 1}"#, "INVALID_NAME"),
        // A right-to-left override and a zero-width space: names that read as others.
        ("/api/v1/admin/products", r#"{"name": "\u202eevil", "price": "1.00", "stock": 1}"#, "INVALID_NAME"),
        ("/api/v1/admin/products", r#"{"name": "\u200b", "price": "1.00", "stock": 1}"#, "INVALID_NAME"),
        (
            "/api/v1/admin/coupons",
            r#"{"name": "\ufeffX", "discount": "1.00", "total": 1, "endsAt": "2099-01-01T00:00:00Z"}"#,
            "INVALID_NAME",
        ),
        ("/api/v1/admin/products", r#"{"name": "X", "price": "-1", "stock": 1}"#, "INVALID_AMOUNT"),
        ("/api/v1/admin/products", r#"{"name": "X", "price": "1.00", "stock": -1}"#, "INVALID_QUANTITY"),
        ("/api/v1/admin/products", r#"{"name": "X", "price": "1.00"}"#, "INVALID_QUANTITY"),
        ("/api/v1/admin/products/4/stock", r#"{"add": 0}"#, "INVALID_QUANTITY"),
        ("/api/v1/admin/products/99/stock", r#"{"add": 1}"#, "PRODUCT_NOT_FOUND"),
        (
            "/api/v1/admin/coupons",
            r#"{"name": "X", "discount": "1.00", "total": 1, "endsAt": "2001-01-01T00:00:00Z"}"#,
            "INVALID_DATE",
        ),
        (
            "/api/v1/admin/coupons",
            r#"{"name": "X", "discount": "1.00", "total": 0, "endsAt": "2099-01-01T00:00:00Z"}"#,
            "INVALID_QUANTITY",
        ),
        ("/api/v1/admin/coupons", r#"{"name": "X", "discount": "1.00", "total": 1, "endsAt": "soon"}"#, "INVALID_DATE"),
    ];
    for (path, body, code) in invalid {
        let (status, answer) = app.post_as(path, body, None, op).await;
        assert_eq!(answer["code"].as_str(), Some(code), "{path} {body}: {answer}");
        assert!(status == 400 || status == 404, "{status}");
    }
    let (status, _) = app.send_as(reqwest::Method::PUT, "/api/v1/admin/products/4", "{}", None, op).await;
    assert_eq!(status, 400, "a change must change something");
    let isolated = r#"{"name": "Ket\u2066tle"}"#;
    let (status, answer) = app.send_as(reqwest::Method::PUT, "/api/v1/admin/products/4", isolated, None, op).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("INVALID_NAME")), "{answer}");
    assert_eq!(app.get("/api/v1/products?limit=100").await.1, before, "refused requests wrote nothing");
    assert_eq!(app.get("/api/v1/coupons/3").await.0, 404);
}

/// The product (stock 100) is one stock item by default, and stays so: under the
/// capacity model a payment or a restock pushed past its ceiling is answered 503 and
/// changed nothing, so stock + sold = initial + what the 200s restocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restocking_during_a_payment_rush_keeps_stock_exact() {
    let app = TestApp::spawn().await;
    app.seed_users(&users(1..=60, "1000.00")).await;
    app.seed_products(1, "10.00", 100).await;
    let orders = join_all((1..=60).map(|user| {
        let app = &app;
        async move {
            let body = json!({"userId": user, "products": [{"productId": 1, "quantity": 2}]}).to_string();
            let (status, order) = app.post("/api/v1/orders", &body, None).await;
            assert_eq!(status, 201, "{order}");
            (user, order["orderId"].as_str().unwrap().to_owned())
        }
    }))
    .await;
    let op = app.operator_token(900);
    let pays = orders.iter().map(|(user, order)| {
        let body = json!({"userId": user, "orderId": order}).to_string();
        let app = &app;
        async move { app.post("/api/v1/payment", &body, None).await }
    });
    let restocks = (0..10).map(|_| {
        let (app, op) = (&app, &op);
        async move { app.post_as("/api/v1/admin/products/1/stock", r#"{"add": 10}"#, None, Some(op)).await }
    });
    let (paid, restocked) = futures::join!(join_all(pays), join_all(restocks));
    assert!(restocked.iter().all(|(status, body)| *status == 200 || unavailable(*status, body)), "{restocked:?}");
    let added = 10 * restocked.iter().filter(|(status, _)| *status == 200).count() as u64;
    let sold = 2 * paid.iter().filter(|(status, _)| *status == 200).count() as u64;
    assert!(
        paid.iter().all(|(status, body)| *status == 200 || *status == 409 || unavailable(*status, body)),
        "{paid:?}"
    );
    let (_, product) = app.get("/api/v1/products/1").await;
    assert_eq!(product["stock"].as_u64().unwrap() + sold, 100 + added, "stock + sold = initial + restocked");
    let audit = check_orders(app.client(), app.table()).await.unwrap_or_else(|e| panic!("invariant violated: {e:#}"));
    assert_eq!(audit.paid as u64 * 2, sold);
}

#[tokio::test]
async fn with_self_service_top_up_off_only_an_operator_credits_a_balance() {
    let app = TestApp::spawn_configured(|_, deps| deps.self_service_top_up = false).await;
    app.seed_users(&[(1, "10.00")]).await;
    let (status, answer) = app.post("/api/v1/users/1/balance/charge", r#"{"amount": "5.00"}"#, None).await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("FORBIDDEN")));
    let op = app.operator_token(900);
    let (status, _) =
        app.post_as("/api/v1/admin/users/1/balance/charge", r#"{"amount": "5.00"}"#, None, Some(&op)).await;
    assert_eq!(status, 200);
    assert_eq!(app.balance(1).await, "15.00");
}

#[tokio::test]
async fn the_local_issuer_mints_tokens_and_publishes_its_keys() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(42, "7.00")]).await;
    let (status, minted) = app.post_as("/_local/token", r#"{"userId": 42}"#, None, None).await;
    assert_eq!((status, minted["expiresIn"].as_u64()), (200, Some(3600)));
    let token = minted["token"].as_str().unwrap();
    assert_eq!(app.get_as("/api/v1/users/42/balance", Some(token)).await.1["balance"], "7.00");
    let (_, discovery) = app.get_as("/_local/.well-known/openid-configuration", None).await;
    assert_eq!(discovery["issuer"], format!("{}/_local", app.base_url));
    let (_, jwks) = app.get_as("/_local/jwks.json", None).await;
    assert_eq!(jwks["keys"][0]["kid"], app.issuer.kid());
    assert_eq!((jwks["keys"][0]["kty"].as_str(), jwks["keys"][0]["alg"].as_str()), (Some("RSA"), Some("RS256")));
    let (status, _) = app.post_as("/_local/token", r#"{"user": 42}"#, None, None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn with_auth_off_the_client_names_the_user_as_in_the_baseline() {
    let app = TestApp::spawn_trusting_the_client().await;
    app.seed_users(&[(2, "10.00")]).await;
    let (status, used) = app.post_as("/api/v1/users/2/balance/use", r#"{"amount": "1.00"}"#, None, None).await;
    assert_eq!((status, used["balance"].as_str()), (200, Some("9.00")), "{used}");
    assert_eq!(app.post_as("/_local/token", r#"{"userId": 2}"#, None, None).await.0, 404, "no issuer when auth is off");
}
