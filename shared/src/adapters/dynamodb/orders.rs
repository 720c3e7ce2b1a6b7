//! Orders and payment on DynamoDB (keys in the module doc of `dynamodb`).
//!
//! # Paying: one `TransactWriteItems`, all or nothing
//!
//! | # | item | write | condition → refusal |
//! |---|---|---|---|
//! | 0 | `ORDER#o` / `ORDER` | status PAID, paidAt, paymentId | `status = PENDING_PAYMENT` → `ALREADY_PAID` |
//! | 1..=n | `PRODUCT#p` / `PRODUCT` | `stock = stock − q` | `stock >= q` → `OUT_OF_STOCK` (names p) |
//! | n+1..=2n | `SALES#<day>` / `PRODUCT#p` | `ADD quantity q` | — |
//! | | `USER#u` / `PROFILE` | the ledger update (a PAYMENT entry) | `balance >= total` → `INSUFFICIENT_BALANCE` |
//! | | `USER#u` / `COUPON#c` | `usedAt`, `orderId` | unused, unexpired → `COUPON_UNAVAILABLE` |
//! | | `ORDER#o` / `PAYMENT#pay` | the SUCCEEDED payment record | new |
//! | | outbox `ORDER#o` / `ORDER_PAID` | the event for the data platform | new |
//! | | `USER#u` / `IDEM#k` | with an `Idempotency-Key` | new → replay the first payment |
//!
//! The balance row is left out for a zero total, the coupon row without a coupon, the
//! key row without a key. [`classify_payment`] maps the cancellation reasons, item by
//! item, to the refusal; `TransactionConflict` alone is retried with jittered backoff.

use std::collections::HashMap;

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::catalog::{product_pk, PRODUCT_SK};
use super::coupons::{copy_from_item, copy_sk};
use super::ledger::{idem_sk, ProfileUpdate, PROFILE_SK, PROFILE_UPDATE};
use super::{
    db_error, get_money, get_optional_time, get_s, get_time, get_u64, key, n, s, user_pk, DbError, DynamoStore, Item,
};
use crate::balance::{BalanceChange, BalanceError, EntryKind};
use crate::clock::rfc3339;
use crate::coupons::IssuedCoupon;
use crate::ids::{CouponId, EntryId, IdempotencyKey, OrderId, PaymentId, ProductId, Quantity, UserId};
use crate::money::{Amount, Money};
use crate::orders::{
    Order, OrderError, OrderLine, OrderPayer, OrderStatus, OrderStore, Paid, Payment, PaymentStatus, Placed,
};
use crate::retry::RetryPolicy;

pub const ORDER_SK: &str = "ORDER";
pub const ORDER_PAID_SK: &str = "ORDER_PAID";
/// Idempotency records expire (DynamoDB TTL) after a day.
const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

pub fn order_pk(id: OrderId) -> String {
    format!("ORDER#{id}")
}

pub fn payment_sk(id: PaymentId) -> String {
    format!("PAYMENT#{id}")
}

/// `SALES#2026-11-24`: the UTC day a sale counts on.
pub fn sales_pk(day: time::Date) -> String {
    format!("SALES#{day}")
}

pub fn sales_sk(product: ProductId) -> String {
    format!("PRODUCT#{:020}", product.get())
}

impl From<DbError> for OrderError {
    fn from(err: DbError) -> OrderError {
        match err {
            DbError::Unavailable(e) => OrderError::Unavailable(e),
            DbError::Other(e) => OrderError::Unexpected(e),
        }
    }
}

impl From<BalanceError> for OrderError {
    fn from(err: BalanceError) -> OrderError {
        match err {
            BalanceError::Unavailable(e) => OrderError::Unavailable(e),
            other => OrderError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// What each item of a payment transaction is, so a cancellation can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayItem {
    Order,
    Stock(ProductId),
    Sales,
    Balance,
    Coupon,
    PaymentRecord,
    Outbox,
    IdempotencyRecord,
}

/// Why DynamoDB cancelled a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayRejection {
    Conflict,
    KeyUsed,
    AlreadyPaid,
    OutOfStock(ProductId),
    InsufficientBalance,
    CouponUnavailable,
    Other(String),
}

/// Maps per-item cancellation reasons to one refusal. A failed condition is decisive,
/// in the order a customer can act on: the key, the order's state, stock, balance,
/// coupon. A conflict alone is retried.
pub fn classify_payment(items: &[PayItem], reasons: &[CancellationReason]) -> PayRejection {
    let failed: Vec<PayItem> = items
        .iter()
        .zip(reasons)
        .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
        .map(|(item, _)| *item)
        .collect();
    if failed.contains(&PayItem::IdempotencyRecord) {
        return PayRejection::KeyUsed;
    }
    if failed.contains(&PayItem::Order) {
        return PayRejection::AlreadyPaid;
    }
    if let Some(product) = failed.iter().find_map(|item| match item {
        PayItem::Stock(product) => Some(*product),
        _ => None,
    }) {
        return PayRejection::OutOfStock(product);
    }
    if failed.contains(&PayItem::Balance) {
        return PayRejection::InsufficientBalance;
    }
    if failed.contains(&PayItem::Coupon) {
        return PayRejection::CouponUnavailable;
    }
    if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
        return PayRejection::Conflict;
    }
    PayRejection::Other(
        items
            .iter()
            .zip(reasons)
            .filter(|(_, r)| r.code().is_some_and(|c| c != "None"))
            .map(|(item, r)| format!("{item:?}: {}", r.code().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

impl OrderStore for DynamoStore {
    async fn user_exists(&self, user: UserId) -> Result<bool, OrderError> {
        Ok(DynamoStore::user_exists(self, user).await?)
    }

    async fn user_coupon(&self, user: UserId, coupon: CouponId) -> Result<Option<IssuedCoupon>, OrderError> {
        let item = self.get(user_pk(user), copy_sk(coupon), || format!("get coupon {coupon} of user {user}")).await?;
        Ok(item.as_ref().map(copy_from_item).transpose()?)
    }

    async fn place(&self, order: Order, idempotency: Option<(IdempotencyKey, String)>) -> Result<Placed, OrderError> {
        let item = order_item(&order);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .context("build order")
            .map_err(DbError::Other)?;
        let Some((idem, fingerprint)) = idempotency else {
            let mut request =
                self.client.put_item().table_name(&self.table).condition_expression("attribute_not_exists(pk)");
            request = request.set_item(put.item().clone().into());
            request.send().await.map_err(|e| db_error(e, || format!("save order {}", order.id)))?;
            return Ok(Placed { order, replayed: false });
        };
        let record =
            idempotency_record(order.user, &idem, &fingerprint, order.created_at, "orderId", order.id.to_string());
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().put(self.new_item(record)?).build())
            .client_request_token(order.id.to_string())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Placed { order, replayed: false }),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled.cancellation_reasons().get(1).and_then(|r| r.code())
                        == Some("ConditionalCheckFailed") =>
                {
                    let first = self.idempotent_target(order.user, &idem, &fingerprint, "orderId").await?;
                    let id: OrderId = first.parse().map_err(|_| anyhow!("bad orderId on idempotency record"))?;
                    let (order, _) = self.load_order(id).await?.ok_or_else(|| anyhow!("order {id} vanished"))?;
                    Ok(Placed { order, replayed: true })
                }
                _ => Err(db_error(err, || format!("save order {} with its key", order.id)).into()),
            },
        }
    }

    async fn order(&self, id: OrderId) -> Result<Option<(Order, Vec<Payment>)>, OrderError> {
        Ok(self.load_order(id).await?)
    }
}

impl OrderPayer for DynamoStore {
    async fn pay(
        &self,
        order: &Order,
        payment: PaymentId,
        now: OffsetDateTime,
        idem: Option<IdempotencyKey>,
    ) -> Result<Paid, OrderError> {
        let entry = EntryId::generate();
        let mut retry = 0;
        loop {
            let (items, roles) = self.payment_items(order, payment, entry, now, idem.as_ref())?;
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .client_request_token(format!("{payment}-{retry}"))
                .send()
                .await;
            let rejection = match sent {
                Ok(_) => break,
                Err(err) => match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        classify_payment(&roles, cancelled.cancellation_reasons())
                    }
                    _ => return Err(db_error(err, || format!("pay order {}", order.id)).into()),
                },
            };
            return Err(match rejection {
                PayRejection::Conflict => match RetryPolicy::TRANSACTION_CONFLICT.delay(retry) {
                    Some(delay) => {
                        tracing::debug!(order = %order.id, retry, "transaction conflict, retrying");
                        tokio::time::sleep(delay).await;
                        retry += 1;
                        continue;
                    }
                    None => OrderError::Unavailable(anyhow!(
                        "paying order {} still conflicting after {retry} retries",
                        order.id
                    )),
                },
                PayRejection::KeyUsed => {
                    let idem = idem.as_ref().ok_or_else(|| anyhow!("key rejection without a key"))?;
                    return self.replay_payment(order, idem).await;
                }
                PayRejection::AlreadyPaid => OrderError::AlreadyPaid,
                PayRejection::OutOfStock(product) => OrderError::OutOfStock(product),
                PayRejection::InsufficientBalance => OrderError::InsufficientBalance,
                PayRejection::CouponUnavailable => OrderError::CouponUnavailable,
                PayRejection::Other(codes) => {
                    OrderError::Unexpected(anyhow!("paying order {} cancelled: {codes}", order.id))
                }
            });
        }
        let balance_after = if order.total > Money::ZERO {
            let committed = self.committed_entry(order.user, entry).await?;
            if let Err(err) = self.materialise(order.user, &committed, None).await {
                tracing::warn!(order = %order.id, error = %format!("{err:#}"), "materialising a payment's ledger entry failed");
            }
            committed.balance_after
        } else {
            crate::balance::BalanceReader::balance(self, order.user).await?
        };
        let record = succeeded(order, payment, entry, now);
        Ok(Paid { payment: record, balance_after, paid_at: now, replayed: false })
    }

    async fn record_failure(&self, payment: &Payment) -> Result<(), OrderError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(payment_item(payment)))
            .send()
            .await
            .map_err(|e| db_error(e, || format!("record failed payment {} of order {}", payment.id, payment.order)))?;
        Ok(())
    }
}

impl DynamoStore {
    fn new_item(&self, item: Item) -> Result<Put, DbError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .context("build put")
            .map_err(DbError::Other)
    }

    /// The transaction that pays `order`, and what each of its items is.
    fn payment_items(
        &self,
        order: &Order,
        payment: PaymentId,
        entry: EntryId,
        now: OffsetDateTime,
        idem: Option<&IdempotencyKey>,
    ) -> Result<(Vec<TransactWriteItem>, Vec<PayItem>), OrderError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| OrderError::Unexpected(anyhow!("build payment item: {e}"));
        let mut items = Vec::new();
        let mut roles = Vec::new();
        let mut push = |item: TransactWriteItem, role: PayItem| {
            items.push(item);
            roles.push(role);
        };
        let at = s(rfc3339(now));

        let paid = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(order.id), ORDER_SK)))
            .update_expression("SET #status = :paid, paidAt = :at, paymentId = :payment")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s(OrderStatus::Paid.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::PendingPayment.as_str()))
            .expression_attribute_values(":at", at.clone())
            .expression_attribute_values(":payment", s(payment.to_string()))
            .build()
            .map_err(build)?;
        push(TransactWriteItem::builder().update(paid).build(), PayItem::Order);

        for line in &order.lines {
            let stock = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(product_pk(line.product_id), PRODUCT_SK)))
                .update_expression("SET stock = stock - :q")
                .condition_expression("attribute_exists(pk) AND stock >= :q")
                .expression_attribute_values(":q", n(line.quantity.get()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(build)?;
            push(TransactWriteItem::builder().update(stock).build(), PayItem::Stock(line.product_id));
        }
        for line in &order.lines {
            let sales = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(sales_pk(now.date()), sales_sk(line.product_id))))
                .update_expression("SET #day = :day, productId = :product ADD quantity :q")
                .expression_attribute_names("#day", "day")
                .expression_attribute_values(":day", s(now.date().to_string()))
                .expression_attribute_values(":product", n(line.product_id))
                .expression_attribute_values(":q", n(line.quantity.get()))
                .build()
                .map_err(build)?;
            push(TransactWriteItem::builder().update(sales).build(), PayItem::Sales);
        }

        if order.total > Money::ZERO {
            let amount = Amount::from_decimal(order.total.as_decimal()).map_err(|_| OrderError::TooLarge)?;
            let change = BalanceChange {
                id: entry,
                user: order.user,
                kind: EntryKind::Payment,
                amount,
                at: now,
                idempotency_key: None,
            };
            let update = ProfileUpdate::new(&change);
            let balance = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(order.user), PROFILE_SK)))
                .update_expression(PROFILE_UPDATE)
                .condition_expression(update.condition)
                .set_expression_attribute_names(Some(update.names))
                .set_expression_attribute_values(Some(update.values))
                .build()
                .map_err(build)?;
            push(TransactWriteItem::builder().update(balance).build(), PayItem::Balance);
        }

        if let Some(coupon) = order.coupon {
            let used = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(order.user), copy_sk(coupon))))
                .update_expression("SET usedAt = :at, orderId = :order")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(usedAt) AND expiresAt > :at")
                .expression_attribute_values(":at", at.clone())
                .expression_attribute_values(":order", s(order.id.to_string()))
                .build()
                .map_err(build)?;
            push(TransactWriteItem::builder().update(used).build(), PayItem::Coupon);
        }

        let record = succeeded(order, payment, entry, now);
        push(TransactWriteItem::builder().put(self.new_item(payment_item(&record))?).build(), PayItem::PaymentRecord);

        let event = outbox_event(order, payment, now);
        let outbox = Put::builder()
            .table_name(&self.outbox_table)
            .set_item(Some(event))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build)?;
        push(TransactWriteItem::builder().put(outbox).build(), PayItem::Outbox);

        if let Some(idem) = idem {
            let fingerprint = payment_fingerprint(order);
            let record = idempotency_record(order.user, idem, &fingerprint, now, "paymentId", payment.to_string());
            push(TransactWriteItem::builder().put(self.new_item(record)?).build(), PayItem::IdempotencyRecord);
        }
        Ok((items, roles))
    }

    /// The first payment made under `idem`, as it was answered.
    async fn replay_payment(&self, order: &Order, idem: &IdempotencyKey) -> Result<Paid, OrderError> {
        let first = self.idempotent_target(order.user, idem, &payment_fingerprint(order), "paymentId").await?;
        let (current, payments) = self.load_order(order.id).await?.ok_or(OrderError::UnknownOrder)?;
        let payment = payments
            .into_iter()
            .find(|p| p.id.to_string() == first)
            .ok_or_else(|| anyhow!("payment {first} of order {} missing", order.id))?;
        let balance_after = match payment.entry {
            Some(entry) => self.committed_entry(order.user, entry).await?.balance_after,
            None => crate::balance::BalanceReader::balance(self, order.user).await?,
        };
        let paid_at = current.paid_at.unwrap_or(payment.at);
        Ok(Paid { payment, balance_after, paid_at, replayed: true })
    }

    /// The id an idempotency record points at, after checking its fingerprint.
    async fn idempotent_target(
        &self,
        user: UserId,
        idem: &IdempotencyKey,
        fingerprint: &str,
        field: &str,
    ) -> Result<String, OrderError> {
        let record = self
            .get(user_pk(user), idem_sk(idem), || format!("read idempotency key of user {user}"))
            .await?
            .ok_or_else(|| anyhow!("idempotency record of user {user} vanished"))?;
        if get_s(&record, "fingerprint")? != fingerprint {
            return Err(OrderError::IdempotencyKeyReused);
        }
        Ok(get_s(&record, field).map_err(|_| OrderError::IdempotencyKeyReused)?.to_owned())
    }

    async fn load_order(&self, id: OrderId) -> Result<Option<(Order, Vec<Payment>)>, DbError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(order_pk(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("read order {id}")))?;
        let mut order = None;
        let mut payments = Vec::new();
        for item in output.items() {
            match get_s(item, "sk").map_err(DbError::Other)? {
                ORDER_SK => order = Some(order_from_item(item).map_err(DbError::Other)?),
                sk if sk.starts_with("PAYMENT#") => payments.push(payment_from_item(item).map_err(DbError::Other)?),
                _ => {}
            }
        }
        payments.sort_by_key(|p| p.id);
        Ok(order.map(|order| (order, payments)))
    }
}

/// The record of the attempt that pays `order`.
fn succeeded(order: &Order, payment: PaymentId, entry: EntryId, now: OffsetDateTime) -> Payment {
    Payment {
        id: payment,
        order: order.id,
        user: order.user,
        status: PaymentStatus::Succeeded,
        amount: order.total,
        reason: None,
        // No ledger entry when nothing was taken (a total of zero).
        entry: (order.total > Money::ZERO).then_some(entry),
        at: now,
    }
}

fn payment_fingerprint(order: &Order) -> String {
    format!("PAY:{}:{}", order.user, order.id)
}

fn idempotency_record(
    user: UserId,
    idem: &IdempotencyKey,
    fingerprint: &str,
    at: OffsetDateTime,
    field: &str,
    target: String,
) -> Item {
    let mut record = key(user_pk(user), idem_sk(idem));
    record.insert("fingerprint".to_owned(), s(fingerprint));
    record.insert(field.to_owned(), s(target));
    record.insert("createdAt".to_owned(), s(rfc3339(at)));
    record.insert("expiresAt".to_owned(), n((at + IDEMPOTENCY_TTL).unix_timestamp()));
    record
}

/// The ORDER_PAID event, schema version 1 (documented in `docs/events.md`).
pub fn event_payload(order: &Order, payment: PaymentId, paid_at: OffsetDateTime) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 1,
        "eventId": format!("{}:ORDER_PAID", order.id),
        "type": "ORDER_PAID",
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
        "paidAt": rfc3339(paid_at),
    })
}

fn outbox_event(order: &Order, payment: PaymentId, paid_at: OffsetDateTime) -> Item {
    let mut item = key(order_pk(order.id), ORDER_PAID_SK);
    item.insert("eventId".to_owned(), s(format!("{}:ORDER_PAID", order.id)));
    item.insert("orderId".to_owned(), s(order.id.to_string()));
    item.insert("payload".to_owned(), s(event_payload(order, payment, paid_at).to_string()));
    item.insert("createdAt".to_owned(), s(rfc3339(paid_at)));
    // Listed for the sweeper until the relay marks it published.
    item.insert("gsi1pk".to_owned(), s("PENDING"));
    item.insert("gsi1sk".to_owned(), s(format!("{}#{}", rfc3339(paid_at), order.id)));
    item
}

pub fn order_item(order: &Order) -> Item {
    let mut item = key(order_pk(order.id), ORDER_SK);
    item.insert("orderId".to_owned(), s(order.id.to_string()));
    item.insert("userId".to_owned(), n(order.user));
    item.insert("status".to_owned(), s(order.status.as_str()));
    let lines = order
        .lines
        .iter()
        .map(|line| {
            AttributeValue::M(HashMap::from([
                ("productId".to_owned(), n(line.product_id)),
                ("name".to_owned(), s(&line.name)),
                ("quantity".to_owned(), n(line.quantity.get())),
                ("unitPrice".to_owned(), n(line.unit_price)),
                ("lineTotal".to_owned(), n(line.line_total)),
            ]))
        })
        .collect();
    item.insert("lines".to_owned(), AttributeValue::L(lines));
    item.insert("subtotal".to_owned(), n(order.subtotal));
    item.insert("discount".to_owned(), n(order.discount));
    item.insert("total".to_owned(), n(order.total));
    if let Some(coupon) = order.coupon {
        item.insert("couponId".to_owned(), n(coupon));
    }
    item.insert("createdAt".to_owned(), s(rfc3339(order.created_at)));
    item
}

fn payment_item(payment: &Payment) -> Item {
    let mut item = key(order_pk(payment.order), payment_sk(payment.id));
    item.insert("paymentId".to_owned(), s(payment.id.to_string()));
    item.insert("orderId".to_owned(), s(payment.order.to_string()));
    item.insert("userId".to_owned(), n(payment.user));
    item.insert("status".to_owned(), s(payment.status.as_str()));
    item.insert("amount".to_owned(), n(payment.amount));
    if let Some(reason) = &payment.reason {
        item.insert("reason".to_owned(), s(reason));
    }
    if let Some(entry) = payment.entry {
        item.insert("entryId".to_owned(), s(entry.to_string()));
    }
    item.insert("createdAt".to_owned(), s(rfc3339(payment.at)));
    item
}

pub fn order_from_item(item: &Item) -> anyhow::Result<Order> {
    let lines = match item.get("lines") {
        Some(AttributeValue::L(lines)) => lines
            .iter()
            .map(|line| {
                let AttributeValue::M(line) = line else { return Err(anyhow!("order line is not a map")) };
                Ok(OrderLine {
                    product_id: ProductId::new(get_u64(line, "productId")?).map_err(|e| anyhow!("productId: {e}"))?,
                    name: get_s(line, "name")?.to_owned(),
                    quantity: Quantity::new(get_u64(line, "quantity")?).ok_or_else(|| anyhow!("bad quantity"))?,
                    unit_price: get_money(line, "unitPrice")?,
                    line_total: get_money(line, "lineTotal")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        other => return Err(anyhow!("order lines are not a list: {other:?}")),
    };
    Ok(Order {
        id: get_s(item, "orderId")?.parse().map_err(|_| anyhow!("bad orderId"))?,
        user: UserId::new(get_u64(item, "userId")?).map_err(|e| anyhow!("userId: {e}"))?,
        status: OrderStatus::parse(get_s(item, "status")?).ok_or_else(|| anyhow!("unknown order status"))?,
        lines,
        subtotal: get_money(item, "subtotal")?,
        discount: get_money(item, "discount")?,
        total: get_money(item, "total")?,
        coupon: match item.get("couponId") {
            Some(_) => Some(CouponId::new(get_u64(item, "couponId")?).map_err(|e| anyhow!("couponId: {e}"))?),
            None => None,
        },
        created_at: get_time(item, "createdAt")?,
        paid_at: get_optional_time(item, "paidAt")?,
        payment: match item.get("paymentId") {
            Some(_) => Some(get_s(item, "paymentId")?.parse().map_err(|_| anyhow!("bad paymentId"))?),
            None => None,
        },
    })
}

pub fn payment_from_item(item: &Item) -> anyhow::Result<Payment> {
    Ok(Payment {
        id: get_s(item, "paymentId")?.parse().map_err(|_| anyhow!("bad paymentId"))?,
        order: get_s(item, "orderId")?.parse().map_err(|_| anyhow!("bad orderId"))?,
        user: UserId::new(get_u64(item, "userId")?).map_err(|e| anyhow!("userId: {e}"))?,
        status: PaymentStatus::parse(get_s(item, "status")?).ok_or_else(|| anyhow!("unknown payment status"))?,
        amount: get_money(item, "amount")?,
        reason: item.get("reason").map(|_| get_s(item, "reason").map(str::to_owned)).transpose()?,
        entry: match item.get("entryId") {
            Some(_) => Some(get_s(item, "entryId")?.parse().map_err(|_| anyhow!("bad entryId"))?),
            None => None,
        },
        at: get_time(item, "createdAt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn p(id: u64) -> ProductId {
        ProductId::new(id).unwrap()
    }

    /// Order, stock of products 1 and 2, their sales, balance, coupon, record, outbox.
    fn items() -> Vec<PayItem> {
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

    fn with(failed: &[(usize, &str)]) -> Vec<CancellationReason> {
        (0..items().len())
            .map(|i| failed.iter().find(|(at, _)| *at == i).map_or_else(|| reason("None"), |(_, code)| reason(code)))
            .collect()
    }

    #[test]
    fn each_failed_condition_maps_to_its_refusal() {
        assert_eq!(classify_payment(&items(), &with(&[(0, "ConditionalCheckFailed")])), PayRejection::AlreadyPaid);
        assert_eq!(classify_payment(&items(), &with(&[(2, "ConditionalCheckFailed")])), PayRejection::OutOfStock(p(2)));
        assert_eq!(
            classify_payment(&items(), &with(&[(5, "ConditionalCheckFailed")])),
            PayRejection::InsufficientBalance
        );
        assert_eq!(
            classify_payment(&items(), &with(&[(6, "ConditionalCheckFailed")])),
            PayRejection::CouponUnavailable
        );
    }

    #[test]
    fn the_refusal_a_customer_can_act_on_first_wins() {
        let reasons = with(&[(1, "ConditionalCheckFailed"), (5, "ConditionalCheckFailed")]);
        assert_eq!(classify_payment(&items(), &reasons), PayRejection::OutOfStock(p(1)));
        let reasons = with(&[(0, "ConditionalCheckFailed"), (1, "ConditionalCheckFailed")]);
        assert_eq!(classify_payment(&items(), &reasons), PayRejection::AlreadyPaid);
    }

    #[test]
    fn an_existing_key_record_means_replay() {
        let mut items = items();
        items.push(PayItem::IdempotencyRecord);
        let mut reasons = with(&[(0, "ConditionalCheckFailed")]);
        reasons.push(reason("ConditionalCheckFailed"));
        assert_eq!(classify_payment(&items, &reasons), PayRejection::KeyUsed);
    }

    #[test]
    fn a_conflict_alone_is_retried_and_anything_else_is_reported() {
        assert_eq!(classify_payment(&items(), &with(&[(1, "TransactionConflict")])), PayRejection::Conflict);
        assert_eq!(
            classify_payment(&items(), &with(&[(5, "ConditionalCheckFailed"), (1, "TransactionConflict")])),
            PayRejection::InsufficientBalance
        );
        assert!(
            matches!(classify_payment(&items(), &with(&[(8, "ValidationError")])), PayRejection::Other(t) if t.contains("Outbox"))
        );
    }
}
