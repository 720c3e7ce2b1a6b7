//! The balance ledger on DynamoDB: reads, changes and history of a user's balance.
//!
//! # How a change commits without reading first
//!
//! A change is one conditional write that needs no prior read, so a hundred
//! concurrent changes to one user do not retry each other:
//!
//! 1. `Update USER#u/PROFILE`
//!    `SET balance = balance + :d, seq = seq + :one,`
//!    `    pe_<entry> = :entry, pb_<entry> = balance + :d, ps_<entry> = seq + :one`
//!    under `balance >= :amount` (a use) or `balance <= :max − amount` (a charge), and
//!    `attribute_not_exists(pe_<entry>)`. Every operand of an update expression is read
//!    from the item *before* the update, so `pb_`/`ps_` capture the exact balance after
//!    this change and its sequence number, committed atomically with it: this pending
//!    entry is the change's ledger record.
//! 2. Without an `Idempotency-Key` that is the whole commit: one `UpdateItem` whose
//!    `UPDATED_NEW` return values carry the entry. If the SDK retries it after a timeout
//!    and the first attempt had committed, the `attribute_not_exists` condition fails and
//!    the returned old item holds the entry: the change is applied once.
//! 3. With a key, the update goes in a `TransactWriteItems` with
//!    `Put USER#u/IDEM#<key>` under `attribute_not_exists(pk)`, so one key commits at
//!    most one change; the transaction's `ClientRequestToken` makes SDK retries safe, and
//!    the entry is read back from the profile afterwards.
//!
//! Then the entry is *materialised*: `Put USER#u/HIST#<seq>` (deterministic, so
//! repeating it is harmless), the idempotency record learns the seq, and the pending
//! attributes are removed. If the process dies in between, the pending entry stays
//! on the profile; history reads show it as it is and materialise it once it is
//! older than [`ABANDONED_AFTER`]. A ledger entry therefore lives in exactly one of two
//! places (both, briefly, with the same seq — readers dedupe by seq), and the balance
//! always equals the sum of the user's entries.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use time::OffsetDateTime;

use super::{db_error, get_money, get_s, get_time, get_u64, key, n, s, user_pk, DbError, DynamoStore, Item};
use crate::balance::{
    Applied, BalanceChange, BalanceError, BalanceHistory, BalanceLedger, BalanceReader, EntryKind, LedgerEntry,
};
use crate::ids::{EntryId, IdempotencyKey, UserId};
use crate::money::{Money, MAX_BALANCE};
use crate::pagination::{Page, PageRequest};
use crate::retry::RetryPolicy;

pub const PROFILE_SK: &str = "PROFILE";
/// A pending entry older than this was abandoned by its writer; readers finish it.
pub const ABANDONED_AFTER: time::Duration = time::Duration::seconds(60);
/// Idempotency records expire (DynamoDB TTL) after a day.
pub const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

pub fn hist_sk(seq: u64) -> String {
    format!("HIST#{seq:020}")
}

pub(super) fn idem_sk(key: &IdempotencyKey) -> String {
    format!("IDEM#{}", key.as_str())
}

impl From<DbError> for BalanceError {
    fn from(err: DbError) -> BalanceError {
        match err {
            DbError::Unavailable(e) => BalanceError::Unavailable(e),
            DbError::Other(e) => BalanceError::Unexpected(e),
        }
    }
}

impl BalanceReader for DynamoStore {
    async fn balance(&self, user: UserId) -> Result<Money, BalanceError> {
        let profile = self.profile(user).await?.ok_or(BalanceError::UnknownUser(user))?;
        Ok(get_money(&profile, "balance")?)
    }
}

impl BalanceLedger for DynamoStore {
    async fn apply(&self, change: BalanceChange) -> Result<Applied, BalanceError> {
        let applied = self.commit_change(&change).await?;
        if !applied.replayed {
            if let Err(err) = self.materialise(change.user, &applied.entry, change.idempotency_key.as_ref()).await {
                // The change is committed and its pending entry is safe on the profile; a
                // later history read finishes the job.
                tracing::warn!(user = %change.user, entry = %applied.entry.id, error = %format!("{err:#}"), "materialising a ledger entry failed");
            }
        }
        Ok(applied)
    }
}

impl DynamoStore {
    /// Commits a change (retrying transaction conflicts) and stops there, leaving its
    /// entry pending: what a writer that dies right after its commit leaves behind.
    /// [`BalanceLedger::apply`] is this plus materialisation.
    pub async fn commit_change(&self, change: &BalanceChange) -> Result<Applied, BalanceError> {
        let change = change.clone();
        let mut retry = 0;
        let returned = loop {
            match self.commit(&change, retry).await? {
                Commit::Done(entry) => break entry,
                Commit::Rejected(Rejection::Conflict) => match RetryPolicy::TRANSACTION_CONFLICT.delay(retry) {
                    Some(delay) => {
                        tracing::debug!(user = %change.user, retry, "transaction conflict, retrying");
                        tokio::time::sleep(delay).await;
                        retry += 1;
                    }
                    None => {
                        return Err(BalanceError::Unavailable(anyhow!(
                            "balance change for user {} still conflicting after {retry} retries",
                            change.user
                        )))
                    }
                },
                Commit::Rejected(Rejection::KeyUsed) => return self.replay(&change).await,
                Commit::Rejected(Rejection::UserCondition { exists: false }) => {
                    return Err(BalanceError::UnknownUser(change.user))
                }
                Commit::Rejected(Rejection::UserCondition { exists: true }) => {
                    return Err(match change.kind {
                        EntryKind::Use | EntryKind::Payment => BalanceError::InsufficientBalance,
                        EntryKind::Charge => BalanceError::BalanceLimitExceeded,
                    })
                }
                Commit::Rejected(Rejection::Other(reasons)) => {
                    return Err(BalanceError::Unexpected(anyhow!(
                        "balance change for user {} cancelled: {reasons}",
                        change.user
                    )))
                }
            }
        };
        let entry = match returned {
            Some(entry) => entry,
            None => self.committed_entry(change.user, change.id).await?,
        };
        Ok(Applied { entry, replayed: false })
    }
}

impl BalanceHistory for DynamoStore {
    async fn history(&self, user: UserId, page: PageRequest) -> Result<Page<LedgerEntry>, BalanceError> {
        let before = match &page.cursor {
            None => u64::MAX,
            Some(cursor) => crate::balance::cursor_seq(cursor).ok_or(BalanceError::BadCursor)?,
        };
        let profile = self.profile(user).await?.ok_or(BalanceError::UnknownUser(user))?;
        let pending = pending_entries(&profile)?;
        let now = OffsetDateTime::now_utc();
        for (entry, key) in &pending {
            if now - entry.created_at > ABANDONED_AFTER {
                if let Err(err) = self.materialise(user, entry, key.as_ref()).await {
                    tracing::warn!(user = %user, entry = %entry.id, error = %format!("{err:#}"), "finishing an abandoned ledger entry failed");
                }
            }
        }

        let upper = if before == u64::MAX { "HIST$".to_owned() } else { hist_sk(before) };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":lo", s("HIST#"))
            .expression_attribute_values(":hi", s(upper))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(page.limit as i32 + 2)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("query history of user {user}")))?;

        let mut entries: Vec<LedgerEntry> = output.items().iter().map(entry_from_row).collect::<anyhow::Result<_>>()?;
        entries.extend(pending.into_iter().map(|(entry, _)| entry));
        entries.retain(|entry| entry.seq < before);
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.seq));
        entries.dedup_by_key(|entry| entry.seq);
        let has_more = entries.len() > page.limit as usize;
        entries.truncate(page.limit as usize);
        let next = match entries.last() {
            Some(last) if has_more => Some(crate::balance::cursor_after(last.seq)),
            _ => None,
        };
        Ok(Page { items: entries, next })
    }
}

enum Commit {
    /// Committed; the entry when the write already returned it.
    Done(Option<LedgerEntry>),
    Rejected(Rejection),
}

/// Every operand is read from the item before the update, so `pb_`/`ps_` capture the
/// balance after this change and its seq exactly.
pub(super) const PROFILE_UPDATE: &str =
    "SET balance = balance + :d, seq = seq + :one, #pe = :entry, #pb = balance + :d, #ps = seq + :one";

/// The parts of [`PROFILE_UPDATE`] for one change.
pub(super) struct ProfileUpdate {
    pub(super) condition: &'static str,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl ProfileUpdate {
    pub(super) fn new(change: &BalanceChange) -> ProfileUpdate {
        let amount = change.amount.as_decimal();
        // `attribute_not_exists(#pe)` makes a repeated attempt of the same change fail
        // instead of applying twice.
        let (delta, condition, bound) = match change.kind {
            EntryKind::Use | EntryKind::Payment => {
                (-amount, "attribute_exists(pk) AND attribute_not_exists(#pe) AND balance >= :bound", amount)
            }
            EntryKind::Charge => (
                amount,
                "attribute_exists(pk) AND attribute_not_exists(#pe) AND balance <= :bound",
                MAX_BALANCE - amount,
            ),
        };
        let mut pending = HashMap::from([
            ("kind".to_owned(), s(change.kind.as_str())),
            ("amount".to_owned(), n(change.amount.money())),
            ("at".to_owned(), s(crate::clock::rfc3339(change.at))),
        ]);
        if let Some(key) = &change.idempotency_key {
            pending.insert("idem".to_owned(), s(key.as_str()));
        }
        let id = change.id;
        ProfileUpdate {
            condition,
            names: HashMap::from([
                ("#pe".to_owned(), pending_attr(id)),
                ("#pb".to_owned(), format!("pb_{id}")),
                ("#ps".to_owned(), format!("ps_{id}")),
            ]),
            values: HashMap::from([
                (":d".to_owned(), n(delta)),
                (":one".to_owned(), n(1)),
                (":entry".to_owned(), AttributeValue::M(pending)),
                (":bound".to_owned(), n(bound)),
            ]),
        }
    }
}

fn pending_attr(id: EntryId) -> String {
    format!("pe_{id}")
}

/// Entry `id` from attributes that hold its pending attributes.
pub(super) fn pending_entry(attributes: &Item, id: EntryId) -> anyhow::Result<LedgerEntry> {
    pending_entries(attributes)?
        .into_iter()
        .map(|(entry, _)| entry)
        .find(|entry| entry.id == id)
        .ok_or_else(|| anyhow!("pending entry {id} missing from the returned attributes"))
}

/// Why DynamoDB cancelled a balance transaction, from its cancellation reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Another transaction held an item; retry.
    Conflict,
    /// The idempotency record exists: this key already committed a change.
    KeyUsed,
    /// The profile's condition failed; `exists` tells a missing user from a balance
    /// that is too low (a use) or too high (a charge).
    UserCondition {
        exists: bool,
    },
    Other(String),
}

/// Maps the per-item cancellation reasons of a balance transaction (item 0: the
/// profile, item 1: the idempotency record if any) to what the caller must do. A failed
/// condition is decisive; a conflict is retried only when no condition failed.
pub fn classify_cancellation(reasons: &[CancellationReason]) -> Rejection {
    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
    if code(1) == "ConditionalCheckFailed" {
        return Rejection::KeyUsed;
    }
    if code(0) == "ConditionalCheckFailed" {
        let exists = reasons[0].item().is_some_and(|item| item.contains_key("pk"));
        return Rejection::UserCondition { exists };
    }
    if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
        return Rejection::Conflict;
    }
    Rejection::Other(
        reasons.iter().map(|r| format!("{}: {}", code_of(r), r.message().unwrap_or(""))).collect::<Vec<_>>().join("; "),
    )
}

fn code_of(reason: &CancellationReason) -> &str {
    reason.code().unwrap_or("None")
}

impl DynamoStore {
    async fn profile(&self, user: UserId) -> Result<Option<Item>, DbError> {
        self.get(user_pk(user), PROFILE_SK, || format!("get profile of user {user}")).await
    }

    /// Commits a change: with an idempotency key as a transaction with the key's record,
    /// otherwise as one conditional `UpdateItem` that returns the entry directly.
    async fn commit(&self, change: &BalanceChange, attempt: u32) -> Result<Commit, DbError> {
        let update = ProfileUpdate::new(change);
        match &change.idempotency_key {
            None => self.commit_update(change, update).await,
            Some(idem) => self.commit_transaction(change, idem, update, attempt).await,
        }
    }

    async fn commit_update(&self, change: &BalanceChange, update: ProfileUpdate) -> Result<Commit, DbError> {
        let user = change.user;
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK)))
            .update_expression(PROFILE_UPDATE)
            .condition_expression(update.condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(output) => {
                let updated = output.attributes.unwrap_or_default();
                Ok(Commit::Done(Some(pending_entry(&updated, change.id).map_err(DbError::Other)?)))
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(match failed.item() {
                        // An SDK retry of an attempt that did commit: the entry is there.
                        Some(old) if old.contains_key(&pending_attr(change.id)) => {
                            Commit::Done(Some(pending_entry(old, change.id).map_err(DbError::Other)?))
                        }
                        old => Commit::Rejected(Rejection::UserCondition {
                            exists: old.is_some_and(|item| item.contains_key("pk")),
                        }),
                    })
                }
                Some(UpdateItemError::TransactionConflictException(_)) => Ok(Commit::Rejected(Rejection::Conflict)),
                _ => Err(db_error(err, || {
                    format!("commit {} of {} for user {user}", change.kind.as_str(), change.amount)
                })),
            },
        }
    }

    async fn commit_transaction(
        &self,
        change: &BalanceChange,
        idem: &IdempotencyKey,
        update: ProfileUpdate,
        attempt: u32,
    ) -> Result<Commit, DbError> {
        let user = change.user;
        let entry = change.id.to_string();
        let profile = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK)))
            .update_expression(PROFILE_UPDATE)
            .condition_expression(update.condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .context("build balance update")
            .map_err(DbError::Other)?;
        let mut record = key(user_pk(user), idem_sk(idem));
        record.insert("fingerprint".to_owned(), s(change.fingerprint()));
        record.insert("entryId".to_owned(), s(&entry));
        record.insert("createdAt".to_owned(), s(crate::clock::rfc3339(change.at)));
        record.insert("expiresAt".to_owned(), n((change.at + IDEMPOTENCY_TTL).unix_timestamp()));
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .context("build idempotency record")
            .map_err(DbError::Other)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(profile).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            // SDK retries after a timeout reuse the token, so a committed attempt is not
            // applied twice; each conflict retry is a new attempt with a new token.
            .client_request_token(format!("{entry}-{attempt}"))
            .send()
            .await;
        match sent {
            // The after-state is on the profile; `committed_entry` reads it.
            Ok(_) => Ok(Commit::Done(None)),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    Ok(Commit::Rejected(classify_cancellation(cancelled.cancellation_reasons())))
                }
                _ => Err(db_error(err, || {
                    format!("commit {} of {} for user {user}", change.kind.as_str(), change.amount)
                })),
            },
        }
    }

    /// The committed entry, read back from its pending attributes (or, if a reader
    /// already materialised it, from its history row).
    pub(super) async fn committed_entry(&self, user: UserId, id: EntryId) -> Result<LedgerEntry, BalanceError> {
        if let Some(profile) = self.profile(user).await? {
            if let Some(entry) = pending_entries(&profile)?.into_iter().find(|(e, _)| e.id == id) {
                return Ok(entry.0);
            }
        }
        self.find_materialised(user, id)
            .await?
            .ok_or_else(|| BalanceError::Unexpected(anyhow!("committed entry {id} of user {user} not found")))
    }

    async fn find_materialised(&self, user: UserId, id: EntryId) -> Result<Option<LedgerEntry>, DbError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :hist)")
            .filter_expression("entryId = :id")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":hist", s("HIST#"))
            .expression_attribute_values(":id", s(id.to_string()))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(500)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("look up entry {id} of user {user}")))?;
        output.items().first().map(entry_from_row).transpose().map_err(DbError::Other)
    }

    pub(super) async fn materialise(
        &self,
        user: UserId,
        entry: &LedgerEntry,
        idem: Option<&IdempotencyKey>,
    ) -> Result<(), DbError> {
        let mut row = key(user_pk(user), hist_sk(entry.seq));
        row.insert("entryId".to_owned(), s(entry.id.to_string()));
        row.insert("seq".to_owned(), n(entry.seq));
        row.insert("kind".to_owned(), s(entry.kind.as_str()));
        row.insert("amount".to_owned(), n(entry.amount));
        row.insert("balanceAfter".to_owned(), n(entry.balance_after));
        row.insert("createdAt".to_owned(), s(crate::clock::rfc3339(entry.created_at)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(row))
            .send()
            .await
            .map_err(|e| db_error(e, || format!("write history row {} of user {user}", entry.seq)))?;
        if let Some(idem) = idem {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(user), idem_sk(idem))))
                .update_expression("SET seq = :seq")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":seq", n(entry.seq))
                .send()
                .await
                .map_err(|e| db_error(e, || format!("record seq {} on idempotency key of user {user}", entry.seq)))?;
        }
        let id = entry.id.to_string();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK)))
            .update_expression("REMOVE #pe, #pb, #ps")
            .expression_attribute_names("#pe", format!("pe_{id}"))
            .expression_attribute_names("#pb", format!("pb_{id}"))
            .expression_attribute_names("#ps", format!("ps_{id}"))
            .send()
            .await
            .map_err(|e| db_error(e, || format!("clear pending entry {id} of user {user}")))?;
        Ok(())
    }

    /// Answers a retry whose key already committed: the first change, as it was.
    async fn replay(&self, change: &BalanceChange) -> Result<Applied, BalanceError> {
        let user = change.user;
        let idem = change.idempotency_key.as_ref().ok_or_else(|| anyhow!("replay without a key"))?;
        // The record, the pending entry and the history row are updated in that order by
        // the materialiser; a few passes find the entry wherever it is at the moment.
        for _ in 0..5 {
            let record = self
                .get(user_pk(user), idem_sk(idem), || format!("read idempotency key of user {user}"))
                .await?
                .ok_or_else(|| anyhow!("idempotency record of user {user} vanished"))?;
            if get_s(&record, "fingerprint")? != change.fingerprint() {
                return Err(BalanceError::IdempotencyKeyReused);
            }
            let id: EntryId =
                get_s(&record, "entryId")?.parse().map_err(|_| anyhow!("bad entryId on idempotency record"))?;
            if record.contains_key("seq") {
                let seq = get_u64(&record, "seq")?;
                let row = self
                    .get(user_pk(user), hist_sk(seq), || format!("read history row {seq} of user {user}"))
                    .await?
                    .ok_or_else(|| anyhow!("history row {seq} of user {user} missing"))?;
                return Ok(Applied { entry: entry_from_row(&row)?, replayed: true });
            }
            if let Some(profile) = self.profile(user).await? {
                if let Some((entry, _)) = pending_entries(&profile)?.into_iter().find(|(e, _)| e.id == id) {
                    return Ok(Applied { entry, replayed: true });
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(BalanceError::Unexpected(anyhow!("entry for the idempotency key of user {user} not found")))
    }
}

fn entry_from_row(row: &Item) -> anyhow::Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: get_s(row, "entryId")?.parse().map_err(|_| anyhow!("bad entryId"))?,
        seq: get_u64(row, "seq")?,
        kind: EntryKind::parse(get_s(row, "kind")?).ok_or_else(|| anyhow!("unknown entry kind"))?,
        amount: get_money(row, "amount")?,
        balance_after: get_money(row, "balanceAfter")?,
        created_at: get_time(row, "createdAt")?,
    })
}

/// The entries committed on a profile but not yet materialised, with their keys.
pub fn pending_entries(profile: &Item) -> anyhow::Result<Vec<(LedgerEntry, Option<IdempotencyKey>)>> {
    let mut entries = Vec::new();
    for (name, value) in profile {
        let Some(id) = name.strip_prefix("pe_") else { continue };
        let AttributeValue::M(fields) = value else { return Err(anyhow!("pending entry {id} is not a map")) };
        let entry = LedgerEntry {
            id: id.parse().map_err(|_| anyhow!("bad pending entry id {id}"))?,
            seq: get_u64(profile, &format!("ps_{id}"))?,
            kind: EntryKind::parse(get_s(fields, "kind")?).ok_or_else(|| anyhow!("unknown entry kind"))?,
            amount: get_money(fields, "amount")?,
            balance_after: get_money(profile, &format!("pb_{id}"))?,
            created_at: get_time(fields, "at")?,
        };
        let key = match fields.get("idem") {
            Some(AttributeValue::S(key)) => Some(IdempotencyKey::parse(key).map_err(|e| anyhow!("{e}"))?),
            _ => None,
        };
        entries.push((entry, key));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn failed_with_item() -> CancellationReason {
        CancellationReason::builder()
            .code("ConditionalCheckFailed")
            .item("pk", s("USER#1"))
            .item("balance", n(5))
            .build()
    }

    #[test]
    fn a_failed_profile_condition_with_the_old_item_means_the_balance_said_no() {
        assert_eq!(classify_cancellation(&[failed_with_item()]), Rejection::UserCondition { exists: true });
    }

    #[test]
    fn a_failed_profile_condition_without_an_item_means_no_such_user() {
        assert_eq!(
            classify_cancellation(&[reason("ConditionalCheckFailed")]),
            Rejection::UserCondition { exists: false }
        );
    }

    #[test]
    fn an_existing_idempotency_record_wins_over_everything_else() {
        let reasons = [failed_with_item(), reason("ConditionalCheckFailed")];
        assert_eq!(classify_cancellation(&reasons), Rejection::KeyUsed);
        let reasons = [reason("TransactionConflict"), reason("ConditionalCheckFailed")];
        assert_eq!(classify_cancellation(&reasons), Rejection::KeyUsed);
    }

    #[test]
    fn a_transaction_conflict_alone_is_retried() {
        assert_eq!(classify_cancellation(&[reason("TransactionConflict"), reason("None")]), Rejection::Conflict);
        assert_eq!(classify_cancellation(&[reason("None"), reason("TransactionConflict")]), Rejection::Conflict);
    }

    #[test]
    fn a_decisive_condition_failure_is_not_retried_as_a_conflict() {
        let reasons = [failed_with_item(), reason("TransactionConflict")];
        assert_eq!(classify_cancellation(&reasons), Rejection::UserCondition { exists: true });
    }

    #[test]
    fn anything_else_is_reported_with_its_codes() {
        let rejection = classify_cancellation(&[reason("ValidationError")]);
        assert!(matches!(rejection, Rejection::Other(text) if text.contains("ValidationError")));
    }

    #[test]
    fn history_rows_sort_by_zero_padded_seq() {
        assert!(hist_sk(9) < hist_sk(10));
        assert_eq!(hist_sk(42), "HIST#00000000000000000042");
    }
}
