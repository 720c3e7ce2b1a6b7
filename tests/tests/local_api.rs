//! The local API stands in for API Gateway: what API Gateway answers itself, it
//! answers the same way (an unrouted 404, a head past 10,240 bytes, a CORS preflight);
//! what it does in front of every function (request ids, timeouts, the body limit,
//! CORS headers) it does too. Against the real local stack.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rushcart_local_api::Timeouts;
use rushcart_tests::TestApp;

#[tokio::test]
async fn what_no_route_takes_is_api_gateways_not_found() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        ("GET", "/api/v1/nowhere"),
        ("DELETE", "/api/v1/users/1/balance"),
        ("PUT", "/api/v1/payment"),
        ("GET", "/api/v1/users/1/balance/extra"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"message": "Not Found"}), "{method} {path}");
    }
}

#[tokio::test]
async fn every_answer_carries_its_own_request_id() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    let mut ids = std::collections::BTreeSet::new();
    for path in ["/api/v1/users/1/balance", "/api/v1/users/999/balance", "/api/v1/nowhere"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let id = response.headers()["apigw-requestid"].to_str().unwrap().to_owned();
        assert!(!id.is_empty(), "{path}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3, "one id per request: {ids:?}");
}

/// A function's error names the request as the client saw it, so one grep of the
/// logs finds the failed call.
#[tokio::test]
async fn an_error_body_quotes_the_request_id_of_its_answer() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/api/v1/users/999/balance")).bearer_auth(app.token(999)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let id = response.headers()["apigw-requestid"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!((body["code"].as_str(), body["requestId"].as_str()), (Some("USER_NOT_FOUND"), Some(id.as_str())));
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_without_reading_it_all() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    // Five megabytes, announced, and again streamed without a length.
    let huge = vec![b' '; 5 * 1024 * 1024];
    let token = app.token(1);
    let response = app
        .http
        .post(app.url("/api/v1/users/1/balance/charge"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
    let streamed = tokio::task::spawn_blocking({
        let mut stream = connect(&app);
        move || {
            let head = format!("POST /api/v1/users/1/balance/charge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes()).unwrap();
            let chunk = [b' '; 64 * 1024];
            for _ in 0..80 {
                // The server answers once it has seen too much, and may stop reading.
                let sent = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).and_then(|()| {
                    stream.write_all(&chunk)?;
                    stream.write_all(b"\r\n")
                });
                if sent.is_err() {
                    break;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n");
            read_to_close(stream)
        }
    });
    let answer = streamed.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(200)]);
    assert_eq!(app.balance(1).await, "10.00");
}

/// Opens a raw connection to the app.
fn connect(app: &TestApp) -> TcpStream {
    connect_to(&app.base_url)
}

/// Opens a raw connection to the app at `base_url`.
fn connect_to(base_url: &str) -> TcpStream {
    let address = base_url.trim_start_matches("http://");
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads until the server closes the connection; what it said, if anything.
fn read_to_close(mut stream: TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_is_cut_off() {
    let timeouts = Timeouts {
        idle: Duration::from_secs(60),
        header_read: Duration::from_millis(500),
        body_read: Duration::from_millis(500),
        integration: Duration::from_secs(30),
    };
    let app = TestApp::spawn_with_timeouts(timeouts).await;
    app.seed_users(&[(1, "10.00")]).await;

    let stalled_headers = tokio::task::spawn_blocking({
        let mut stream = connect(&app);
        move || {
            stream.write_all(b"GET /api/v1/users/1/balance HTTP/1.1\r\nHost: x\r\n").unwrap();
            let started = Instant::now();
            let answer = read_to_close(stream);
            (started.elapsed(), answer)
        }
    });
    let token = app.token(1);
    let stalled_body = tokio::task::spawn_blocking({
        let mut stream = connect(&app);
        move || {
            let head = format!("POST /api/v1/users/1/balance/charge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"amount\"");
            stream.write_all(head.as_bytes()).unwrap();
            let started = Instant::now();
            let answer = read_to_close(stream);
            (started.elapsed(), answer)
        }
    });
    let (waited, answer) = stalled_headers.await.unwrap();
    assert!(waited < Duration::from_secs(5), "headers that never end are cut off ({waited:?}): {answer}");
    let (waited, answer) = stalled_body.await.unwrap();
    assert!(waited < Duration::from_secs(5), "a body that never ends is cut off ({waited:?})");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.balance(1).await, "10.00", "nothing was charged");
}

/// Reads one answer off a keep-alive connection: its status and body (by its
/// `Content-Length`), or `None` if the server closed the connection first.
fn read_answer(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A GET of user 1's balance on a connection that stays open.
fn balance_request(token: &str) -> String {
    format!("GET /api/v1/users/1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
}

/// The baseline's k6 client takes a coupon, sleeps 10 s, then orders on the same
/// connection: the local API must still be listening, as API Gateway is.
#[tokio::test]
async fn a_keep_alive_connection_left_idle_for_twelve_seconds_still_serves_the_next_request() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    let token = app.token(1);
    let mut stream = connect(&app);
    let answers = tokio::task::spawn_blocking(move || {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(balance_request(&token).as_bytes()).unwrap();
        let first = read_answer(&mut stream);
        std::thread::sleep(Duration::from_secs(12));
        let sent = stream.write_all(balance_request(&token).as_bytes());
        (first, sent.is_ok(), read_answer(&mut stream))
    })
    .await
    .unwrap();
    let (first, sent, second) = answers;
    assert_eq!(first.map(|(status, _)| status), Some(200));
    assert!(sent, "the connection was still open to write to");
    let (status, body) = second.expect("an answer on the connection that sat idle for 12 s");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("10.00"), "{body}");
}

/// Two clocks: the idle one runs between requests, the head's from its first byte. With
/// both short, a wait past the head's limit (but not the idle one) between requests is
/// fine, a head begun and left unfinished is cut off at the head's limit, and a
/// connection that says nothing at all is closed at the idle limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_time_between_requests_is_not_counted_against_the_next_head() {
    let timeouts = Timeouts {
        idle: Duration::from_secs(4),
        header_read: Duration::from_millis(500),
        body_read: Duration::from_secs(10),
        integration: Duration::from_secs(30),
    };
    let app = TestApp::spawn_with_timeouts(timeouts).await;
    app.seed_users(&[(1, "10.00")]).await;
    let token = app.token(1);

    let reused = tokio::task::spawn_blocking({
        let mut stream = connect(&app);
        move || {
            let mut statuses = Vec::new();
            for _ in 0..2 {
                stream.write_all(balance_request(&token).as_bytes()).unwrap();
                statuses.push(read_answer(&mut stream).map(|(status, _)| status));
                // Three times the head's limit, a quarter of the idle one to spare.
                std::thread::sleep(Duration::from_millis(1_500));
            }
            // A head begun and never finished.
            stream.write_all(b"GET /api/v1/users/1/balance HTTP/1.1\r\nHost: x\r\n").unwrap();
            let started = Instant::now();
            let rest = read_to_close(stream);
            (statuses, started.elapsed(), rest)
        }
    });
    let silent = tokio::task::spawn_blocking({
        let stream = connect(&app);
        move || {
            let started = Instant::now();
            let said = read_to_close(stream);
            (started.elapsed(), said)
        }
    });
    let (statuses, cut_after, rest) = reused.await.unwrap();
    assert_eq!(statuses, [Some(200), Some(200)], "both requests served on one connection");
    assert!(cut_after < Duration::from_secs(3), "an unfinished head is cut off at its own limit ({cut_after:?})");
    assert!(rest.is_empty(), "no answer to half a head: {rest:?}");
    let (closed_after, said) = silent.await.unwrap();
    assert!(said.is_empty(), "{said:?}");
    assert!(
        closed_after >= Duration::from_secs(3) && closed_after < Duration::from_secs(9),
        "a silent connection lives out its idle time, not the head's ({closed_after:?})"
    );
}

/// Sends a charge of 1.00 for user 1 whose 17-byte body goes out in `pieces` writes,
/// `gap` apart, on a connection of its own; the status of the answer (0 if none).
fn upload_slowly(base_url: &str, token: &str, pieces: usize, gap: Duration) -> u16 {
    let body = br#"{"amount":"1.00"}"#;
    let mut stream = connect_to(base_url);
    let head = format!(
        "POST /api/v1/users/1/balance/charge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for piece in body.chunks(body.len().div_ceil(pieces)) {
        std::thread::sleep(gap);
        // The server may already have answered and closed.
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let answer = read_to_close(stream);
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// API Gateway takes the whole body within its limit from the head, or answers 408 and
/// calls nothing; its integration timeout starts when the function is called. With both
/// short: a body trickled a byte at a time past the body limit (each byte well within
/// it, which a timer restarted by every frame would let through) is refused and charges
/// nothing; a body that takes longer than the integration timeout to arrive, but less
/// than the body limit, is charged once and answered 200, not 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_is_timed_as_a_whole_and_does_not_eat_into_the_functions_time() {
    let timeouts = Timeouts {
        idle: Duration::from_secs(60),
        header_read: Duration::from_secs(10),
        body_read: Duration::from_secs(4),
        integration: Duration::from_secs(2),
    };
    let app = TestApp::spawn_with_timeouts(timeouts).await;
    app.seed_users(&[(1, "10.00")]).await;
    let token = app.token(1);

    let trickled = tokio::task::spawn_blocking({
        let (base_url, token) = (app.base_url.clone(), token.clone());
        move || {
            let started = Instant::now();
            (upload_slowly(&base_url, &token, 17, Duration::from_millis(350)), started.elapsed())
        }
    });
    let (status, took) = trickled.await.unwrap();
    assert_eq!(status, 408, "a body still arriving past the limit is refused");
    assert!(took < Duration::from_secs(6), "refused at the body limit, not after the trickle ({took:?})");
    assert_eq!(app.balance(1).await, "10.00", "and nothing was charged");

    let slow = tokio::task::spawn_blocking({
        let (base_url, token) = (app.base_url.clone(), token.clone());
        move || upload_slowly(&base_url, &token, 13, Duration::from_millis(200))
    });
    assert_eq!(slow.await.unwrap(), 200, "2.6 s of upload is not the function's time");
    assert_eq!(app.balance(1).await, "11.00", "charged once");
}

/// Sends `head` (and nothing more) on a connection of its own that asks to be closed;
/// the answer's status, its head (lower-cased) and its body.
async fn exchange(app: &TestApp, head: String) -> (u16, String, String) {
    exchange_bytes(app, head.into_bytes()).await
}

/// [`exchange`] for a head that need not be text.
async fn exchange_bytes(app: &TestApp, head: Vec<u8>) -> (u16, String, String) {
    let mut stream = connect(app);
    let answer = tokio::task::spawn_blocking(move || {
        // The server may answer and close before it has read all of a huge head.
        let _ = stream.write_all(&head);
        read_to_close(stream)
    })
    .await
    .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{answer}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A GET of the product list whose request line and headers, as sent, are `size`
/// bytes: a padding header makes up the rest.
fn head_of_size(size: usize) -> String {
    let start = "GET /api/v1/products HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
    let end = "\r\n\r\n";
    format!("{start}{}{end}", "p".repeat(size - start.len() - end.len()))
}

#[tokio::test]
async fn a_request_line_and_headers_past_api_gateways_10_240_bytes_get_its_json_refusal() {
    let app = TestApp::spawn().await;
    let limit = rushcart_local_api::MAX_HEAD_BYTES;
    assert_eq!(limit, 10_240);

    let (status, _, _) = exchange(&app, head_of_size(limit)).await;
    assert_eq!(status, 200, "a head of exactly the limit is served");
    let too_large = |status: u16, head: &str, body: &str, message: &str| {
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(head.contains("apigw-requestid: "), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{status}: {body:?}"));
        assert_eq!(body, serde_json::json!({ "message": message }), "{status}");
    };
    let (status, head, body) = exchange(&app, head_of_size(limit + 1)).await;
    assert_eq!(status, 431);
    too_large(status, &head, &body, "Request Header Fields Too Large");

    // More header lines than hyper parses by default (100), in few bytes.
    let many: String = (0..2_000).map(|i| format!("x{i}: y\r\n")).collect();
    let (status, head, body) =
        exchange(&app, format!("GET /api/v1/products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{many}\r\n")).await;
    assert_eq!(status, 431);
    too_large(status, &head, &body, "Request Header Fields Too Large");
    let some: String = (0..1_000).map(|i| format!("x{i}: y\r\n")).collect();
    let (status, _, body) =
        exchange(&app, format!("GET /api/v1/products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{some}\r\n")).await;
    assert_eq!(status, 200, "a thousand short headers fit in the limit: {body}");

    // The URI alone past the limit: 414, even far past it (hyper's buffer holds more).
    for length in [limit + 1, 60 * 1024] {
        let uri = format!("/api/v1/products?q={}", "q".repeat(length - "/api/v1/products?q=".len()));
        let (status, head, body) =
            exchange(&app, format!("GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
        assert_eq!(status, 414, "a URI of {length} bytes");
        too_large(status, &head, &body, "Request-URI Too Long");
    }
    // Before the authorizer and the routes: no token, no route, still 414.
    let uri = format!("/api/v1/nowhere/{}", "n".repeat(limit));
    let (status, _, _) = exchange(&app, format!("POST {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
    assert_eq!(status, 414);
}

/// What hyper cannot parse, hyper answers itself, with no body: there is no hook in
/// hyper 1 to give that answer API Gateway's JSON (see `rushcart_local_api::serve`).
/// This pins that limit so a change to it is seen.
#[tokio::test]
async fn what_hyper_refuses_itself_still_gets_api_gateways_json() {
    let app = TestApp::spawn().await;
    let json_answer = |(status, head, body): (u16, String, String), want: u16, message: &str, what: &str| {
        assert_eq!(status, want, "{what}: {head}");
        assert!(head.contains("content-type: application/json"), "{what}: {head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{what}: {head}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body:?}"));
        assert_eq!(body, serde_json::json!({ "message": message }), "{what}");
    };
    let token = app.token(1);
    let get = |extra: &str| {
        format!("GET /api/v1/users/1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n")
            .into_bytes()
    };
    let answer = exchange(&app, "NOT HTTP AT ALL\r\n\r\n".to_owned()).await;
    json_answer(answer, 400, "Bad Request", "not HTTP");
    for byte in [0x7f_u8, 0x00] {
        let mut head = get("Idempotency-Key: k\r\n");
        let at = head.windows(3).position(|w| w == b": k").unwrap() + 2;
        head[at] = byte;
        json_answer(exchange_bytes(&app, head).await, 400, "Bad Request", &format!("a key holding {byte:#04x}"));
    }
    let mut raw = b"GET /api/v1/users/1/balance".to_vec();
    raw.insert(15, 0xff);
    raw.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    json_answer(exchange_bytes(&app, raw).await, 400, "Bad Request", "a raw 0xff byte in the path");
    let huge_header = get(&format!("X-Pad: {}\r\n", "p".repeat(200 * 1024)));
    json_answer(exchange_bytes(&app, huge_header).await, 431, "Request Header Fields Too Large", "a 200 KB header");
    let long_path = format!("GET /api/v1/products?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(100 * 1024));
    json_answer(exchange(&app, long_path).await, 414, "Request-URI Too Long", "a 100 KB path");
}

/// A path parameter that does not decode to UTF-8 reaches the authorizer first (401 without
/// a token), then the function, which refuses it in JSON.
#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_refused_in_json_after_the_authorizer() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    let response = app.http.get(app.url("/api/v1/users/%ff/balance")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"message": "Unauthorized"}));
    let response = app.http.get(app.url("/api/v1/users/%ff/balance")).bearer_auth(app.token(1)).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "INVALID_USER_ID", "{body}");
}

/// A local route's body past axum's limit is refused in JSON, as the functions refuse theirs.
#[tokio::test]
async fn a_token_request_past_the_body_limit_is_refused_in_json() {
    let app = TestApp::spawn().await;
    let huge = format!(r#"{{"userId": 1, "pad": "{}"}}"#, "p".repeat(3 * 1024 * 1024));
    let response = app
        .http
        .post(app.url("/_local/token"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");
}

/// An origin the default `CORS_ALLOWED_ORIGINS` (the template's default) allows.
const ALLOWED_ORIGIN: &str = "http://localhost:3000";

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_for_any_path_before_the_authorizer() {
    let app = TestApp::spawn().await;
    let preflight = |path: &str, origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type, idempotency-key")
            .send()
    };
    for path in ["/api/v1/users/1/balance/charge", "/api/v1/payment", "/api/v1/admin/products", "/api/v1/nowhere"] {
        let response = preflight(path, ALLOWED_ORIGIN).await.unwrap();
        assert_eq!(response.status(), 204, "{path}: no token needed, no route needed");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], ALLOWED_ORIGIN, "{path}");
        assert_eq!(headers["access-control-allow-methods"], "GET, POST, PUT, OPTIONS");
        assert_eq!(headers["access-control-allow-headers"], "Authorization, Content-Type, Idempotency-Key");
        assert_eq!(headers["access-control-max-age"], "600");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.get("www-authenticate").is_none(), "{path}");
        assert_eq!(response.bytes().await.unwrap().len(), 0);
    }
    // Another origin learns nothing: the browser then refuses the real request.
    for origin in ["http://evil.example", "http://localhost:3001", "https://localhost:3000", "null"] {
        let response = preflight("/api/v1/users/1/balance/charge", origin).await.unwrap();
        assert_eq!(response.status(), 204, "{origin}");
        let cors: Vec<_> =
            response.headers().keys().filter(|name| name.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "{origin}: {cors:?}");
    }
    // An OPTIONS that is no preflight is an ordinary request: no route takes it.
    let response = app.http.request(reqwest::Method::OPTIONS, app.url("/api/v1/products")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_answer_to_an_allowed_origin_names_it_and_exposes_the_gateways_headers() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "10.00")]).await;
    app.seed_products(1, "1.00", 5).await;
    let token = app.token(1);
    let get = |path: &str, origin: Option<&str>, token: Option<&str>| {
        let mut request = app.http.get(app.url(path));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // Whoever answers: a function (200, 404), the authorizer (401), no route (404).
    for (path, token, status) in [
        ("/api/v1/users/1/balance", Some(token.as_str()), 200),
        ("/api/v1/products/9", None, 404),
        ("/api/v1/users/1/balance", None, 401),
        ("/api/v1/nowhere", None, 404),
    ] {
        let response = get(path, Some(ALLOWED_ORIGIN), token).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], ALLOWED_ORIGIN, "{path}");
        assert_eq!(headers["access-control-expose-headers"], "apigw-requestid, Location, Retry-After", "{path}");
        assert!(headers.get_all("vary").iter().any(|v| v == "Origin"), "{path}");
    }
    for origin in [Some("http://evil.example"), None] {
        let response = get("/api/v1/users/1/balance", origin, Some(&token)).await.unwrap();
        assert_eq!(response.status(), 200);
        let cors: Vec<_> =
            response.headers().keys().filter(|name| name.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "{origin:?}: {cors:?}");
    }
}
