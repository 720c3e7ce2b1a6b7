//! Paying an order, and refunding it: each one `TransactWriteItems`, all or nothing.
//! The refund is the payment inverted, item by item, so both directions are here.
//!
//! # Paying
//!
//! | item | write | condition → refusal |
//! |---|---|---|
//! | `ORDER#o` / `ORDER` | status PAID, paidAt, paymentId | `status = PENDING_PAYMENT` → `ALREADY_PAID`; `payBy > now` → `ORDER_EXPIRED` |
//! | `PRODUCT#p` / `PRODUCT`, each line | `stock = stock − q` | `stock >= q` → `OUT_OF_STOCK` (names p) |
//! | `SALES#<day>` / `PRODUCT#p`, each line | `ADD quantity q` | — |
//! | `USER#u` / `PROFILE` | the ledger's update (a PAYMENT entry) | `balance >= total` → `INSUFFICIENT_BALANCE`; when read first, `seq` unchanged → else try again from the profile returned |
//! | `USER#u` / `HIST#<seq + 1>` | the entry's history row, when the balance was read first | new |
//! | `USER#u` / `COUPON#c` | `usedAt`, `orderId` | the user's, unused, unexpired → `COUPON_UNAVAILABLE` |
//! | `ORDER#o` / `PAYMENT#pay` | the payment record | new |
//! | outbox `ORDER#o` / `ORDER_PAID` | the event for the data platform | new |
//! | `USER#u` / `IDEM#k` | with an `Idempotency-Key` | new → replay the first payment |
//!
//! The balance row is left out for a zero total, the coupon row without a coupon, the
//! key row without a key. [`refusal`] reads which conditions failed, in the order a
//! customer can act on them; conflicts are retried by [`super::transaction`]. A refused
//! payment is only counted on its order ([`DynamoStore::count_failure`]).
//!
//! The balance row comes one of two ways:
//!
//! - **From the balance read with the order** (`OrderPayer::order_to_pay`, one
//!   `BatchGetItem`): the debit commits only while the profile's seq is the one read,
//!   and the entry's history row `USER#u / HIST#<seq + 1>` is one more item
//!   ([`super::ledger::debit_seen`]). Two calls in all; nothing follows the commit.
//!   When another change of the user's commits first, the refusing profile returns
//!   its balance and seq as they are now, and the payment tries again from those.
//! - **Without a read**, when there was none, or after three tries from a balance that
//!   kept moving: the ledger's pending entry, finished after the commit
//!   ([`DynamoStore::finish_entry`]). This way never retries on the profile, however
//!   many changes of the user race it.
//!
//! # Refunding (a cancel of a paid order)
//!
//! | item | write | condition → meaning |
//! |---|---|---|
//! | `ORDER#o` / `ORDER` | status REFUNDED, cancelledAt, refundEntryId | `status = PAID` and the same payment → else the order changed: read it again |
//! | `PRODUCT#p` / `PRODUCT`, each line | `stock = stock + q` | exists |
//! | `SALES#<day paid>` / `PRODUCT#p`, each line | `ADD quantity −q` | `quantity >= q` (it was counted when paid) |
//! | `USER#u` / `PROFILE` | the ledger's update (a REFUND entry naming the order) | `balance <= max − total` → `BALANCE_LIMIT_EXCEEDED` |
//! | `USER#u` / `COUPON#c`, if still usable | REMOVE usedAt, orderId | used by this order, `usableUntil > now` → else read again |
//! | `ORDER#o` / `PAYMENT#pay` | status REFUNDED, refundedAt | exists |
//! | outbox `ORDER#o` / `ORDER_REFUNDED` | the event for the data platform | new |
//! | `USER#u` or `OPERATORS` / `IDEM#k` | with an `Idempotency-Key` | new → the key's order as it is |
//!
//! A coupon that expired before the refund stays used: giving back a coupon nobody can
//! use any more would only make the books disagree. Cancelling an unpaid order is one
//! conditional status change (`status = PENDING_PAYMENT`, whatever its deadline).

use anyhow::anyhow;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, Update};
use time::OffsetDateTime;

use super::idempotency::{KeyReused, Record, Target};
use super::keys::KeyScope;
use super::ledger::{balance_seen, debit_seen, ledger_row, moved_since, BalanceUpdate};
use super::orders::{order_from_item, payment_from_item, payment_item};
use super::transaction::{Refusal, Transaction};
use super::{get_s, keys, n, s, DbError, DynamoStore, Item};
use crate::balance::{BalanceChange, BalanceReader, BalanceSeen, EntryKind, LedgerEntry};
use crate::clock::rfc3339;
use crate::feed::EventType;
use crate::ids::{EntryId, IdempotencyKey, OrderId, PaymentId, ProductId, UserId};
use crate::money::{Amount, Money};
use crate::orders::{
    Canceller, Order, OrderCanceller, OrderError, OrderLine, OrderPayer, OrderStatus, OrderStore, Paid, Payment,
    PaymentFailure,
};

/// What each item of a payment transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayItem {
    Order,
    Stock(ProductId),
    Sales,
    Balance,
    /// The ledger entry's history row, when the payment knows it.
    History,
    Coupon,
    PaymentRecord,
    Outbox,
    Key,
}

/// What a refused payment of `order` means: `None` when its key already paid (replay
/// it), otherwise the refusal a customer can act on first — the order's state, stock,
/// balance (or a profile that is gone), coupon.
pub fn refusal(refused: &Refusal<PayItem>, order: &Order) -> Option<OrderError> {
    if refused.failed(PayItem::Key) {
        return None;
    }
    let stock = || refused.find(|item| if let PayItem::Stock(product) = item { Some(product) } else { None });
    Some(if refused.failed(PayItem::Order) {
        order_refusal(refused.old_item(PayItem::Order))
    } else if let Some(product) = stock() {
        OrderError::OutOfStock(product)
    } else if refused.failed(PayItem::Balance) && !refused.existed(PayItem::Balance) {
        OrderError::UnknownUser(order.user)
    } else if refused.failed(PayItem::Balance) {
        OrderError::InsufficientBalance
    } else if refused.failed(PayItem::Coupon) {
        OrderError::CouponUnavailable
    } else {
        OrderError::Unexpected(anyhow!("a payment was refused by items that cannot refuse: {refused:?}"))
    })
}

/// Why the order item refused a payment, from the item as it was: paid, cancelled or
/// refunded already, or still pending but past its deadline (the transaction checks
/// both).
fn order_refusal(old: Option<&Item>) -> OrderError {
    let Some(item) = old else { return OrderError::UnknownOrder };
    match get_s(item, "status").ok().and_then(OrderStatus::parse) {
        Some(OrderStatus::PendingPayment) => OrderError::Expired,
        Some(status) => status.payment_refusal().unwrap_or(OrderError::AlreadyPaid),
        None => OrderError::Unexpected(anyhow!("order item with an unknown status: {item:?}")),
    }
}

impl OrderPayer for DynamoStore {
    /// One strongly consistent `BatchGetItem` of the order and the payer's profile.
    async fn order_to_pay(
        &self,
        id: OrderId,
        user: UserId,
    ) -> Result<(Option<Order>, Option<BalanceSeen>), OrderError> {
        let wanted = [keys::order(id), keys::profile(user)];
        let found = self.get_many(&wanted, || format!("read order {id} and the profile of user {user}")).await?;
        let order = found.get(&wanted[0]).map(order_from_item).transpose()?;
        let seen = found.get(&wanted[1]).map(balance_seen).transpose()?;
        Ok((order, seen))
    }

    async fn pay(
        &self,
        order: &Order,
        seen: Option<BalanceSeen>,
        payment: PaymentId,
        now: OffsetDateTime,
        key: Option<IdempotencyKey>,
    ) -> Result<Paid, OrderError> {
        let entry = EntryId::generate();
        let record = succeeded(order, payment, entry, now);
        if let Some(seen) = seen {
            if let Some(paid) = self.pay_from_seen(order, &record, seen, key.as_ref()).await? {
                return Ok(paid);
            }
        }
        let (transaction, _) = self.payment_transaction(order, &record, key.as_ref(), None)?;
        if let Err(refused) = self.transact(&transaction).await? {
            return self.refused(&refused, order, key.as_ref()).await;
        }
        let balance_after = match record.entry {
            Some(entry) => self.finish_entry(order.user, entry, key.as_ref()).await?.balance_after,
            None => self.balance(order.user).await?,
        };
        Ok(Paid { payment: record, balance_after, replayed: false })
    }

    async fn record_failure(&self, order: &Order, failure: PaymentFailure) -> Result<(), OrderError> {
        Ok(self.count_failure(order, &failure).await?)
    }
}

/// How many times a payment tries from a balance it has seen before it pays without one.
const SEEN_ATTEMPTS: usize = 3;

impl DynamoStore {
    /// The payment from the balance read with the order: its ledger entry is known, so
    /// its history row commits in the transaction and no call follows. When another
    /// change of the user's came first, the refusing profile tells its balance and seq
    /// as they are now, and the payment tries again from those, [`SEEN_ATTEMPTS`] times
    /// in all. `None` when it could not (the user kept changing, or the balance read is
    /// too low to pay): then the payment is made the way that needs no read.
    async fn pay_from_seen(
        &self,
        order: &Order,
        record: &Payment,
        mut seen: BalanceSeen,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Paid>, OrderError> {
        for attempt in 0..SEEN_ATTEMPTS {
            let (transaction, entry) = match self.payment_transaction(order, record, key, Some(seen)) {
                Ok(built) => built,
                Err(OrderError::InsufficientBalance) => return Ok(None),
                Err(err) => return Err(err),
            };
            // Each attempt is a request of its own, and the way without the read keeps the
            // payment's id for its token.
            let transaction = match record.entry {
                Some(entry) => transaction.with_token(format!("{entry}-{attempt}")),
                None => transaction,
            };
            let refused = match self.transact(&transaction).await? {
                Ok(()) => {
                    let balance_after = entry.map_or(seen.balance, |entry| entry.balance_after);
                    return Ok(Some(Paid { payment: record.clone(), balance_after, replayed: false }));
                }
                Err(refused) => refused,
            };
            // Only a failed role has an old image: the profile's says whether it moved.
            match (refusal(&refused, order), moved_since(refused.old_item(PayItem::Balance), seen)) {
                (Some(OrderError::InsufficientBalance), Some(now)) => {
                    self.metrics.payments_moved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    seen = now;
                }
                _ => return self.refused(&refused, order, key).await.map(Some),
            }
        }
        Ok(None)
    }

    /// A refused payment's answer: the refusal a customer can act on, or the first
    /// payment of its key, replayed.
    async fn refused(
        &self,
        refused: &Refusal<PayItem>,
        order: &Order,
        key: Option<&IdempotencyKey>,
    ) -> Result<Paid, OrderError> {
        match (refusal(refused, order), key) {
            (Some(refusal), _) => Err(refusal),
            (None, Some(key)) => self.replay_payment(order, key).await,
            (None, None) => Err(OrderError::Unexpected(anyhow!("a key refusal without a key"))),
        }
    }
}

/// The record of the payment that pays `order`: no ledger entry when nothing is taken.
fn succeeded(order: &Order, payment: PaymentId, entry: EntryId, now: OffsetDateTime) -> Payment {
    Payment {
        id: payment,
        order: order.id,
        user: order.user,
        amount: order.total,
        entry: (order.total > Money::ZERO).then_some(entry),
        at: now,
    }
}

fn built<T>(built: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, DbError> {
    built.map_err(|e| DbError::Other(anyhow!("build a payment item: {e}")))
}

/// Which way a paid line moves its stock and sales: a payment sells it, a refund takes
/// it back. The two directions share one builder each, so they cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Sold,
    Returned,
}

impl DynamoStore {
    /// A line's stock: sold only if there is enough, returned to a product that exists.
    fn stock_update(&self, line: &OrderLine, way: Way) -> Result<Update, DbError> {
        let (expression, condition) = match way {
            Way::Sold => ("SET stock = stock - :q", "attribute_exists(pk) AND stock >= :q"),
            Way::Returned => ("SET stock = stock + :q", "attribute_exists(pk)"),
        };
        built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::product(line.product_id).item()))
                .update_expression(expression)
                .condition_expression(condition)
                .expression_attribute_values(":q", n(line.quantity.get()))
                .build(),
        )
    }

    /// A line's quantity in the sales of `day`: a sale adds it (making the day's row if
    /// need be), a return takes it off again (never below zero: it was counted then).
    fn sales_update(&self, day: time::Date, line: &OrderLine, way: Way) -> Result<Update, DbError> {
        let quantity = i64::from(line.quantity.get());
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::sales(day, line.product_id).item()))
            .expression_attribute_values(":q", n(quantity));
        let update = match way {
            Way::Sold => update
                .update_expression("SET #day = :day, productId = :product ADD quantity :q")
                .expression_attribute_names("#day", "day")
                .expression_attribute_values(":day", s(day.to_string()))
                .expression_attribute_values(":product", n(line.product_id)),
            Way::Returned => update
                .update_expression("ADD quantity :minus")
                .condition_expression("quantity >= :q")
                .expression_attribute_values(":minus", n(-quantity)),
        };
        built(update.build())
    }

    /// An order's event as a new outbox item, listed for the sweeper until the relay
    /// marks it published.
    fn outbox_put(
        &self,
        order: &Order,
        kind: EventType,
        event: &serde_json::Value,
        at: OffsetDateTime,
    ) -> Result<Put, OrderError> {
        let event_id = kind.event_id(order.id);
        let mut item = keys::order_event(order.id, kind).item();
        item.insert("orderId".to_owned(), s(order.id.to_string()));
        item.insert("payload".to_owned(), s(event.to_string()));
        item.insert("createdAt".to_owned(), s(rfc3339(at)));
        item.insert("gsi1pk".to_owned(), s(keys::UNPUBLISHED_GSI1PK));
        item.insert("gsi1sk".to_owned(), s(format!("{}#{event_id}", rfc3339(at))));
        item.insert("eventId".to_owned(), s(event_id));
        let put = Put::builder()
            .table_name(&self.outbox_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build();
        Ok(built(put)?)
    }

    /// The transaction that pays `order` as `payment` records it.
    ///
    /// Without `seen`, the balance's change is the ledger's pending entry, finished after
    /// the commit ([`DynamoStore::finish_entry`]). With it, the change is made from the
    /// balance seen ([`debit_seen`]) and the entry's history row is one more item; the
    /// entry comes back with the transaction (`InsufficientBalance` when the balance
    /// seen could not pay: the transaction could only fail).
    pub fn payment_transaction(
        &self,
        order: &Order,
        payment: &Payment,
        key: Option<&IdempotencyKey>,
        seen: Option<BalanceSeen>,
    ) -> Result<(Transaction<PayItem>, Option<LedgerEntry>), OrderError> {
        let now = payment.at;
        let at = s(rfc3339(now));
        let mut transaction = Transaction::new(format!("pay order {}", order.id)).with_token(payment.id);
        let mut known = None;

        let paid = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::order(order.id).item()))
            .update_expression("SET #status = :paid, paidAt = :at, paymentId = :payment")
            .condition_expression("#status = :pending AND payBy > :at")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s(OrderStatus::Paid.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::PendingPayment.as_str()))
            .expression_attribute_values(":at", at.clone())
            .expression_attribute_values(":payment", s(payment.id.to_string()))
            .build();
        transaction.update(PayItem::Order, built(paid)?);

        for line in &order.lines {
            transaction.update(PayItem::Stock(line.product_id), self.stock_update(line, Way::Sold)?);
        }
        for line in &order.lines {
            transaction.update(PayItem::Sales, self.sales_update(now.date(), line, Way::Sold)?);
        }

        if let Some(entry) = payment.entry {
            let amount = Amount::from_decimal(order.total.as_decimal()).map_err(|_| OrderError::TooLarge)?;
            let change = BalanceChange {
                id: entry,
                user: order.user,
                kind: EntryKind::Payment,
                amount,
                order: Some(order.id),
                at: now,
                idempotency_key: key.cloned(),
            };
            match seen {
                None => {
                    transaction.update(PayItem::Balance, BalanceUpdate::new(&change).transaction_item(&self.table)?)
                }
                Some(seen) => {
                    let (debit, entry) =
                        debit_seen(&change, seen, &self.table)?.ok_or(OrderError::InsufficientBalance)?;
                    transaction.update(PayItem::Balance, debit);
                    transaction.put(PayItem::History, self.new_item(ledger_row(order.user, &entry))?);
                    known = Some(entry);
                }
            }
        }

        if let Some(coupon) = order.coupon {
            let used = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::coupon_copy(order.user, coupon).item()))
                .update_expression("SET usedAt = :at, orderId = :order")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(usedAt) AND usableUntil > :at")
                .expression_attribute_values(":at", at.clone())
                .expression_attribute_values(":order", s(order.id.to_string()))
                .build();
            transaction.update(PayItem::Coupon, built(used)?);
        }

        transaction.put(PayItem::PaymentRecord, self.new_item(payment_item(payment))?);
        let event = paid_event(order, payment.id, now);
        transaction.put(PayItem::Outbox, self.outbox_put(order, EventType::OrderPaid, &event, now)?);

        if let Some(key) = key {
            let record = Record {
                scope: order.user.into(),
                key,
                fingerprint: order.payment_fingerprint(),
                target: Target::Payment(payment.id),
                entry: payment.entry,
                at: now,
            };
            let put = match &known {
                Some(entry) => record.put_materialised(&self.table, entry.seq)?,
                None => record.put(&self.table)?,
            };
            transaction.put(PayItem::Key, put);
        }
        Ok((transaction, known))
    }

    /// The first payment made under `key`, answered as it was then.
    async fn replay_payment(&self, order: &Order, key: &IdempotencyKey) -> Result<Paid, OrderError> {
        let (stored, entry) = self
            .entry_of_key(order.user, order.user.into(), key, &order.payment_fingerprint())
            .await?
            .map_err(|KeyReused| OrderError::IdempotencyKeyReused)?;
        let Target::Payment(first) = stored.target else { return Err(OrderError::IdempotencyKeyReused) };
        let record = self
            .get(&keys::payment(order.id, first), || format!("read payment {first} of order {}", order.id))
            .await?
            .ok_or_else(|| anyhow!("payment {first} of order {} missing", order.id))?;
        let payment = payment_from_item(&record)?;
        let balance_after = match entry {
            Some(entry) => entry.balance_after,
            None => self.balance(order.user).await?,
        };
        Ok(Paid { payment, balance_after, replayed: true })
    }
}

/// What each item of a refund (or an unpaid order's cancel) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundItem {
    Order,
    Stock,
    Sales(ProductId),
    Balance,
    Coupon,
    PaymentRecord,
    Outbox,
    Key,
}

fn key_scope(by: Canceller, order: &Order) -> KeyScope {
    match by {
        Canceller::Customer(_) => KeyScope::User(order.user),
        Canceller::Operator => KeyScope::Operators,
    }
}

impl OrderCanceller for DynamoStore {
    async fn cancel_key_used(&self, by: Canceller, key: &IdempotencyKey, order: &Order) -> Result<bool, OrderError> {
        match self.find_idempotency_record(key_scope(by, order), key, &order.cancel_fingerprint()).await? {
            None => Ok(false),
            Some(Ok(stored)) if stored.target == Target::Order(order.id) => Ok(true),
            Some(_) => Err(OrderError::IdempotencyKeyReused),
        }
    }

    async fn cancel_unpaid(
        &self,
        order: &Order,
        by: Canceller,
        now: OffsetDateTime,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Order>, OrderError> {
        let mut transaction = Transaction::new(format!("cancel order {}", order.id));
        let cancelled = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::order(order.id).item()))
            .update_expression("SET #status = :cancelled, cancelledAt = :at")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s(OrderStatus::Cancelled.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::PendingPayment.as_str()))
            .expression_attribute_values(":at", s(rfc3339(now)))
            .build();
        transaction.update(RefundItem::Order, built(cancelled)?);
        self.cancel_key(&mut transaction, order, by, key, None, now)?;
        if !self.commit_cancel(&transaction, order, by, key).await? {
            return Ok(None);
        }
        Ok(Some(Order { status: OrderStatus::Cancelled, cancelled_at: Some(now), ..order.clone() }))
    }

    async fn refund(
        &self,
        order: &Order,
        by: Canceller,
        now: OffsetDateTime,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Order>, OrderError> {
        // Whether the coupon comes back depends on its expiry, read here and held by
        // the transaction's condition (an expiry passing in between reads it again).
        let coupon_back = match order.coupon {
            Some(coupon) => OrderStore::user_coupon(self, order.user, coupon)
                .await?
                .is_some_and(|copy| copy.used_at.is_some() && now < copy.expires_at),
            None => false,
        };
        let entry = (order.total > Money::ZERO).then(EntryId::generate);
        let transaction = self.refund_transaction(order, now, entry, coupon_back, by, key)?;
        if !self.commit_cancel(&transaction, order, by, key).await? {
            return Ok(None);
        }
        if let Some(entry) = entry {
            // Committed, and the answer does not need the entry: failing to write its
            // history row now only leaves it pending, for the next history read.
            if let Err(err) = self.finish_entry(order.user, entry, None).await {
                tracing::warn!(order = %order.id, entry = %entry, error = %format!("{err:#}"), "the refund's ledger entry stays pending");
            }
        }
        Ok(Some(Order { status: OrderStatus::Refunded, cancelled_at: Some(now), refund_entry: entry, ..order.clone() }))
    }
}

impl DynamoStore {
    /// The transaction that refunds the paid `order` at `now`.
    pub fn refund_transaction(
        &self,
        order: &Order,
        now: OffsetDateTime,
        entry: Option<EntryId>,
        coupon_back: bool,
        by: Canceller,
        key: Option<&IdempotencyKey>,
    ) -> Result<Transaction<RefundItem>, OrderError> {
        let (Some(payment), Some(paid_at)) = (order.payment, order.paid_at) else {
            return Err(OrderError::Unexpected(anyhow!("order {} is not paid", order.id)));
        };
        let at = s(rfc3339(now));
        // A token of this request's own: concurrent cancels must not pass for one.
        let token = entry.unwrap_or_else(EntryId::generate);
        let mut transaction = Transaction::new(format!("refund order {}", order.id)).with_token(token);

        let mut update = "SET #status = :refunded, cancelledAt = :at".to_owned();
        if entry.is_some() {
            update.push_str(", refundEntryId = :entry");
        }
        let mut refunded = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::order(order.id).item()))
            .update_expression(update)
            .condition_expression("#status = :paid AND paymentId = :payment")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":refunded", s(OrderStatus::Refunded.as_str()))
            .expression_attribute_values(":paid", s(OrderStatus::Paid.as_str()))
            .expression_attribute_values(":payment", s(payment.to_string()))
            .expression_attribute_values(":at", at.clone());
        if let Some(entry) = entry {
            refunded = refunded.expression_attribute_values(":entry", s(entry.to_string()));
        }
        transaction.update(RefundItem::Order, built(refunded.build())?);

        for line in &order.lines {
            transaction.update(RefundItem::Stock, self.stock_update(line, Way::Returned)?);
        }
        for line in &order.lines {
            // Taken from the day it was sold, which the top 5 reads.
            let sales = self.sales_update(paid_at.date(), line, Way::Returned)?;
            transaction.update(RefundItem::Sales(line.product_id), sales);
        }

        if let Some(entry) = entry {
            let amount = Amount::from_decimal(order.total.as_decimal()).map_err(|_| OrderError::TooLarge)?;
            let change = BalanceChange {
                id: entry,
                user: order.user,
                kind: EntryKind::Refund,
                amount,
                order: Some(order.id),
                at: now,
                // The cancel's key guards the refund; the entry is found through the order.
                idempotency_key: None,
            };
            transaction.update(RefundItem::Balance, BalanceUpdate::new(&change).transaction_item(&self.table)?);
        }

        if let (Some(coupon), true) = (order.coupon, coupon_back) {
            let unused = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::coupon_copy(order.user, coupon).item()))
                .update_expression("REMOVE usedAt, orderId")
                .condition_expression("orderId = :order AND usableUntil > :at")
                .expression_attribute_values(":order", s(order.id.to_string()))
                .expression_attribute_values(":at", at.clone())
                .build();
            transaction.update(RefundItem::Coupon, built(unused)?);
        }

        let record = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::payment(order.id, payment).item()))
            .update_expression("SET #status = :refunded, refundedAt = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":refunded", s(OrderStatus::Refunded.as_str()))
            .expression_attribute_values(":at", at)
            .build();
        transaction.update(RefundItem::PaymentRecord, built(record)?);

        let event = refunded_event(order, payment, now);
        transaction.put(RefundItem::Outbox, self.outbox_put(order, EventType::OrderRefunded, &event, now)?);
        self.cancel_key(&mut transaction, order, by, key, entry, now)?;
        Ok(transaction)
    }

    fn cancel_key(
        &self,
        transaction: &mut Transaction<RefundItem>,
        order: &Order,
        by: Canceller,
        key: Option<&IdempotencyKey>,
        entry: Option<EntryId>,
        now: OffsetDateTime,
    ) -> Result<(), OrderError> {
        if let Some(key) = key {
            let record = Record {
                scope: key_scope(by, order),
                key,
                fingerprint: order.cancel_fingerprint(),
                target: Target::Order(order.id),
                entry,
                at: now,
            };
            transaction.put(RefundItem::Key, record.put(&self.table)?);
        }
        Ok(())
    }

    /// Commits a cancel or refund: `true` when it did, `false` when the order (or its
    /// coupon's expiry) changed since it was read, or when the same key got there
    /// first — read the order again either way.
    async fn commit_cancel(
        &self,
        transaction: &Transaction<RefundItem>,
        order: &Order,
        by: Canceller,
        key: Option<&IdempotencyKey>,
    ) -> Result<bool, OrderError> {
        let Err(refused) = self.transact(transaction).await? else { return Ok(true) };
        if refused.failed(RefundItem::Key) {
            if let Some(key) = key {
                if self.cancel_key_used(by, key, order).await? {
                    return Ok(false);
                }
            }
            return Err(OrderError::IdempotencyKeyReused);
        }
        if refused.failed(RefundItem::Order) || refused.failed(RefundItem::Coupon) {
            return Ok(false);
        }
        if refused.failed(RefundItem::Balance) {
            return Err(if refused.existed(RefundItem::Balance) {
                OrderError::BalanceLimitExceeded
            } else {
                OrderError::UnknownUser(order.user)
            });
        }
        Err(OrderError::Unexpected(anyhow!("cancelling order {} was refused: {refused:?}", order.id)))
    }
}

/// The ORDER_PAID event, schema version 1 (documented in `docs/events.md`).
pub fn paid_event(order: &Order, payment: PaymentId, paid_at: OffsetDateTime) -> serde_json::Value {
    let mut event = event_base(order, EventType::OrderPaid, payment);
    event["paidAt"] = rfc3339(paid_at).into();
    event
}

/// The ORDER_REFUNDED event, schema version 1: the order as paid, and when it was
/// refunded.
pub fn refunded_event(order: &Order, payment: PaymentId, refunded_at: OffsetDateTime) -> serde_json::Value {
    let mut event = event_base(order, EventType::OrderRefunded, payment);
    event["paidAt"] = order.paid_at.map(rfc3339).into();
    event["refundedAt"] = rfc3339(refunded_at).into();
    event
}

fn event_base(order: &Order, kind: EventType, payment: PaymentId) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 1,
        "eventId": kind.event_id(order.id),
        "type": kind.as_str(),
        "orderId": order.id.to_string(),
        "paymentId": payment.to_string(),
        "userId": order.user.get(),
        "lines": order.lines.iter().map(|l| serde_json::json!({
            "productId": l.product_id.get(),
            "quantity": l.quantity.get(),
            "unitPrice": l.unit_price.to_string(),
            "lineTotal": l.line_total.to_string(),
        })).collect::<Vec<_>>(),
        "subtotal": order.subtotal.to_string(),
        "discount": order.discount.to_string(),
        "total": order.total.to_string(),
        "couponId": order.coupon.map(|c| c.get()),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};

    use super::*;
    use crate::adapters::dynamodb::transaction::{read_cancellation, Cancelled};
    use crate::adapters::dynamodb::{get_s, DynamoStore};
    use crate::ids::{CouponId, OrderId, Quantity, UserId};
    use crate::orders::{Failures, OrderLine};

    fn p(id: u64) -> ProductId {
        ProductId::new(id).unwrap()
    }

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn order(coupon: bool) -> Order {
        let line = |id: u64, quantity: u64| OrderLine {
            product_id: p(id),
            name: format!("Product {id}"),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: money("10.00"),
            line_total: money("10.00").checked_mul(quantity as u32).unwrap(),
        };
        Order {
            id: OrderId::generate(),
            user: UserId::new(7).unwrap(),
            status: OrderStatus::PendingPayment,
            lines: vec![line(1, 2), line(2, 3)],
            subtotal: money("50.00"),
            discount: if coupon { money("5.00") } else { Money::ZERO },
            total: if coupon { money("45.00") } else { money("50.00") },
            coupon: coupon.then(|| CouponId::new(9).unwrap()),
            created_at: time::macros::datetime!(2026-11-24 10:00 UTC),
            pay_by: time::macros::datetime!(2026-11-24 10:30 UTC),
            paid_at: None,
            payment: None,
            cancelled_at: None,
            refund_entry: None,
            failures: Failures::default(),
        }
    }

    fn store() -> DynamoStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "shop-main")
    }

    /// The refusal in which the items at `failed` failed their conditions, each with
    /// the old image of an item that exists (a paid order, for the order item).
    fn refused(roles: &[PayItem], failed: &[usize]) -> Refusal<PayItem> {
        let reasons: Vec<CancellationReason> = (0..roles.len())
            .map(|i| match failed.contains(&i) {
                true => CancellationReason::builder()
                    .code("ConditionalCheckFailed")
                    .item("pk", s("existing"))
                    .item("status", s("PAID"))
                    .build(),
                false => CancellationReason::builder().code("None").build(),
            })
            .collect();
        match read_cancellation(roles, &reasons) {
            Cancelled::Refused(refusal) => refusal,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    fn update(item: &TransactWriteItem) -> &Update {
        item.update().expect("an update")
    }

    #[test]
    fn a_payment_is_one_transaction_of_exactly_these_items() {
        let store = store();
        let order = order(true);
        let payment = succeeded(&order, PaymentId::generate(), EntryId::generate(), order.created_at);
        let key = IdempotencyKey::parse("pay-1").unwrap();
        let (transaction, known) = store.payment_transaction(&order, &payment, Some(&key), None).unwrap();
        assert_eq!(known, None, "the entry is pending until the commit");
        assert_eq!(
            transaction.roles(),
            [
                PayItem::Order,
                PayItem::Stock(p(1)),
                PayItem::Stock(p(2)),
                PayItem::Sales,
                PayItem::Sales,
                PayItem::Balance,
                PayItem::Coupon,
                PayItem::PaymentRecord,
                PayItem::Outbox,
                PayItem::Key,
            ]
        );
        let items = transaction.items();
        let status = update(&items[0]);
        assert_eq!(status.key()["pk"], s(format!("ORDER#{}", order.id)));
        assert_eq!(status.condition_expression(), Some("#status = :pending AND payBy > :at"));
        assert_eq!(status.expression_attribute_values().unwrap()[":at"], s("2026-11-24T10:00:00.000Z"));
        let stock = update(&items[2]);
        assert_eq!(stock.key()["pk"], s("PRODUCT#2"));
        assert_eq!(stock.expression_attribute_values().unwrap()[":q"], n(3));
        let sales = update(&items[3]);
        assert_eq!(sales.key()["pk"], s("SALES#2026-11-24"));
        assert_eq!(sales.key()["sk"], s("PRODUCT#00000000000000000001"));
        let balance = update(&items[5]);
        assert_eq!(balance.key()["sk"], s("PROFILE"));
        assert_eq!(balance.expression_attribute_values().unwrap()[":bound"], n("45"));
        let coupon = update(&items[6]);
        assert_eq!(coupon.key()["sk"], s("COUPON#00000000000000000009"));
        let record = items[7].put().unwrap();
        assert_eq!(get_s(record.item(), "sk").unwrap(), format!("PAYMENT#{}", payment.id));
        let outbox = items[8].put().unwrap();
        assert_eq!(outbox.table_name(), "shop-outbox");
        assert_eq!(get_s(outbox.item(), "sk").unwrap(), "ORDER_PAID");
        assert_eq!(get_s(items[9].put().unwrap().item(), "sk").unwrap(), "IDEM#pay-1");
    }

    #[test]
    fn a_free_order_without_coupon_or_key_takes_no_balance() {
        let store = store();
        let mut order = order(false);
        order.total = Money::ZERO;
        let payment = succeeded(&order, PaymentId::generate(), EntryId::generate(), order.created_at);
        assert_eq!(payment.entry, None);
        let seen = Some(BalanceSeen { balance: Money::parse("10.00").unwrap(), seq: 3 });
        let (transaction, known) = store.payment_transaction(&order, &payment, None, seen).unwrap();
        assert_eq!(known, None);
        assert!(!transaction.roles().iter().any(|r| matches!(r, PayItem::Balance | PayItem::Coupon | PayItem::Key)));
    }

    #[test]
    fn from_a_balance_seen_the_entry_commits_in_the_transaction_at_the_next_seq() {
        let store = store();
        let order = order(true);
        let payment = succeeded(&order, PaymentId::generate(), EntryId::generate(), order.created_at);
        let key = IdempotencyKey::parse("pay-1").unwrap();
        let seen = BalanceSeen { balance: Money::parse("100.00").unwrap(), seq: 7 };
        let (transaction, known) = store.payment_transaction(&order, &payment, Some(&key), Some(seen)).unwrap();
        let entry = known.expect("the entry is known before the commit");
        assert_eq!(
            (entry.seq, entry.balance_after, entry.id),
            (8, Money::parse("55.00").unwrap(), payment.entry.unwrap())
        );
        assert_eq!(transaction.roles()[5..7], [PayItem::Balance, PayItem::History]);
        let items = transaction.items();
        let balance = update(&items[5]);
        assert_eq!(balance.condition_expression(), Some("attribute_exists(pk) AND seq = :seen AND balance >= :amount"));
        let values = balance.expression_attribute_values().unwrap();
        assert_eq!((&values[":seen"], &values[":next"], &values[":amount"]), (&n(7), &n(8), &n("45.00")));
        let history = items[6].put().unwrap();
        assert_eq!(get_s(history.item(), "sk").unwrap(), "HIST#00000000000000000008");
        assert_eq!(history.item()["balanceAfter"], n("55.00"));
        assert_eq!(history.condition_expression(), Some("attribute_not_exists(pk)"));
        let key_record = items[10].put().unwrap();
        assert_eq!(get_s(key_record.item(), "sk").unwrap(), "IDEM#pay-1");
        assert_eq!(key_record.item()["seq"], n(8), "the key names its entry's seq from the start");
    }

    #[test]
    fn a_balance_seen_too_low_to_pay_builds_no_transaction() {
        let store = store();
        let order = order(true);
        let payment = succeeded(&order, PaymentId::generate(), EntryId::generate(), order.created_at);
        let seen = BalanceSeen { balance: Money::parse("44.99").unwrap(), seq: 2 };
        let built = store.payment_transaction(&order, &payment, None, Some(seen));
        assert!(matches!(built, Err(OrderError::InsufficientBalance)), "{:?}", built.err());
    }

    #[test]
    fn a_refusing_profile_moved_when_its_seq_is_not_the_one_seen() {
        let seen = BalanceSeen { balance: Money::parse("10.00").unwrap(), seq: 4 };
        let profile = |seq: u64| Item::from([("balance".to_owned(), n("10.00")), ("seq".to_owned(), n(seq))]);
        assert_eq!(moved_since(Some(&profile(4)), seen), None, "the same seq: the balance said no");
        let now = BalanceSeen { balance: Money::parse("10.00").unwrap(), seq: 5 };
        assert_eq!(moved_since(Some(&profile(5)), seen), Some(now), "another change came first");
        assert_eq!(moved_since(None, seen), None, "no profile: an unknown user, not a move");
    }

    /// Order, stock of products 1 and 2, their sales, balance, coupon, record, outbox.
    fn roles() -> Vec<PayItem> {
        vec![
            PayItem::Order,
            PayItem::Stock(p(1)),
            PayItem::Stock(p(2)),
            PayItem::Sales,
            PayItem::Sales,
            PayItem::Balance,
            PayItem::Coupon,
            PayItem::PaymentRecord,
            PayItem::Outbox,
        ]
    }

    fn refusal_of(refused: &Refusal<PayItem>) -> Option<OrderError> {
        refusal(refused, &order(false))
    }

    #[test]
    fn each_failed_condition_maps_to_its_refusal() {
        assert!(matches!(refusal_of(&refused(&roles(), &[0])), Some(OrderError::AlreadyPaid)));
        assert!(matches!(refusal_of(&refused(&roles(), &[2])), Some(OrderError::OutOfStock(id)) if id == p(2)));
        assert!(matches!(refusal_of(&refused(&roles(), &[5])), Some(OrderError::InsufficientBalance)));
        assert!(matches!(refusal_of(&refused(&roles(), &[6])), Some(OrderError::CouponUnavailable)));
    }

    #[test]
    fn the_order_item_says_whether_it_was_paid_already_or_expired() {
        let order_refused = |old: Option<&str>| {
            let reasons: Vec<CancellationReason> = (0..roles().len())
                .map(|i| match (i, old) {
                    (0, Some(status)) => CancellationReason::builder()
                        .code("ConditionalCheckFailed")
                        .item("pk", s("ORDER#o"))
                        .item("status", s(status))
                        .build(),
                    (0, None) => CancellationReason::builder().code("ConditionalCheckFailed").build(),
                    _ => CancellationReason::builder().code("None").build(),
                })
                .collect();
            let Cancelled::Refused(refused) = read_cancellation(&roles(), &reasons) else { panic!("refused") };
            refusal_of(&refused)
        };
        assert!(matches!(order_refused(Some("PAID")), Some(OrderError::AlreadyPaid)));
        assert!(matches!(order_refused(Some("PENDING_PAYMENT")), Some(OrderError::Expired)));
        assert!(matches!(order_refused(Some("CANCELLED")), Some(OrderError::Cancelled)));
        assert!(matches!(order_refused(Some("REFUNDED")), Some(OrderError::Refunded)));
        assert!(matches!(order_refused(None), Some(OrderError::UnknownOrder)));
    }

    #[test]
    fn the_refusal_a_customer_can_act_on_first_wins() {
        assert!(matches!(refusal_of(&refused(&roles(), &[1, 5])), Some(OrderError::OutOfStock(id)) if id == p(1)));
        assert!(matches!(refusal_of(&refused(&roles(), &[0, 1])), Some(OrderError::AlreadyPaid)));
    }

    #[test]
    fn a_balance_whose_profile_is_gone_means_an_unknown_user() {
        let reasons: Vec<CancellationReason> = (0..roles().len())
            .map(|i| CancellationReason::builder().code(if i == 5 { "ConditionalCheckFailed" } else { "None" }).build())
            .collect();
        let Cancelled::Refused(refused) = read_cancellation(&roles(), &reasons) else { panic!("refused") };
        assert!(matches!(refusal_of(&refused), Some(OrderError::UnknownUser(_))));
    }

    #[test]
    fn an_existing_key_record_means_replay() {
        let mut roles = roles();
        roles.push(PayItem::Key);
        assert!(refusal_of(&refused(&roles, &[0, 9])).is_none());
    }
}
