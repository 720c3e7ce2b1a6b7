//! Idempotency records (`USER#<userId>` / `IDEM#<key>`, and `OPERATORS` / `IDEM#<key>`
//! for the operators' writes): how a retry with the same `Idempotency-Key` finds the
//! first outcome instead of making a second one.
//!
//! A record is put under `attribute_not_exists(pk)` in the same transaction as the
//! change it guards, so one key commits at most one change. It keeps the request's
//! fingerprint (a retry must repeat the request exactly; otherwise the key was reused
//! for something else), what the change made (a ledger entry, an order, a payment),
//! the ledger entry it wrote if it moved money, and — once the entry is materialised —
//! its `seq`, so a replay reads the entry by its key rather than searching for it.
//! Records expire (DynamoDB TTL on `expiresAt`) after [`TTL`].

use anyhow::anyhow;
use aws_sdk_dynamodb::types::Put;
use time::OffsetDateTime;

use super::keys::KeyScope;
use super::{get_s, get_u64, keys, n, s, DbError, DynamoStore, Item};
use crate::clock::rfc3339;
use crate::ids::{EntryId, IdempotencyKey};

/// How long a key is remembered.
pub const TTL: time::Duration = time::Duration::hours(24);

pub use crate::ids::KeyTarget as Target;

/// A record to write with the change it guards.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub scope: KeyScope,
    pub key: &'a IdempotencyKey,
    pub fingerprint: String,
    pub target: Target,
    /// The ledger entry the change wrote, if it moved money.
    pub entry: Option<EntryId>,
    pub at: OffsetDateTime,
}

/// A record as read back, its fingerprint already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub target: Target,
    pub entry: Option<EntryId>,
    /// The entry's seq, once it is materialised.
    pub seq: Option<u64>,
    /// The first answer, when the change kept it ([`Record::put_answering`]).
    pub answer: Option<Item>,
}

/// The key was first used for a different request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyReused;

impl Record<'_> {
    /// The transaction item: a put that fails when the key was used before.
    pub fn put(&self, table: &str) -> Result<Put, DbError> {
        self.put_at(table, None, None)
    }

    /// The same, keeping `answer` (an item of the answer's fields) for a replay to
    /// answer exactly, when what the change answers cannot be rebuilt from the request.
    pub fn put_answering(&self, table: &str, answer: Item) -> Result<Put, DbError> {
        self.put_at(table, None, Some(answer))
    }

    /// The same, for a change whose history row `seq` commits in the same transaction:
    /// the record names its seq from the start.
    pub fn put_materialised(&self, table: &str, seq: u64) -> Result<Put, DbError> {
        self.put_at(table, Some(seq), None)
    }

    fn put_at(&self, table: &str, seq: Option<u64>, answer: Option<Item>) -> Result<Put, DbError> {
        let mut item = keys::idempotency_record(self.scope, self.key).item();
        if let Some(answer) = answer {
            item.insert("answer".to_owned(), aws_sdk_dynamodb::types::AttributeValue::M(answer));
        }
        if let Some(seq) = seq {
            item.insert("seq".to_owned(), n(seq));
        }
        item.insert("fingerprint".to_owned(), s(&self.fingerprint));
        let (field, id) = match self.target {
            Target::Entry(id) => ("entryId", id.to_string()),
            Target::Order(id) => ("orderId", id.to_string()),
            Target::Payment(id) => ("paymentId", id.to_string()),
            Target::Product(id) => ("productId", id.to_string()),
            Target::Coupon(id) => ("couponId", id.to_string()),
        };
        item.insert(field.to_owned(), s(id));
        if let Some(entry) = self.entry {
            item.insert("entryId".to_owned(), s(entry.to_string()));
        }
        item.insert("createdAt".to_owned(), s(rfc3339(self.at)));
        item.insert("expiresAt".to_owned(), n((self.at + TTL).unix_timestamp()));
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| DbError::Other(anyhow!("build the idempotency record: {e}")))
    }
}

impl DynamoStore {
    /// The record of a key that committed a change, if the request matches the one
    /// that first used it.
    pub async fn idempotency_record(
        &self,
        scope: impl Into<KeyScope>,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Result<Stored, KeyReused>, DbError> {
        let scope = scope.into();
        self.find_idempotency_record(scope, key, fingerprint)
            .await?
            .ok_or_else(|| DbError::Other(anyhow!("the idempotency record of {scope} vanished")))
    }

    /// The record of `key` if it was used, checked against the request's fingerprint.
    pub async fn find_idempotency_record(
        &self,
        scope: KeyScope,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<Result<Stored, KeyReused>>, DbError> {
        let item =
            self.get(&keys::idempotency_record(scope, key), || format!("read an idempotency key of {scope}")).await?;
        let Some(item) = item else { return Ok(None) };
        let read = || -> anyhow::Result<Result<Stored, KeyReused>> {
            if get_s(&item, "fingerprint")? != fingerprint {
                return Ok(Err(KeyReused));
            }
            let id = |field: &str| -> anyhow::Result<Option<String>> {
                Ok(item.get(field).map(|_| get_s(&item, field)).transpose()?.map(str::to_owned))
            };
            let bad = |field: &str| anyhow!("bad {field} on the idempotency record of {scope}");
            let entry = id("entryId")?.map(|text| text.parse().map_err(|_| bad("entryId"))).transpose()?;
            let target = if let Some(order) = id("orderId")? {
                Target::Order(order.parse().map_err(|_| bad("orderId"))?)
            } else if let Some(payment) = id("paymentId")? {
                Target::Payment(payment.parse().map_err(|_| bad("paymentId"))?)
            } else if let Some(product) = id("productId")? {
                Target::Product(product.parse().map_err(|_| bad("productId"))?)
            } else if let Some(coupon) = id("couponId")? {
                Target::Coupon(coupon.parse().map_err(|_| bad("couponId"))?)
            } else {
                Target::Entry(entry.ok_or_else(|| bad("target"))?)
            };
            let seq = item.get("seq").map(|_| get_u64(&item, "seq")).transpose()?;
            let answer = item.get("answer").and_then(|answer| answer.as_m().ok()).cloned();
            Ok(Ok(Stored { target, entry, seq, answer }))
        };
        read().map(Some).map_err(DbError::Other)
    }

    /// Records the seq of the entry a key's change wrote, once it is materialised. A
    /// record that expired meanwhile (TTL) needs no seq: nothing can replay it.
    pub async fn record_entry_seq(&self, scope: KeyScope, key: &IdempotencyKey, seq: u64) -> Result<(), DbError> {
        let recorded = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::idempotency_record(scope, key).item()))
            .update_expression("SET seq = :seq")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":seq", n(seq))
            .send()
            .await;
        match recorded {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(super::db_error(err, || format!("record seq {seq} on an idempotency key of {scope}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::dynamodb::get_n;
    use crate::ids::{PaymentId, UserId};

    #[test]
    fn a_record_expires_a_day_after_it_was_made_and_is_put_only_once() {
        let key = IdempotencyKey::parse("pay-1").unwrap();
        let at = time::macros::datetime!(2026-11-24 10:00 UTC);
        let payment = PaymentId::generate();
        let entry = EntryId::generate();
        let record = Record {
            scope: UserId::new(7).unwrap().into(),
            key: &key,
            fingerprint: "PAY:7:x".to_owned(),
            target: Target::Payment(payment),
            entry: Some(entry),
            at,
        };
        let put = record.put("t").unwrap();
        assert_eq!(put.condition_expression(), Some("attribute_not_exists(pk)"));
        let item = put.item();
        assert_eq!(get_s(item, "pk").unwrap(), "USER#7");
        assert_eq!(get_s(item, "sk").unwrap(), "IDEM#pay-1");
        assert_eq!(get_s(item, "paymentId").unwrap(), payment.to_string());
        assert_eq!(get_s(item, "entryId").unwrap(), entry.to_string());
        assert_eq!(get_s(item, "fingerprint").unwrap(), "PAY:7:x");
        assert_eq!(get_n(item, "expiresAt").unwrap(), (at + time::Duration::hours(24)).unix_timestamp().into());
    }
}
