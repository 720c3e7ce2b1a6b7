//! The balance ledger on DynamoDB: reads, changes and history of a user's balance, and
//! "a balance change as a transaction item" for other transactions (payment) to use.
//!
//! # How a change commits without reading first
//!
//! A change is one conditional write that needs no prior read, so a hundred
//! concurrent changes to one user do not retry each other:
//!
//! 1. `Update USER#u/PROFILE`
//!    `SET balance = balance + :d, seq = seq + :one,`
//!    `    pe_<entry> = :entry, pb_<entry> = balance + :d, ps_<entry> = seq + :one`
//!    under `balance >= :amount` (a use or payment) or `balance <= :max − amount` (a
//!    charge), and `attribute_not_exists(pe_<entry>)`. Every operand of an update
//!    expression is read from the item *before* the update, so `pb_`/`ps_` capture the
//!    exact balance after this change and its sequence number, committed atomically
//!    with it: this pending entry is the change's ledger record.
//! 2. Without an `Idempotency-Key` that is the whole commit: one `UpdateItem` whose
//!    `UPDATED_NEW` return values carry the entry. If the SDK retries it after a timeout
//!    and the first attempt had committed, the `attribute_not_exists` condition fails and
//!    the returned old item holds the entry: the change is applied once.
//! 3. With a key, the update goes in a transaction with the key's record (see
//!    [`super::idempotency`]), so one key commits at most one change; the entry is read
//!    back from the profile afterwards. A payment puts the same update in its own
//!    transaction ([`BalanceUpdate::transaction_item`]).
//!
//! Then the entry is *materialised* ([`DynamoStore::finish_entry`]):
//! `Put USER#u/HIST#<seq>` (deterministic, so repeating it is harmless), the key's
//! record learns the seq, and the pending attributes are removed. If the process dies
//! in between, the pending entry stays on the profile; history reads show it as it is
//! and materialise it once it is older than [`ABANDONED_AFTER`]. A ledger entry
//! therefore lives in exactly one of two places (both, briefly, with the same seq —
//! readers dedupe by seq), and the balance always equals the sum of the user's entries.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Update};
use time::OffsetDateTime;

use super::idempotency::{KeyReused, Record, Stored, Target};
use super::keys::KeyScope;
use super::transaction::{with_conflict_retries, Attempt, Transaction};
use super::{
    db_error, get_money, get_optional_parsed, get_s, get_time, get_u64, keys, n, s, DbError, DynamoStore, Item,
};
use crate::balance::{
    Applied, BalanceChange, BalanceError, BalanceHistory, BalanceLedger, BalanceReader, BalanceSeen, EntryKind,
    LedgerEntry,
};
use crate::clock::rfc3339;
use crate::ids::{EntryId, IdempotencyKey, UserId};
use crate::money::{Money, MAX_BALANCE};
use crate::pagination::{Page, PageRequest};

/// A pending entry older than this was abandoned by its writer; readers finish it.
pub const ABANDONED_AFTER: time::Duration = time::Duration::seconds(60);

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
            self.materialise_or_leave_pending(change.user, &applied.entry, change.idempotency_key.as_ref()).await;
        }
        Ok(applied)
    }
}

impl BalanceHistory for DynamoStore {
    async fn history(
        &self,
        user: UserId,
        page: PageRequest,
        now: OffsetDateTime,
    ) -> Result<Page<LedgerEntry>, BalanceError> {
        let before = match &page.cursor {
            None => u64::MAX,
            Some(cursor) => crate::balance::cursor_seq(cursor).ok_or(BalanceError::BadCursor)?,
        };
        let profile = self.profile(user).await?.ok_or(BalanceError::UnknownUser(user))?;
        let pending = pending_entries(&profile)?;
        for (entry, key) in &pending {
            if now - entry.created_at > ABANDONED_AFTER {
                self.materialise_or_leave_pending(user, entry, key.as_ref()).await;
            }
        }

        let upper = if before == u64::MAX {
            format!("{}$", keys::HISTORY_PREFIX.trim_end_matches('#'))
        } else {
            keys::ledger_entry(user, before).sk
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(keys::user_partition(user)))
            .expression_attribute_values(":lo", s(keys::HISTORY_PREFIX))
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
        Ok(Page::from_lookahead(entries, page.limit, |entry| crate::balance::cursor_after(entry.seq)))
    }
}

/// The items of a keyed balance change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeItem {
    Balance,
    Key,
}

/// A balance change as the parts of one conditional update of the profile.
pub struct BalanceUpdate {
    key: Item,
    condition: &'static str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// Every operand is read from the item before the update, so `pb_`/`ps_` capture the
/// balance after this change and its seq exactly.
const PROFILE_UPDATE: &str =
    "SET balance = balance + :d, seq = seq + :one, #pe = :entry, #pb = balance + :d, #ps = seq + :one";

impl BalanceUpdate {
    pub fn new(change: &BalanceChange) -> BalanceUpdate {
        let amount = change.amount.as_decimal();
        // `attribute_not_exists(#pe)` makes a repeated attempt of the same change fail
        // instead of applying twice.
        let (delta, condition, bound) = if change.kind.is_credit() {
            (amount, "attribute_exists(pk) AND attribute_not_exists(#pe) AND balance <= :bound", MAX_BALANCE - amount)
        } else {
            (-amount, "attribute_exists(pk) AND attribute_not_exists(#pe) AND balance >= :bound", amount)
        };
        let mut pending = HashMap::from([
            ("kind".to_owned(), s(change.kind.as_str())),
            ("amount".to_owned(), n(change.amount.money())),
            ("at".to_owned(), s(rfc3339(change.at))),
        ]);
        if let Some(key) = &change.idempotency_key {
            pending.insert("idem".to_owned(), s(key.as_str()));
        }
        if let Some(order) = change.order {
            pending.insert("orderId".to_owned(), s(order.to_string()));
        }
        let id = change.id;
        BalanceUpdate {
            key: keys::profile(change.user).item(),
            condition,
            names: HashMap::from([
                ("#pe".to_owned(), format!("pe_{id}")),
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

    /// The change as an item of a transaction. On a failed condition the old profile
    /// comes back, telling a missing user from a balance that said no.
    pub fn transaction_item(self, table: &str) -> Result<Update, DbError> {
        Update::builder()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(PROFILE_UPDATE)
            .condition_expression(self.condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .context("build the balance update")
            .map_err(DbError::Other)
    }

    /// The change committed alone (no key): one `UpdateItem` whose `UPDATED_NEW` return
    /// values carry the pending entry; on a failed condition the old profile comes back,
    /// which holds the entry if an earlier attempt of this same change committed.
    pub fn update_item(self, client: &aws_sdk_dynamodb::Client, table: &str) -> UpdateItemFluentBuilder {
        client
            .update_item()
            .table_name(table)
            .set_key(Some(self.key))
            .update_expression(PROFILE_UPDATE)
            .condition_expression(self.condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

/// The first step of materialising `entry`: its history row, unconditionally (the row
/// is deterministic, so writing it again is harmless).
pub fn put_ledger_row(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    user: UserId,
    entry: &LedgerEntry,
) -> PutItemFluentBuilder {
    client.put_item().table_name(table).set_item(Some(ledger_row(user, entry)))
}

/// The last step of materialising entry `id`: its pending attributes removed from the
/// profile.
pub fn clear_pending_entry(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    user: UserId,
    id: EntryId,
) -> UpdateItemFluentBuilder {
    client
        .update_item()
        .table_name(table)
        .set_key(Some(keys::profile(user).item()))
        .update_expression("REMOVE #pe, #pb, #ps")
        .expression_attribute_names("#pe", format!("pe_{id}"))
        .expression_attribute_names("#pb", format!("pb_{id}"))
        .expression_attribute_names("#ps", format!("ps_{id}"))
}

/// The balance a profile holds, and the seq of its newest entry.
pub fn balance_seen(profile: &Item) -> anyhow::Result<BalanceSeen> {
    Ok(BalanceSeen { balance: get_money(profile, "balance")?, seq: get_u64(profile, "seq")? })
}

/// What a balance whose condition failed means: no such user, or a balance that is
/// too low (a deduction) or would pass its maximum (a charge).
pub fn refused(change: &BalanceChange, profile_existed: bool) -> BalanceError {
    if !profile_existed {
        BalanceError::UnknownUser(change.user)
    } else if change.kind.is_credit() {
        BalanceError::BalanceLimitExceeded
    } else {
        BalanceError::InsufficientBalance
    }
}

impl DynamoStore {
    async fn profile(&self, user: UserId) -> Result<Option<Item>, DbError> {
        self.get(&keys::profile(user), || format!("get profile of user {user}")).await
    }

    /// Commits a change (retrying transaction conflicts) and stops there, leaving its
    /// entry pending: what a writer that dies right after its commit leaves behind.
    /// [`BalanceLedger::apply`] is this plus materialisation.
    pub async fn commit_change(&self, change: &BalanceChange) -> Result<Applied, BalanceError> {
        let Some(key) = &change.idempotency_key else {
            let entry = self.commit_alone(change).await?;
            return Ok(Applied { entry, replayed: false });
        };
        let mut transaction = Transaction::new(describe(change)).with_token(change.id);
        transaction.update(ChangeItem::Balance, BalanceUpdate::new(change).transaction_item(&self.table)?);
        let record = Record {
            scope: key_scope(change.user, change.kind),
            key,
            fingerprint: change.fingerprint(),
            target: Target::Entry(change.id),
            entry: Some(change.id),
            at: change.at,
        };
        transaction.put(ChangeItem::Key, record.put(&self.table)?);
        match self.transact(&transaction).await? {
            Ok(()) => Ok(Applied { entry: self.committed_entry(change.user, change.id).await?, replayed: false }),
            Err(refusal) if refusal.failed(ChangeItem::Key) => {
                let (_, entry) = self
                    .entry_of_key(change.user, key_scope(change.user, change.kind), key, &change.fingerprint())
                    .await?
                    .map_err(|KeyReused| BalanceError::IdempotencyKeyReused)?;
                let entry = entry.ok_or_else(|| anyhow!("the key of a balance change names no entry"))?;
                Ok(Applied { entry, replayed: true })
            }
            Err(refusal) => Err(refused(change, refusal.existed(ChangeItem::Balance))),
        }
    }

    /// An unkeyed change: one conditional `UpdateItem` that returns its entry.
    async fn commit_alone(&self, change: &BalanceChange) -> Result<LedgerEntry, BalanceError> {
        let what = || describe(change);
        let outcome = with_conflict_retries(&what, |_| async {
            let sent = BalanceUpdate::new(change).update_item(&self.client, &self.table).send().await;
            let err = match sent {
                Ok(output) => {
                    let updated = output.attributes.unwrap_or_default();
                    return Ok(Attempt::Done(Ok(pending_entry(&updated, change.id).map_err(DbError::Other)?)));
                }
                Err(err) => err,
            };
            match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Attempt::Done(match failed.item() {
                        // An SDK retry of an attempt that did commit: the entry is there.
                        Some(old) if old.contains_key(&format!("pe_{}", change.id)) => {
                            Ok(pending_entry(old, change.id).map_err(DbError::Other)?)
                        }
                        old => Err(refused(change, old.is_some_and(|item| item.contains_key("pk")))),
                    }))
                }
                Some(UpdateItemError::TransactionConflictException(_)) => Ok(Attempt::Conflict),
                _ => Err(db_error(err, what)),
            }
        })
        .await?;
        outcome
    }

    /// After a committed transaction took part of a balance change: its entry, read back
    /// from the profile, then materialised (failing that, it stays pending, which is
    /// safe: a later history read finishes it).
    pub async fn finish_entry(
        &self,
        user: UserId,
        id: EntryId,
        key: Option<&IdempotencyKey>,
    ) -> Result<LedgerEntry, BalanceError> {
        let entry = self.committed_entry(user, id).await?;
        self.materialise_or_leave_pending(user, &entry, key).await;
        Ok(entry)
    }

    /// The entry a committed change left pending on the profile. Only a history read a
    /// minute later materialises someone else's entry, so it is nearly always there;
    /// if not, the newest history rows hold it.
    async fn committed_entry(&self, user: UserId, id: EntryId) -> Result<LedgerEntry, BalanceError> {
        if let Some(profile) = self.profile(user).await? {
            if let Some((entry, _)) = pending_entries(&profile)?.into_iter().find(|(e, _)| e.id == id) {
                return Ok(entry);
            }
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :hist)")
            .filter_expression("entryId = :id")
            .expression_attribute_values(":pk", s(keys::user_partition(user)))
            .expression_attribute_values(":hist", s(keys::HISTORY_PREFIX))
            .expression_attribute_values(":id", s(id.to_string()))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(100)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("look up entry {id} of user {user}")))?;
        let found = output.items().first().map(entry_from_row).transpose()?;
        found.ok_or_else(|| BalanceError::Unexpected(anyhow!("committed entry {id} of user {user} not found")))
    }

    async fn materialise_or_leave_pending(&self, user: UserId, entry: &LedgerEntry, key: Option<&IdempotencyKey>) {
        if let Err(err) = self.materialise(user, entry, key).await {
            // The change is committed and its pending entry is safe on the profile; a
            // later history read finishes the job.
            tracing::warn!(user = %user, entry = %entry.id, error = %format!("{err:#}"), "materialising a ledger entry failed");
        }
    }

    /// Writes the entry's history row, tells its key (if any) the seq, and clears the
    /// pending attributes — in that order, so a replay always finds the entry in one of
    /// the two places.
    pub(super) async fn materialise(
        &self,
        user: UserId,
        entry: &LedgerEntry,
        key: Option<&IdempotencyKey>,
    ) -> Result<(), DbError> {
        put_ledger_row(&self.client, &self.table, user, entry)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("write history row {} of user {user}", entry.seq)))?;
        if let Some(key) = key {
            self.record_entry_seq(key_scope(user, entry.kind), key, entry.seq).await?;
        }
        let id = entry.id;
        clear_pending_entry(&self.client, &self.table, user, id)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("clear pending entry {id} of user {user}")))?;
        Ok(())
    }

    /// The record of a key whose change committed, and the ledger entry that change
    /// wrote (if it moved money), read by key: the history row named by the record's
    /// seq, or the entry still pending on the profile.
    pub async fn entry_of_key(
        &self,
        user: UserId,
        scope: KeyScope,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Result<(Stored, Option<LedgerEntry>), KeyReused>, BalanceError> {
        // The materialiser writes the row, then the record's seq, then clears the
        // pending entry: a few passes find the entry wherever it is at the moment.
        for _ in 0..5 {
            let stored = match self.idempotency_record(scope, key, fingerprint).await? {
                Ok(stored) => stored,
                Err(reused) => return Ok(Err(reused)),
            };
            let Some(id) = stored.entry else { return Ok(Ok((stored, None))) };
            if let Some(seq) = stored.seq {
                let row = self
                    .get(&keys::ledger_entry(user, seq), || format!("read history row {seq} of user {user}"))
                    .await?
                    .ok_or_else(|| anyhow!("history row {seq} of user {user} missing"))?;
                return Ok(Ok((stored, Some(entry_from_row(&row)?))));
            }
            if let Some(profile) = self.profile(user).await? {
                if let Some((entry, _)) = pending_entries(&profile)?.into_iter().find(|(e, _)| e.id == id) {
                    return Ok(Ok((stored, Some(entry))));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(BalanceError::Unexpected(anyhow!("the entry of an idempotency key of user {user} was not found")))
    }
}

/// Whose keys a balance change's key is among: an operator's credit is the operators',
/// everything else the customer's own.
fn key_scope(user: UserId, kind: EntryKind) -> KeyScope {
    match kind {
        EntryKind::Credit => KeyScope::Operators,
        _ => KeyScope::User(user),
    }
}

fn describe(change: &BalanceChange) -> String {
    format!("commit {} of {} for user {}", change.kind.as_str(), change.amount, change.user)
}

/// A materialised ledger entry: `USER#u / HIST#<seq>`.
pub fn ledger_row(user: UserId, entry: &LedgerEntry) -> Item {
    let mut row = keys::ledger_entry(user, entry.seq).item();
    row.insert("entryId".to_owned(), s(entry.id.to_string()));
    row.insert("seq".to_owned(), n(entry.seq));
    row.insert("kind".to_owned(), s(entry.kind.as_str()));
    row.insert("amount".to_owned(), n(entry.amount));
    row.insert("balanceAfter".to_owned(), n(entry.balance_after));
    if let Some(order) = entry.order {
        row.insert("orderId".to_owned(), s(order.to_string()));
    }
    row.insert("createdAt".to_owned(), s(rfc3339(entry.created_at)));
    row
}

pub fn entry_from_row(row: &Item) -> anyhow::Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: get_s(row, "entryId")?.parse().map_err(|_| anyhow!("bad entryId"))?,
        seq: get_u64(row, "seq")?,
        kind: EntryKind::parse(get_s(row, "kind")?).ok_or_else(|| anyhow!("unknown entry kind"))?,
        amount: get_money(row, "amount")?,
        balance_after: get_money(row, "balanceAfter")?,
        order: get_optional_parsed(row, "orderId")?,
        created_at: get_time(row, "createdAt")?,
    })
}

/// Entry `id` from attributes that hold its pending attributes.
fn pending_entry(attributes: &Item, id: EntryId) -> anyhow::Result<LedgerEntry> {
    pending_entries(attributes)?
        .into_iter()
        .map(|(entry, _)| entry)
        .find(|entry| entry.id == id)
        .ok_or_else(|| anyhow!("pending entry {id} missing from the returned attributes"))
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
            order: get_optional_parsed(fields, "orderId")?,
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
    use crate::money::Amount;

    fn change(kind: EntryKind, key: Option<&str>) -> BalanceChange {
        BalanceChange {
            id: EntryId::generate(),
            user: UserId::new(7).unwrap(),
            kind,
            amount: Amount::parse("250.50").unwrap(),
            order: None,
            at: time::macros::datetime!(2026-11-24 10:00 UTC),
            idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        }
    }

    #[test]
    fn a_deduction_is_conditional_on_the_balance_covering_it() {
        let use_it = change(EntryKind::Use, None);
        let update = BalanceUpdate::new(&use_it).transaction_item("t").unwrap();
        assert_eq!(update.update_expression(), PROFILE_UPDATE);
        assert_eq!(
            update.condition_expression(),
            Some("attribute_exists(pk) AND attribute_not_exists(#pe) AND balance >= :bound")
        );
        let values = update.expression_attribute_values().unwrap();
        // DynamoDB numbers are normalised: 250.50 is sent as 250.5.
        assert_eq!(values[":d"], n("-250.5"));
        assert_eq!(values[":bound"], n("250.5"));
        assert_eq!(update.key()["pk"], s("USER#7"));
        assert_eq!(update.key()["sk"], s("PROFILE"));
        assert_eq!(update.expression_attribute_names().unwrap()["#pe"], format!("pe_{}", use_it.id));
    }

    fn client() -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    #[test]
    fn an_unkeyed_change_is_the_same_update_returning_its_entry_and_clearing_it_names_it() {
        let charge = change(EntryKind::Charge, None);
        let alone = BalanceUpdate::new(&charge).update_item(&client(), "t");
        let keyed = BalanceUpdate::new(&charge).transaction_item("t").unwrap();
        assert_eq!(alone.get_update_expression().as_deref(), Some(keyed.update_expression()));
        assert_eq!(alone.get_condition_expression().as_deref(), keyed.condition_expression());
        assert_eq!(alone.get_return_values(), &Some(ReturnValue::UpdatedNew));
        let clear = clear_pending_entry(&client(), "t", charge.user, charge.id);
        assert_eq!(clear.get_update_expression().as_deref(), Some("REMOVE #pe, #pb, #ps"));
        assert_eq!(clear.get_expression_attribute_names().as_ref().unwrap()["#pe"], format!("pe_{}", charge.id));
    }

    #[test]
    fn a_charge_is_conditional_on_staying_under_the_maximum_and_remembers_its_key() {
        let charge = change(EntryKind::Charge, Some("k-1"));
        let update = BalanceUpdate::new(&charge).transaction_item("t").unwrap();
        assert!(update.condition_expression().is_some_and(|c| c.ends_with("balance <= :bound")));
        let values = update.expression_attribute_values().unwrap();
        assert_eq!(values[":bound"], n(MAX_BALANCE - rust_decimal::Decimal::new(25050, 2)));
        let AttributeValue::M(pending) = &values[":entry"] else { panic!("the pending entry is a map") };
        assert_eq!(pending["idem"], s("k-1"));
        assert_eq!(pending["kind"], s("CHARGE"));
    }

    #[test]
    fn a_payments_pending_entry_names_its_order_and_reads_back_with_it() {
        let order = crate::ids::OrderId::generate();
        let payment = BalanceChange { order: Some(order), ..change(EntryKind::Payment, None) };
        let update = BalanceUpdate::new(&payment).transaction_item("t").unwrap();
        let values = update.expression_attribute_values().unwrap();
        let profile = Item::from([
            (format!("pe_{}", payment.id), values[":entry"].clone()),
            (format!("pb_{}", payment.id), n("10")),
            (format!("ps_{}", payment.id), n(3)),
        ]);
        let (entry, _) = pending_entries(&profile).unwrap().pop().unwrap();
        assert_eq!((entry.kind, entry.order, entry.seq), (EntryKind::Payment, Some(order), 3));
    }

    #[test]
    fn a_failed_balance_condition_means_an_unknown_user_or_the_balance_said_no() {
        assert!(matches!(refused(&change(EntryKind::Use, None), false), BalanceError::UnknownUser(_)));
        assert!(matches!(refused(&change(EntryKind::Use, None), true), BalanceError::InsufficientBalance));
        assert!(matches!(refused(&change(EntryKind::Payment, None), true), BalanceError::InsufficientBalance));
        assert!(matches!(refused(&change(EntryKind::Charge, None), true), BalanceError::BalanceLimitExceeded));
    }

    #[test]
    fn a_ledger_row_round_trips() {
        let entry = LedgerEntry {
            id: EntryId::generate(),
            seq: 42,
            kind: EntryKind::Payment,
            amount: Money::parse("10.50").unwrap(),
            balance_after: Money::parse("89.50").unwrap(),
            order: Some(crate::ids::OrderId::generate()),
            created_at: time::macros::datetime!(2026-11-24 10:00 UTC),
        };
        let row = ledger_row(UserId::new(7).unwrap(), &entry);
        assert_eq!(row["sk"], s("HIST#00000000000000000042"));
        assert_eq!(entry_from_row(&row).unwrap(), entry);
    }

    #[test]
    fn pending_entries_are_read_from_the_profiles_attributes() {
        let entry = EntryId::generate();
        let profile = Item::from([
            ("pk".to_owned(), s("USER#7")),
            ("balance".to_owned(), n("89.50")),
            (
                format!("pe_{entry}"),
                AttributeValue::M(HashMap::from([
                    ("kind".to_owned(), s("USE")),
                    ("amount".to_owned(), n("10.5")),
                    ("at".to_owned(), s("2026-11-24T10:00:00.000Z")),
                    ("idem".to_owned(), s("k-9")),
                ])),
            ),
            (format!("pb_{entry}"), n("89.5")),
            (format!("ps_{entry}"), n(4)),
        ]);
        let [(found, key)] = pending_entries(&profile).unwrap().try_into().unwrap();
        assert_eq!((found.id, found.seq, found.kind), (entry, 4, EntryKind::Use));
        assert_eq!(found.balance_after, Money::parse("89.50").unwrap());
        assert_eq!(key.unwrap().as_str(), "k-9");
    }
}
