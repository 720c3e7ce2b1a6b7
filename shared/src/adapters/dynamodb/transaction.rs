//! One way to run a `TransactWriteItems`: a use case describes its items, each with the
//! role it plays (the stock of product 3, the balance, the order's status …); this
//! module sends them, retries transaction conflicts with bounded jittered backoff,
//! and reads DynamoDB's `CancellationReasons` back into the roles whose conditions
//! failed. What a failed role *means* (sold out, insufficient balance …) stays with the
//! use case, at the call site.
//!
//! A failed condition is decisive: the transaction is not retried even if another item
//! also conflicted. A conflict alone is retried, each attempt under its own
//! `ClientRequestToken` (the SDK's own retries of one attempt reuse it, so a commit
//! whose answer was lost is not applied twice).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use anyhow::anyhow;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};

use super::{db_error, DbError, DynamoStore, Item};
use crate::retry::RetryPolicy;

/// What one attempt of a conflict-prone write came to.
pub enum Attempt<T> {
    Done(T),
    /// Another transaction held an item; the attempt changed nothing.
    Conflict,
    /// DynamoDB throttled an item's partition; the attempt changed nothing. The SDK
    /// retries a throttled call itself, but never a cancelled transaction.
    Throttled,
}

/// Runs `attempt(0)`, `attempt(1)` … while they conflict, sleeping with
/// [`RetryPolicy::TRANSACTION_CONFLICT`] between them; once the retries are spent, the
/// write is reported unavailable (nothing changed, the client may retry later).
pub async fn with_conflict_retries<T, F, Fut>(what: &(dyn Fn() -> String + Sync), mut attempt: F) -> Result<T, DbError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Attempt<T>, DbError>>,
{
    let mut retry = 0;
    loop {
        let outcome = attempt(retry).await?;
        let throttled = matches!(outcome, Attempt::Throttled);
        match outcome {
            Attempt::Done(value) => return Ok(value),
            Attempt::Conflict | Attempt::Throttled => match RetryPolicy::TRANSACTION_CONFLICT.delay(retry) {
                Some(delay) => {
                    let what = what();
                    if throttled {
                        tracing::warn!(retry, "transaction throttled: {what}; retrying");
                    } else {
                        tracing::debug!(retry, "transaction conflict: {what}; retrying");
                        // By the operation's verb ("pay order …" → pay): few values, as a
                        // dimension must have.
                        let verb = what.split_whitespace().next().unwrap_or("unknown");
                        crate::metrics::count(crate::metrics::TRANSACTION_CONFLICTS_RETRIED, &[verb], 1);
                    }
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                None => {
                    let why = if throttled { "throttled" } else { "conflicting" };
                    return Err(DbError::Unavailable(anyhow!("{}: still {why} after {retry} retries", what())));
                }
            },
        }
    }
}

/// What a transaction calls as it sends each attempt.
pub type AttemptHook = Arc<dyn Fn() + Send + Sync>;

/// The items of one transaction and the role of each.
pub struct Transaction<R> {
    what: String,
    token: Option<String>,
    on_attempt: Option<AttemptHook>,
    items: Vec<TransactWriteItem>,
    roles: Vec<R>,
}

impl<R: Copy + PartialEq + Debug> Transaction<R> {
    /// A transaction described as `what` in logs and errors.
    pub fn new(what: impl Into<String>) -> Transaction<R> {
        Transaction { what: what.into(), token: None, on_attempt: None, items: Vec::new(), roles: Vec::new() }
    }

    /// Makes the SDK's retries of an attempt idempotent: attempt `n` is sent with the
    /// token `<base>-<n>` (at most 36 characters in all).
    pub fn with_token(mut self, base: impl ToString) -> Transaction<R> {
        self.token = Some(base.to_string());
        self
    }

    /// Calls `hook` for every attempt sent (retries included).
    pub fn on_each_attempt(mut self, hook: AttemptHook) -> Transaction<R> {
        self.on_attempt = Some(hook);
        self
    }

    pub fn update(&mut self, role: R, update: Update) {
        self.push(role, TransactWriteItem::builder().update(update).build());
    }

    pub fn put(&mut self, role: R, put: Put) {
        self.push(role, TransactWriteItem::builder().put(put).build());
    }

    pub fn check(&mut self, role: R, check: ConditionCheck) {
        self.push(role, TransactWriteItem::builder().condition_check(check).build());
    }

    fn push(&mut self, role: R, item: TransactWriteItem) {
        self.items.push(item);
        self.roles.push(role);
    }

    pub fn items(&self) -> &[TransactWriteItem] {
        &self.items
    }

    pub fn roles(&self) -> &[R] {
        &self.roles
    }
}

/// The roles whose conditions failed, each with the item as it was when DynamoDB
/// asked for it (`ReturnValuesOnConditionCheckFailure = ALL_OLD`; absent when the item
/// did not exist or the old image was not asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal<R> {
    failed: Vec<(R, Option<Item>)>,
}

impl<R: Copy + PartialEq> Refusal<R> {
    pub fn failed(&self, role: R) -> bool {
        self.failed.iter().any(|(r, _)| *r == role)
    }

    /// The old image of a failed role's item; `None` when it did not exist.
    pub fn old_item(&self, role: R) -> Option<&Item> {
        self.failed.iter().find(|(r, _)| *r == role).and_then(|(_, item)| item.as_ref())
    }

    /// Whether a failed role's item existed (an old image was returned with a key).
    pub fn existed(&self, role: R) -> bool {
        self.old_item(role).is_some_and(|item| item.contains_key("pk"))
    }

    /// Each failed role, in transaction order, with its item's old image if any.
    pub fn iter(&self) -> impl Iterator<Item = (R, Option<&Item>)> + '_ {
        self.failed.iter().map(|(role, item)| (*role, item.as_ref()))
    }
}

/// What DynamoDB's answer to one attempt says.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled<R> {
    /// At least one condition failed: decisive, not retried.
    Refused(Refusal<R>),
    /// Only conflicts: retry.
    Conflict,
    /// A partition was throttled (`ThrottlingError`), and no condition failed: retry
    /// after a backoff.
    Throttled,
    /// Something else (validation, capacity …), with the codes by role.
    Other(String),
}

/// Reads the per-item cancellation reasons of a transaction into its roles.
pub fn read_cancellation<R: Copy + PartialEq + Debug>(
    roles: &[R],
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
) -> Cancelled<R> {
    let failed: Vec<(R, Option<Item>)> = roles
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
        .map(|(role, reason)| (*role, reason.item().cloned()))
        .collect();
    if !failed.is_empty() {
        return Cancelled::Refused(Refusal { failed });
    }
    if reasons.iter().any(|reason| reason.code() == Some("TransactionConflict")) {
        return Cancelled::Conflict;
    }
    if reasons.iter().any(|reason| reason.code() == Some("ThrottlingError")) {
        return Cancelled::Throttled;
    }
    Cancelled::Other(
        roles
            .iter()
            .zip(reasons)
            .filter(|(_, reason)| reason.code().is_some_and(|code| code != "None"))
            .map(|(role, reason)| {
                format!("{role:?}: {} {}", reason.code().unwrap_or_default(), reason.message().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// What a transaction that could as well go to another item (one of a coupon's
/// shards) came to.
#[derive(Debug)]
pub enum Tried<R> {
    Committed,
    Refused(Refusal<R>),
    /// DynamoDB throttled a partition it writes, past the SDK's own retries; nothing
    /// changed. Another item, on another partition, may not be.
    Throttled,
}

impl DynamoStore {
    /// Commits `transaction` (`Ok(Ok(()))`), or says which conditions refused it
    /// (`Ok(Err(refusal))`). Conflicts and throttles are retried; faults are `Err`.
    pub async fn transact<R: Copy + PartialEq + Debug + Send + Sync>(
        &self,
        transaction: &Transaction<R>,
    ) -> Result<Result<(), Refusal<R>>, DbError> {
        let what = || transaction.what.clone();
        with_conflict_retries(&what, move |attempt| self.attempt(transaction, attempt)).await
    }

    /// As [`DynamoStore::transact`], except that a throttled partition comes straight
    /// back ([`Tried::Throttled`]) instead of being waited out: for a write the caller
    /// can send to another item.
    pub async fn transact_or_throttled<R: Copy + PartialEq + Debug + Send + Sync>(
        &self,
        transaction: &Transaction<R>,
    ) -> Result<Tried<R>, DbError> {
        let what = || transaction.what.clone();
        with_conflict_retries(&what, move |attempt| async move {
            Ok(match self.attempt(transaction, attempt).await? {
                Attempt::Done(Ok(())) => Attempt::Done(Tried::Committed),
                Attempt::Done(Err(refusal)) => Attempt::Done(Tried::Refused(refusal)),
                Attempt::Throttled => Attempt::Done(Tried::Throttled),
                Attempt::Conflict => Attempt::Conflict,
            })
        })
        .await
    }

    /// Sends attempt number `attempt` of `transaction` once (the SDK's own retries aside).
    async fn attempt<R: Copy + PartialEq + Debug + Send + Sync>(
        &self,
        transaction: &Transaction<R>,
        attempt: u32,
    ) -> Result<Attempt<Result<(), Refusal<R>>>, DbError> {
        if let Some(hook) = &transaction.on_attempt {
            hook();
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items.clone()))
            .set_client_request_token(transaction.token.as_ref().map(|base| format!("{base}-{attempt}")))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Attempt::Done(Ok(()))),
            Err(err) => err,
        };
        let cancelled = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                read_cancellation(&transaction.roles, cancelled.cancellation_reasons())
            }
            _ => return Err(db_error(err, || transaction.what.clone())),
        };
        match cancelled {
            Cancelled::Refused(refusal) => Ok(Attempt::Done(Err(refusal))),
            Cancelled::Conflict => Ok(Attempt::Conflict),
            Cancelled::Throttled => Ok(Attempt::Throttled),
            Cancelled::Other(codes) => Err(DbError::Other(anyhow!("{} was cancelled: {codes}", transaction.what))),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::CancellationReason;

    use super::*;
    use crate::adapters::dynamodb::{n, s};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Role {
        Order,
        Stock(u32),
        Balance,
    }

    const ROLES: [Role; 4] = [Role::Order, Role::Stock(1), Role::Stock(2), Role::Balance];

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn reasons(codes: [&str; 4]) -> Vec<CancellationReason> {
        codes.into_iter().map(reason).collect()
    }

    #[test]
    fn failed_conditions_come_back_as_their_roles_in_order() {
        let Cancelled::Refused(refusal) =
            read_cancellation(&ROLES, &reasons(["None", "None", "ConditionalCheckFailed", "ConditionalCheckFailed"]))
        else {
            panic!("a failed condition is a refusal")
        };
        assert!(refusal.failed(Role::Stock(2)) && refusal.failed(Role::Balance));
        assert!(!refusal.failed(Role::Order) && !refusal.failed(Role::Stock(1)));
        let failed: Vec<Role> = refusal.iter().map(|(role, _)| role).collect();
        assert_eq!(failed, [Role::Stock(2), Role::Balance], "in transaction order");
    }

    #[test]
    fn a_refusal_keeps_the_old_image_it_was_sent() {
        let failed = CancellationReason::builder()
            .code("ConditionalCheckFailed")
            .item("pk", s("USER#1"))
            .item("balance", n(5))
            .build();
        let Cancelled::Refused(refusal) = read_cancellation(&[Role::Balance, Role::Order], &[failed, reason("None")])
        else {
            panic!("refused")
        };
        assert!(refusal.existed(Role::Balance));
        assert_eq!(refusal.old_item(Role::Balance).and_then(|item| item.get("balance")), Some(&n(5)));
        let Cancelled::Refused(refusal) = read_cancellation(&[Role::Balance], &[reason("ConditionalCheckFailed")])
        else {
            panic!("refused")
        };
        assert!(!refusal.existed(Role::Balance), "no old image: the item did not exist");
    }

    #[test]
    fn a_failed_condition_is_decisive_even_beside_a_conflict() {
        let cancelled =
            read_cancellation(&ROLES, &reasons(["TransactionConflict", "ConditionalCheckFailed", "None", "None"]));
        assert!(matches!(cancelled, Cancelled::Refused(r) if r.failed(Role::Stock(1))));
    }

    #[test]
    fn a_throttled_partition_is_retried_unless_a_condition_failed() {
        let throttled = read_cancellation(&ROLES, &reasons(["None", "ThrottlingError", "None", "None"]));
        assert_eq!(throttled, Cancelled::Throttled);
        let refused =
            read_cancellation(&ROLES, &reasons(["ThrottlingError", "None", "None", "ConditionalCheckFailed"]));
        assert!(matches!(refused, Cancelled::Refused(r) if r.failed(Role::Balance)));
    }

    #[test]
    fn conflicts_alone_are_retried_and_anything_else_is_reported_by_role() {
        assert_eq!(
            read_cancellation(&ROLES, &reasons(["None", "TransactionConflict", "None", "None"])),
            Cancelled::Conflict
        );
        let Cancelled::Other(codes) = read_cancellation(&ROLES, &reasons(["None", "None", "ValidationError", "None"]))
        else {
            panic!("reported")
        };
        assert!(codes.contains("Stock(2): ValidationError"), "{codes}");
    }

    #[tokio::test]
    async fn conflicts_are_retried_a_bounded_number_of_times_then_reported_unavailable() {
        let mut attempts = 0;
        let outcome: Result<(), DbError> = with_conflict_retries(&|| "a test write".to_owned(), |_| {
            attempts += 1;
            async { Ok(Attempt::Conflict) }
        })
        .await;
        assert_eq!(attempts, RetryPolicy::TRANSACTION_CONFLICT.max_retries + 1);
        assert!(matches!(outcome, Err(DbError::Unavailable(e)) if e.to_string().contains("a test write")));
    }

    #[tokio::test]
    async fn throttled_attempts_are_retried_as_boundedly_and_say_so() {
        let mut attempts = 0;
        let outcome: Result<(), DbError> = with_conflict_retries(&|| "a hot write".to_owned(), |_| {
            attempts += 1;
            async { Ok(Attempt::Throttled) }
        })
        .await;
        assert_eq!(attempts, RetryPolicy::TRANSACTION_CONFLICT.max_retries + 1);
        assert!(matches!(outcome, Err(DbError::Unavailable(e)) if e.to_string().contains("still throttled")));
    }

    #[tokio::test]
    async fn the_attempt_that_stops_conflicting_is_the_answer() {
        let outcome = with_conflict_retries(&|| "a test write".to_owned(), |attempt| async move {
            Ok(if attempt < 2 { Attempt::Conflict } else { Attempt::Done(attempt) })
        })
        .await;
        assert_eq!(outcome.ok(), Some(2));
    }
}
