//! The balance use cases against the real local engine (dynoxide), through the
//! local API over HTTP, with the ledger invariant checked from the database after
//! every race.

use futures::future::join_all;
use rushcart_tests::capacity::{count_unavailable, unavailable, under_capacity};
use rushcart_tests::invariants::{assert_ledger_consistent, money, read_ledger};
use rushcart_tests::TestApp;
use rust_decimal::Decimal;
use serde_json::Value;

const CHARGE: &str = "/api/v1/users/1/balance/charge";
const USE: &str = "/api/v1/users/1/balance/use";

/// Under the capacity model all 200 land on one user's partition (`USER#1`, which no
/// sharding can spread: its ledger is one gapless sequence), so some may be answered
/// 503; each of those changed nothing, and the balance and ledger count only the 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_charges_and_a_hundred_uses_at_once_all_succeed_and_add_up() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000000.00")]).await;

    let body = r#"{"amount":"1000.00"}"#;
    let requests = (0..200).map(|i| {
        let path = if i % 2 == 0 { CHARGE } else { USE };
        app.post(path, body, None)
    });
    let results = join_all(requests).await;

    for (status, body) in &results {
        assert!(*status == 200 || unavailable(*status, body), "{status} {body}");
    }
    let landed = |parity: usize| results.iter().skip(parity).step_by(2).filter(|(status, _)| *status == 200).count();
    let (charged, used) = (landed(0), landed(1));
    let ok = (charged + used) as u64;
    assert_eq!(ok as usize + count_unavailable(&results), 200);
    let expected =
        money("1000000.00") + money("1000.00") * Decimal::from(charged) - money("1000.00") * Decimal::from(used);
    assert_eq!(money(&app.balance(1).await), expected, "{charged} charges and {used} uses landed");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_eq!(ledger.entries.len() as u64, 1 + ok, "the opening entry and one per change answered 200");
    assert_ledger_consistent(&ledger);
    // Every success reported a distinct entry with the balance right after it.
    let succeeded = || results.iter().filter(|(status, _)| *status == 200).map(|(_, body)| body);
    let mut seqs: Vec<u64> = succeeded().map(|b| b["entry"]["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=1 + ok).collect::<Vec<_>>());
    for body in succeeded() {
        let seq = body["entry"]["seq"].as_u64().unwrap();
        assert_eq!(money(body["entry"]["balanceAfter"].as_str().unwrap()), ledger.entries[&seq].balance_after);
    }
    if under_capacity() {
        eprintln!("200 changes of one user: {ok} landed, {} throttled by the model", app.throttled());
    }
}

/// Under the capacity model some uses may be answered 503 (one user's partition): they
/// spend nothing, so exactly min(100, the rest) succeed, and a refusal comes only once
/// the balance is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overspending_by_fifty_uses_leaves_exactly_zero_and_never_goes_negative() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "1000000.00")]).await;

    let results = join_all((0..150).map(|_| app.post(USE, r#"{"amount":"10000.00"}"#, None))).await;

    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<&Value> = results.iter().filter(|(status, _)| *status == 409).map(|(_, b)| b).collect();
    let unavailable = count_unavailable(&results);
    assert_eq!(ok + refused.len() + unavailable, 150, "{:?}", results.iter().find(|(s, _)| *s != 200 && *s != 409));
    assert_eq!((ok, refused.len()), (100.min(150 - unavailable), 150 - unavailable - 100.min(150 - unavailable)));
    assert!(refused.iter().all(|b| b["code"] == "INSUFFICIENT_BALANCE"));
    let left = money("1000000.00") - money("10000.00") * Decimal::from(ok as u64);
    assert_eq!(money(&app.balance(1).await), left);
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_eq!(ledger.entries.len(), 1 + ok);
    assert_ledger_consistent(&ledger);
}

/// Under the capacity model a send may be answered 503 (one key, one user's
/// partition); it changed nothing, and the later retry below gets the one change made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_charges_with_one_key_take_effect_once() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;

    let results = join_all((0..20).map(|_| app.post(CHARGE, r#"{"amount":"50.00"}"#, Some("retry-me")))).await;

    let answered: Vec<&Value> =
        results.iter().filter(|(status, body)| !unavailable(*status, body)).map(|(_, body)| body).collect();
    for (status, body) in results.iter().filter(|(status, body)| !unavailable(*status, body)) {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, answered[0], "every retry returns the first response");
    }

    // Later retries, after materialisation, still answer the same.
    let (status, body) = app.post(CHARGE, r#"{"amount": 50}"#, Some("retry-me")).await;
    assert_eq!(status, 200, "{body}");
    if let Some(first) = answered.first() {
        assert_eq!(&body, *first);
    }
    assert_eq!(body["balance"], "150.00");
    assert_eq!(app.balance(1).await, "150.00");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_eq!(ledger.entries.len(), 2);
    assert_ledger_consistent(&ledger);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;
    assert_eq!(app.post(USE, r#"{"amount":"10.00"}"#, Some("k-1")).await.0, 200);

    let (status, body) = app.post(USE, r#"{"amount":"20.00"}"#, Some("k-1")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")));
    let (status, body) = app.post(CHARGE, r#"{"amount":"10.00"}"#, Some("k-1")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSED")));
    assert_eq!(app.balance(1).await, "90.00");
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00"), (2, "100.00")]).await;
    assert_eq!(app.post(USE, r#"{"amount":"10.00"}"#, Some("shared")).await.0, 200);
    let (status, body) = app.post("/api/v1/users/2/balance/use", r#"{"amount":"10.00"}"#, Some("shared")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.balance(2).await, "90.00");
}

#[tokio::test]
async fn charging_past_the_maximum_balance_is_refused() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "999999999.00")]).await;
    let (status, body) = app.post(CHARGE, r#"{"amount":"1.01"}"#, None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("BALANCE_LIMIT_EXCEEDED")));
    assert_eq!(app.post(CHARGE, r#"{"amount":"1.00"}"#, None).await.0, 200);
    assert_eq!(app.balance(1).await, "1000000000.00");
}

#[tokio::test]
async fn bad_input_is_a_4xx_json_error_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "500.00")]).await;
    let huge = format!(r#"{{"amount":"1.00","pad":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (USE, r#"{"amount":"-1.00"}"#.into(), 400, "INVALID_AMOUNT"),
        (USE, r#"{"amount":-1}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":"0"}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":0}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":"1.001"}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":1.001}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":"ten"}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":"NaN"}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":NaN}"#.into(), 400, "MALFORMED_JSON"),
        (CHARGE, r#"{"amount":"1e3"}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":1e3}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":1E-2}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":"10000000.01"}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":99999999999999999999999999999999}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":null}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":true}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":["1.00"]}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"{"amount":{"value":"1.00"}}"#.into(), 400, "INVALID_AMOUNT"),
        (CHARGE, r#"["1.00"]"#.into(), 400, "INVALID_BODY"),
        (CHARGE, r#""1.00""#.into(), 400, "INVALID_BODY"),
        (CHARGE, r#"{"amount":"1.00""#.into(), 400, "MALFORMED_JSON"),
        (CHARGE, r#"{"amount":"1.00"} trailing"#.into(), 400, "MALFORMED_JSON"),
        (CHARGE, String::new(), 400, "INVALID_BODY"),
        (CHARGE, huge, 413, "PAYLOAD_TOO_LARGE"),
        ("/api/v1/users/abc/balance/charge", r#"{"amount":"1.00"}"#.into(), 400, "INVALID_USER_ID"),
        ("/api/v1/users/0/balance/charge", r#"{"amount":"1.00"}"#.into(), 400, "INVALID_USER_ID"),
        ("/api/v1/users/-1/balance/use", r#"{"amount":"1.00"}"#.into(), 400, "INVALID_USER_ID"),
        ("/api/v1/users/1.5/balance/use", r#"{"amount":"1.00"}"#.into(), 400, "INVALID_USER_ID"),
        ("/api/v1/users/999/balance/charge", r#"{"amount":"1.00"}"#.into(), 404, "USER_NOT_FOUND"),
        ("/api/v1/users/999/balance/use", r#"{"amount":"1.00"}"#.into(), 404, "USER_NOT_FOUND"),
    ];
    for (path, body, status, code) in &cases {
        let (got_status, got) = app.post(path, body, None).await;
        let shown = &body[..body.len().min(60)];
        assert_eq!(got_status, *status, "{path} {shown}: {got}");
        assert_eq!(got["code"], *code, "{path} {shown}: {got}");
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()), "{path} {shown}: no message");
    }
    let (status, body) = app.post(CHARGE, r#"{"amount":"1.00"}"#, Some("has space")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_IDEMPOTENCY_KEY")));

    for path in ["/api/v1/users/abc/balance", "/api/v1/users/0/balance/history"] {
        let (status, body) = app.get(path).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_USER_ID")), "{path}");
    }
    for path in ["/api/v1/users/999/balance", "/api/v1/users/999/balance/history"] {
        let (status, body) = app.get(path).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("USER_NOT_FOUND")), "{path}");
    }

    assert_eq!(app.balance(1).await, "500.00");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_eq!(ledger.entries.len(), 1, "nothing but the opening entry");
}

#[tokio::test]
async fn history_pages_newest_first_with_an_opaque_cursor() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;
    for amount in ["1.00", "2.00", "3.00", "4.00"] {
        assert_eq!(app.post(USE, &format!(r#"{{"amount":"{amount}"}}"#), None).await.0, 200);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/users/1/balance/history?limit=2".to_owned(),
            Some(c) => format!("/api/v1/users/1/balance/history?limit=2&cursor={c}"),
        };
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["items"].as_array().unwrap().len() <= 2);
        for item in body["items"].as_array().unwrap() {
            seen.push((
                item["seq"].as_u64().unwrap(),
                item["type"].as_str().unwrap().to_owned(),
                item["balanceAfter"].as_str().unwrap().to_owned(),
            ));
            assert!(item["id"].is_string() && item["createdAt"].as_str().unwrap().ends_with('Z'));
        }
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<(u64, String, String)> = vec![
        (5, "USE".into(), "90.00".into()),
        (4, "USE".into(), "94.00".into()),
        (3, "USE".into(), "97.00".into()),
        (2, "USE".into(), "99.00".into()),
        (1, "CHARGE".into(), "100.00".into()),
    ];
    assert_eq!(seen, expected);

    for query in ["limit=0", "limit=101", "limit=x", "cursor=%21%21", "cursor=eHl6"] {
        let (status, body) = app.get(&format!("/api/v1/users/1/balance/history?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(matches!(body["code"].as_str(), Some("INVALID_LIMIT" | "INVALID_CURSOR")), "{query}: {body}");
    }
}
