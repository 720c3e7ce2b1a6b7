//! Numeric ids handed out by counters (`COUNTER#<kind>` / `COUNTER`, attribute
//! `next`): new users, products and coupons get the next number of their kind.
//!
//! Users come in a rush (a sale's sign-ups), and one counter item takes at most about
//! 1,000 writes a second on DynamoDB. So a process takes user ids a block at a time
//! ([`IdBlock`]): one `ADD next :block` reserves [`USER_ID_BLOCK`] numbers, handed out
//! in order until they run out. Ids stay positive, unique and, within a process,
//! increasing; a process that ends leaves the rest of its block unused (ids are not
//! dense). The counter is the same item as before blocks, so nothing written before
//! them needs moving. Products and coupons (an operator's pace) take one number each.
//!
//! Taking a number is one atomic `ADD` (no two callers get the same one); the item is
//! then put under `attribute_not_exists`, so a number that is already in use — seeded
//! data, or a counter behind the table — is skipped, never overwritten. Seeding raises
//! the counters past what it wrote ([`raise_counter`]).

use anyhow::anyhow;
use aws_sdk_dynamodb::types::ReturnValue;

use time::OffsetDateTime;

use super::idempotency::{KeyReused, Record, Stored, Target};
use super::keys::KeyScope;
use super::transaction::Transaction;
use super::{db_error, get_u64, keys, n, DbError, DynamoStore, Item};
use crate::ids::IdempotencyKey;

/// How many taken numbers a creation skips before it gives up (a counter far behind
/// its table needs `rushcart-admin seed`, which raises it).
const SKIPS: usize = 20;

/// The items of a numbered creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateItem {
    Item,
    Key,
}

/// The `Idempotency-Key` of a numbered creation: its record names the number made.
pub struct NumberedKey<'a> {
    pub scope: KeyScope,
    pub key: &'a IdempotencyKey,
    pub fingerprint: String,
    pub target: fn(u64) -> Option<Target>,
    pub at: OffsetDateTime,
}

/// How many user ids one reservation takes: a rush of 1,000 sign-ups a second in one
/// process writes the counter about 16 times a second, and a process that ends leaves
/// at most 63 numbers unused.
pub const USER_ID_BLOCK: u64 = 64;

/// The numbers a process reserved and has not handed out yet: `next..end`.
#[derive(Debug, Default)]
pub struct IdBlock {
    next: u64,
    end: u64,
}

impl IdBlock {
    /// The next number, if the block has one left.
    fn take(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

/// A numbered item was made, or its key's first request found.
pub enum Created {
    New(u64),
    /// The key committed an earlier creation; its record.
    Replayed(Stored),
}

impl DynamoStore {
    /// The next user id from this process's block, reserving a new block (one counter
    /// write) when it is used up.
    pub async fn next_user_id(&self) -> Result<u64, DbError> {
        let mut block = self.user_ids.lock().await;
        if let Some(number) = block.take() {
            return Ok(number);
        }
        let last = self.reserve("users", self.user_id_block).await?;
        *block = IdBlock { next: last + 1 - self.user_id_block, end: last + 1 };
        block.take().ok_or_else(|| DbError::Other(anyhow!("an empty block of user ids")))
    }

    /// Forgets the rest of this process's block of user ids (one of them was taken
    /// already: seeding wrote users past the counter since the block was reserved).
    pub async fn drop_user_ids(&self) {
        *self.user_ids.lock().await = IdBlock::default();
    }

    /// The next number of `kind`.
    pub async fn next_id(&self, kind: &str) -> Result<u64, DbError> {
        self.reserve(kind, 1).await
    }

    /// Reserves the next `count` numbers of `kind`; the last of them.
    async fn reserve(&self, kind: &str, count: u64) -> Result<u64, DbError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::counter(kind).item()))
            .update_expression("ADD #next :count")
            .expression_attribute_names("#next", "next")
            .expression_attribute_values(":count", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("take the next {count} {kind} ids")))?;
        get_u64(&output.attributes.unwrap_or_default(), "next").map_err(DbError::Other)
    }

    /// Puts the items `build(number)` makes (the numbered item first, then any that
    /// belong to it, each new) under the next free number of `kind`, with `key`'s record
    /// when there is one, in one transaction.
    pub async fn create_numbered(
        &self,
        kind: &str,
        build: impl Fn(u64) -> Result<Vec<Item>, DbError>,
        key: Option<&NumberedKey<'_>>,
    ) -> Result<Result<Created, KeyReused>, DbError> {
        // A retry whose key already made something takes no number.
        if let Some(key) = key {
            if let Some(found) = self.find_idempotency_record(key.scope, key.key, &key.fingerprint).await? {
                return Ok(found.map(Created::Replayed));
            }
        }
        for _ in 0..SKIPS {
            let number = self.next_id(kind).await?;
            let mut transaction = Transaction::new(format!("create {kind} {number}"));
            for item in build(number)? {
                transaction.put(CreateItem::Item, self.new_item(item)?);
            }
            if let Some(key) = key {
                let target = (key.target)(number).ok_or_else(|| DbError::Other(anyhow!("{kind} {number} is no id")))?;
                let record = Record {
                    scope: key.scope,
                    key: key.key,
                    fingerprint: key.fingerprint.clone(),
                    target,
                    entry: None,
                    at: key.at,
                };
                transaction.put(CreateItem::Key, record.put(&self.table)?);
            }
            match self.transact(&transaction).await? {
                Ok(()) => return Ok(Ok(Created::New(number))),
                Err(refusal) if refusal.failed(CreateItem::Key) => {
                    let key = key.ok_or_else(|| DbError::Other(anyhow!("a key refusal without a key")))?;
                    return Ok(self
                        .idempotency_record(key.scope, key.key, &key.fingerprint)
                        .await?
                        .map(Created::Replayed));
                }
                // The number is taken: take the next.
                Err(_) => continue,
            }
        }
        Err(DbError::Other(anyhow!("{SKIPS} {kind} ids in a row were taken; raise the counter (rushcart-admin seed)")))
    }
}

/// Raises the counter of `kind` to at least `at_least`, so the numbers it hands out
/// next are above it (seeding writes ids of its own).
pub async fn raise_counter(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    kind: &str,
    at_least: u64,
) -> Result<(), DbError> {
    let raised = client
        .update_item()
        .table_name(table)
        .set_key(Some(keys::counter(kind).item()))
        .update_expression("SET #next = :at_least")
        .condition_expression("attribute_not_exists(#next) OR #next < :at_least")
        .expression_attribute_names("#next", "next")
        .expression_attribute_values(":at_least", n(at_least))
        .send()
        .await;
    match raised {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
        Err(err) => Err(db_error(err, || format!("raise the {kind} counter to {at_least}"))),
    }
}
