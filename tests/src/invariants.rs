//! Invariant checks read straight from the database, never through the API.

use std::collections::BTreeMap;

use rushcart::adapters::dynamodb::ledger::pending_entries;
use rushcart::adapters::dynamodb::{get_n, get_s, get_u64, s, Item};
use rushcart::money::Money;
use rust_decimal::Decimal;

/// A user's ledger as stored: the profile's balance and every entry by seq.
#[derive(Debug)]
pub struct Ledger {
    pub balance: Decimal,
    pub entries: BTreeMap<u64, (String, Decimal, Decimal)>,
}

pub async fn read_ledger(client: &aws_sdk_dynamodb::Client, table: &str, user: u64) -> Ledger {
    let mut items: Vec<Item> = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("USER#{user}")))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query the user's partition");
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let profile = items.iter().find(|i| get_s(i, "sk").ok() == Some("PROFILE")).expect("profile exists");
    let mut entries = BTreeMap::new();
    for row in items.iter().filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with("HIST#"))) {
        let seq = get_u64(row, "seq").unwrap();
        let previous = entries.insert(
            seq,
            (get_s(row, "kind").unwrap().to_owned(), get_n(row, "amount").unwrap(), get_n(row, "balanceAfter").unwrap()),
        );
        assert!(previous.is_none(), "two history rows with seq {seq}");
    }
    for (entry, _) in pending_entries(profile).expect("pending entries parse") {
        let value = (entry.kind.as_str().to_owned(), entry.amount.as_decimal(), entry.balance_after.as_decimal());
        if let Some(materialised) = entries.get(&entry.seq) {
            assert_eq!(*materialised, value, "pending and materialised copies of seq {} differ", entry.seq);
        }
        entries.insert(entry.seq, value);
    }
    Ledger { balance: get_n(profile, "balance").unwrap(), entries }
}

/// DESIGN invariant 1: balance ≥ 0; entries numbered 1..n without gaps; each entry's
/// balance-after is the previous one plus its signed amount; the balance equals the
/// sum of the entries (and the last balance-after).
pub fn assert_ledger_consistent(ledger: &Ledger) {
    assert!(ledger.balance >= Decimal::ZERO, "negative balance {}", ledger.balance);
    let mut running = Decimal::ZERO;
    for (expected_seq, (seq, (kind, amount, after))) in (1u64..).zip(&ledger.entries) {
        assert_eq!(*seq, expected_seq, "gap in the ledger before seq {seq}");
        assert!(*amount > Decimal::ZERO, "entry {seq} has a non-positive amount");
        running += if kind == "CHARGE" { *amount } else { -*amount };
        assert_eq!(running, *after, "entry {seq}: balance-after {after} but the running sum is {running}");
        assert!(running >= Decimal::ZERO, "entry {seq} took the balance below zero");
    }
    assert_eq!(running, ledger.balance, "balance {} but the entries sum to {running}", ledger.balance);
}

pub fn money(text: &str) -> Decimal {
    Money::parse(text).unwrap().as_decimal()
}
