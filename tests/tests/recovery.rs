//! What the ledger does when a writer is interrupted: repeated commits of one change
//! (an SDK retry after a timeout) apply once, and an entry left pending by a writer
//! that died after committing is shown by history and finished by it.

use rushcart::balance::{BalanceChange, BalanceHistory, BalanceLedger, EntryKind};
use rushcart::ids::{EntryId, IdempotencyKey, UserId};
use rushcart::money::Amount;
use rushcart::pagination::PageRequest;
use rushcart_tests::invariants::{assert_ledger_consistent, read_ledger};
use rushcart_tests::TestApp;

fn change(kind: EntryKind, amount: &str, key: Option<&str>, age: time::Duration) -> BalanceChange {
    BalanceChange {
        id: EntryId::generate(),
        user: UserId::new(1).unwrap(),
        kind,
        amount: Amount::parse(amount).unwrap(),
        order: None,
        at: time::OffsetDateTime::now_utc() - age,
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
    }
}

fn pending_count(profile: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    profile.keys().filter(|k| k.starts_with("pe_")).count()
}

async fn profile(app: &TestApp) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    app.client()
        .get_item()
        .table_name(app.table())
        .key("pk", rushcart::adapters::dynamodb::s("USER#1"))
        .key("sk", rushcart::adapters::dynamodb::s("PROFILE"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test]
async fn committing_the_same_change_twice_applies_it_once() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;
    for key in [None, Some("retried")] {
        let change = change(EntryKind::Use, "10.00", key, time::Duration::ZERO);
        let first = app.store.commit_change(&change).await.unwrap();
        let second = app.store.commit_change(&change).await.unwrap();
        assert_eq!(first.entry, second.entry, "key {key:?}");
    }
    assert_eq!(app.balance(1).await, "80.00");
    let ledger = read_ledger(app.client(), app.table(), 1).await;
    assert_eq!(ledger.entries.len(), 3);
    assert_ledger_consistent(&ledger);
}

#[tokio::test]
async fn an_entry_abandoned_after_its_commit_is_shown_then_finished_by_history() {
    let app = TestApp::spawn().await;
    app.seed_users(&[(1, "100.00")]).await;
    // A fresh pending entry: its writer may still be finishing it, so history shows it
    // without touching it. An old one was abandoned: history materialises it.
    let fresh = app.store.commit_change(&change(EntryKind::Charge, "5.00", None, time::Duration::ZERO)).await.unwrap();
    let old = change(EntryKind::Use, "20.00", Some("k"), time::Duration::minutes(5));
    let abandoned = app.store.commit_change(&old).await.unwrap();
    assert_eq!(pending_count(&profile(&app).await), 2);
    assert_ledger_consistent(&read_ledger(app.client(), app.table(), 1).await);

    let now = time::OffsetDateTime::now_utc();
    let page = app.store.history(UserId::new(1).unwrap(), PageRequest::first(10), now).await.unwrap();
    let seqs: Vec<u64> = page.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 2, 1]);
    assert!(page.items.contains(&fresh.entry) && page.items.contains(&abandoned.entry));
    assert_eq!(pending_count(&profile(&app).await), 1, "only the abandoned entry was finished");

    // A client's retry (a new request with the same key) still gets the same entry.
    let retry = BalanceChange { id: EntryId::generate(), at: time::OffsetDateTime::now_utc(), ..old.clone() };
    let replay = app.store.apply(retry).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.entry, abandoned.entry);
    assert_eq!(app.balance(1).await, "85.00");
    assert_ledger_consistent(&read_ledger(app.client(), app.table(), 1).await);
}
