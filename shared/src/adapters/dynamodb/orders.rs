//! Orders on DynamoDB: placing one, reading it by key, and its items.
//!
//! An order is one item (`ORDER#o` / `ORDER`) that carries everything a read needs:
//! lines, totals, status, the successful payment's id and time, and a bounded record
//! of refused payments — `failedAttempts` (a count) and `recentFailures`, a ring of
//! [`KEPT_FAILURES`] slots written at `failedAttempts mod KEPT_FAILURES`. So a read is
//! one `GetItem` however often a payment was refused. The successful payment's own
//! record (`ORDER#o` / `PAYMENT#p`) is read by its key when needed (replays, audits).

use std::collections::HashMap;

use anyhow::anyhow;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::idempotency::{Record, Target};
use super::transaction::Transaction;
use super::{
    db_error, get_money, get_optional_parsed, get_optional_time, get_s, get_time, get_u64, keys, n, s, DbError,
    DynamoStore, Item,
};
use crate::balance::BalanceError;
use crate::clock::rfc3339;
use crate::coupons::IssuedCoupon;
use crate::ids::{CouponId, IdempotencyKey, OrderId, ProductId, Quantity, UserId};
use crate::orders::{
    self, Failures, Order, OrderError, OrderLine, OrderStatus, OrderStore, Payment, PaymentFailure, Placed,
    KEPT_FAILURES,
};
use crate::pagination::{Page, PageRequest};

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

/// The items of placing an order with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlaceItem {
    Order,
    Key,
}

impl OrderStore for DynamoStore {
    /// Two `BatchGetItem`s at once: the profile and the coupon copy, strongly
    /// consistent (a copy issued a moment ago counts); the products eventually
    /// consistent, for half the read units on what a hot product's rush reads most
    /// (their stock is not read: it is taken when the order is paid).
    async fn order_inputs(
        &self,
        user: UserId,
        products: &[ProductId],
        coupon: Option<CouponId>,
    ) -> Result<orders::OrderInputs, OrderError> {
        let profile = keys::profile(user);
        let product_keys: Vec<keys::Key> = products.iter().map(|id| keys::product(*id)).collect();
        let copy = coupon.map(|coupon| keys::coupon_copy(user, coupon));
        let wanted: Vec<keys::Key> = std::iter::once(profile.clone()).chain(copy.clone()).collect();
        let (found, priced) = futures::try_join!(
            self.get_many(&wanted, || format!("read user {user} and the coupon of an order")),
            self.get_many_eventually(&product_keys, || format!("read the products of an order of user {user}")),
        )?;
        let found: HashMap<keys::Key, Item> = found.into_iter().chain(priced).collect();
        Ok(orders::OrderInputs {
            user_exists: found.contains_key(&profile),
            products: product_keys
                .iter()
                .map(|key| found.get(key).map(|item| self.product_terms(item)).transpose())
                .collect::<Result<_, DbError>>()?,
            coupon: copy.and_then(|key| found.get(&key)).map(super::coupons::copy_from_item).transpose()?,
        })
    }

    async fn user_exists(&self, user: UserId) -> Result<bool, OrderError> {
        Ok(DynamoStore::user_exists(self, user).await?)
    }

    async fn user_coupon(&self, user: UserId, coupon: CouponId) -> Result<Option<IssuedCoupon>, OrderError> {
        let key = keys::coupon_copy(user, coupon);
        let item = self.get(&key, || format!("get coupon {coupon} of user {user}")).await?;
        Ok(item.as_ref().map(super::coupons::copy_from_item).transpose()?)
    }

    async fn place(&self, order: Order, idempotency: Option<(IdempotencyKey, String)>) -> Result<Placed, OrderError> {
        let Some((key, fingerprint)) = idempotency else {
            put_new_order(&self.client, &self.table, &order)
                .send()
                .await
                .map_err(|e| db_error(e, || format!("save order {}", order.id)))?;
            return Ok(Placed { order, replayed: false });
        };
        let mut transaction = Transaction::new(format!("save order {} with its key", order.id)).with_token(order.id);
        transaction.put(PlaceItem::Order, self.new_item(order_item(&order))?);
        let record = Record {
            scope: order.user.into(),
            key: &key,
            fingerprint,
            target: Target::Order(order.id),
            entry: None,
            at: order.created_at,
        };
        transaction.put(PlaceItem::Key, record.put(&self.table)?);
        match self.transact(&transaction).await? {
            Ok(()) => Ok(Placed { order, replayed: false }),
            Err(refusal) if refusal.failed(PlaceItem::Key) => {
                let stored = self
                    .idempotency_record(order.user, &key, &record.fingerprint)
                    .await?
                    .map_err(|_| OrderError::IdempotencyKeyReused)?;
                let Target::Order(first) = stored.target else { return Err(OrderError::IdempotencyKeyReused) };
                let order = self.load_order(first).await?.ok_or_else(|| anyhow!("order {first} vanished"))?;
                Ok(Placed { order: order.as_placed(), replayed: true })
            }
            Err(refusal) => Err(OrderError::Unexpected(anyhow!("saving order {} was refused: {refusal:?}", order.id))),
        }
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, OrderError> {
        Ok(self.load_order(id).await?)
    }

    /// One `Query` of gsi1 (`ORDERS#<user>`, newest first), one more item than the page
    /// to learn whether another page follows.
    async fn orders_of(&self, user: UserId, page: PageRequest) -> Result<Page<Order>, OrderError> {
        let before = match &page.cursor {
            None => None,
            Some(cursor) => Some(orders::cursor_position(cursor).ok_or(OrderError::BadCursor)?),
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .expression_attribute_values(":pk", s(keys::user_orders_gsi1pk(user)))
            .scan_index_forward(false)
            .limit(page.limit as i32 + 1);
        query = match before {
            None => query.key_condition_expression("gsi1pk = :pk"),
            Some(before) => query
                .key_condition_expression("gsi1pk = :pk AND gsi1sk < :before")
                .expression_attribute_values(":before", s(before)),
        };
        let found = query.send().await.map_err(|e| db_error(e, || format!("list the orders of user {user}")))?;
        let items: Vec<Order> = found.items().iter().map(order_from_item).collect::<anyhow::Result<_>>()?;
        Ok(Page::from_lookahead(items, page.limit, orders::cursor_after))
    }
}

impl DynamoStore {
    pub(super) async fn load_order(&self, id: OrderId) -> Result<Option<Order>, DbError> {
        let item = self.get(&keys::order(id), || format!("read order {id}")).await?;
        item.as_ref().map(order_from_item).transpose().map_err(DbError::Other)
    }

    /// Counts a refused payment and writes it into the ring slot its number picks. The
    /// count is one atomic `ADD`, exact under any concurrency; the slot write needs no
    /// condition. Two writes, both small, on the rare path.
    pub(super) async fn count_failure(&self, order: &Order, failure: &PaymentFailure) -> Result<(), DbError> {
        let id = order.id;
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::order(id).item()))
            .update_expression("ADD failedAttempts :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| db_error(e, || format!("count a refused payment of order {id}")))?;
        let number = get_u64(&counted.attributes.unwrap_or_default(), "failedAttempts").map_err(DbError::Other)?;
        let slot = (number % KEPT_FAILURES as u64).to_string();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::order(id).item()))
            .update_expression("SET recentFailures.#slot = :failure")
            .expression_attribute_names("#slot", slot)
            .expression_attribute_values(":failure", failure_value(number, failure))
            .send()
            .await
            .map_err(|e| db_error(e, || format!("keep refused payment {} of order {id}", failure.payment)))?;
        Ok(())
    }
}

/// A new order placed without a key: one `PutItem` of its item, refused if the id is
/// taken.
pub fn put_new_order(client: &aws_sdk_dynamodb::Client, table: &str, order: &Order) -> PutItemFluentBuilder {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(order_item(order)))
        .condition_expression("attribute_not_exists(pk)")
}

pub fn order_item(order: &Order) -> Item {
    let mut item = keys::order(order.id).item();
    item.insert("orderId".to_owned(), s(order.id.to_string()));
    item.insert("userId".to_owned(), n(order.user));
    item.insert("gsi1pk".to_owned(), s(keys::user_orders_gsi1pk(order.user)));
    item.insert("gsi1sk".to_owned(), s(orders::list_position(order.created_at, order.id)));
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
    item.insert("payBy".to_owned(), s(rfc3339(order.pay_by)));
    if let Some(paid_at) = order.paid_at {
        item.insert("paidAt".to_owned(), s(rfc3339(paid_at)));
    }
    if let Some(payment) = order.payment {
        item.insert("paymentId".to_owned(), s(payment.to_string()));
    }
    if let Some(cancelled_at) = order.cancelled_at {
        item.insert("cancelledAt".to_owned(), s(rfc3339(cancelled_at)));
    }
    if order.sales_sharded {
        item.insert("salesSharded".to_owned(), AttributeValue::Bool(true));
    }
    if let Some(entry) = order.refund_entry {
        item.insert("refundEntryId".to_owned(), s(entry.to_string()));
    }
    item.insert("failedAttempts".to_owned(), n(order.failures.count));
    let slots = order.failures.latest.iter().enumerate().map(|(i, failure)| {
        let number = order.failures.count - (order.failures.latest.len() - 1 - i) as u64;
        ((number % KEPT_FAILURES as u64).to_string(), failure_value(number, failure))
    });
    item.insert("recentFailures".to_owned(), AttributeValue::M(slots.collect()));
    item
}

fn failure_value(number: u64, failure: &PaymentFailure) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("number".to_owned(), n(number)),
        ("paymentId".to_owned(), s(failure.payment.to_string())),
        ("reason".to_owned(), s(failure.reason)),
        ("amount".to_owned(), n(failure.amount)),
        ("at".to_owned(), s(rfc3339(failure.at))),
    ]))
}

/// The refusal codes a failure may carry (the item stores text; the domain a code).
const FAILURE_REASONS: [&str; 3] = ["OUT_OF_STOCK", "INSUFFICIENT_BALANCE", "COUPON_UNAVAILABLE"];

fn failures_from_item(item: &Item) -> anyhow::Result<Failures> {
    let count = match item.get("failedAttempts") {
        Some(_) => get_u64(item, "failedAttempts")?,
        None => 0,
    };
    let mut numbered = Vec::new();
    if let Some(AttributeValue::M(slots)) = item.get("recentFailures") {
        for slot in slots.values() {
            let AttributeValue::M(failure) = slot else { return Err(anyhow!("a recent failure is not a map")) };
            let text = get_s(failure, "reason")?;
            let reason = FAILURE_REASONS
                .into_iter()
                .find(|known| *known == text)
                .ok_or_else(|| anyhow!("unknown payment failure reason {text}"))?;
            numbered.push((
                get_u64(failure, "number")?,
                PaymentFailure {
                    payment: get_s(failure, "paymentId")?.parse().map_err(|_| anyhow!("bad paymentId"))?,
                    reason,
                    amount: get_money(failure, "amount")?,
                    at: get_time(failure, "at")?,
                },
            ));
        }
    }
    numbered.sort_by_key(|(number, _)| *number);
    Ok(Failures { count, latest: numbered.into_iter().map(|(_, failure)| failure).collect() })
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
        pay_by: get_time(item, "payBy")?,
        paid_at: get_optional_time(item, "paidAt")?,
        payment: get_optional_parsed(item, "paymentId")?,
        cancelled_at: get_optional_time(item, "cancelledAt")?,
        refund_entry: get_optional_parsed(item, "refundEntryId")?,
        sales_sharded: item.get("salesSharded").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        failures: failures_from_item(item)?,
    })
}

pub fn payment_item(payment: &Payment) -> Item {
    let mut item = keys::payment(payment.order, payment.id).item();
    item.insert("paymentId".to_owned(), s(payment.id.to_string()));
    item.insert("orderId".to_owned(), s(payment.order.to_string()));
    item.insert("userId".to_owned(), n(payment.user));
    item.insert("status".to_owned(), s("SUCCEEDED"));
    item.insert("amount".to_owned(), n(payment.amount));
    if let Some(entry) = payment.entry {
        item.insert("entryId".to_owned(), s(entry.to_string()));
    }
    item.insert("createdAt".to_owned(), s(rfc3339(payment.at)));
    item
}

pub fn payment_from_item(item: &Item) -> anyhow::Result<Payment> {
    Ok(Payment {
        id: get_s(item, "paymentId")?.parse().map_err(|_| anyhow!("bad paymentId"))?,
        order: get_s(item, "orderId")?.parse().map_err(|_| anyhow!("bad orderId"))?,
        user: UserId::new(get_u64(item, "userId")?).map_err(|e| anyhow!("userId: {e}"))?,
        amount: get_money(item, "amount")?,
        entry: get_optional_parsed(item, "entryId")?,
        at: get_time(item, "createdAt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntryId, PaymentId};
    use crate::money::Money;

    fn at(minute: u8) -> time::OffsetDateTime {
        time::macros::datetime!(2026-11-24 10:00 UTC) + time::Duration::minutes(minute.into())
    }

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn failure(minute: u8) -> PaymentFailure {
        PaymentFailure {
            payment: PaymentId::generate(),
            reason: "OUT_OF_STOCK",
            amount: money("20.00"),
            at: at(minute),
        }
    }

    fn order() -> Order {
        Order {
            id: OrderId::generate(),
            user: UserId::new(7).unwrap(),
            status: OrderStatus::Refunded,
            lines: vec![OrderLine {
                product_id: ProductId::new(3).unwrap(),
                name: "Product 3".to_owned(),
                quantity: Quantity::new(2).unwrap(),
                unit_price: money("10.00"),
                line_total: money("20.00"),
            }],
            subtotal: money("20.00"),
            discount: money("5.00"),
            total: money("15.00"),
            coupon: Some(CouponId::new(1).unwrap()),
            created_at: at(0),
            pay_by: at(30),
            paid_at: Some(at(9)),
            payment: Some(PaymentId::generate()),
            cancelled_at: Some(at(12)),
            refund_entry: Some(EntryId::generate()),
            sales_sharded: true,
            failures: Failures { count: 7, latest: (2..7).map(failure).collect() },
        }
    }

    #[test]
    fn an_order_round_trips_with_its_failures_in_order() {
        let order = order();
        let item = order_item(&order);
        assert_eq!(item["pk"], s(format!("ORDER#{}", order.id)));
        assert_eq!(item["sk"], s("ORDER"));
        assert_eq!(item["gsi1pk"], s("ORDERS#7"));
        assert_eq!(item["gsi1sk"], s(format!("2026-11-24T10:00:00.000Z#{}", order.id)));
        assert_eq!(order_from_item(&item).unwrap(), order);
    }

    #[test]
    fn the_failure_ring_holds_the_latest_few_in_their_slots() {
        let item = order_item(&order());
        let AttributeValue::M(slots) = &item["recentFailures"] else { panic!("a map of slots") };
        assert_eq!(slots.len(), KEPT_FAILURES);
        // Failures 3..=7 of 7: number 7 sits in slot 2, number 3 in slot 3.
        let AttributeValue::M(newest) = &slots["2"] else { panic!("a failure") };
        assert_eq!(newest["number"], n(7));
        let AttributeValue::M(oldest) = &slots["3"] else { panic!("a failure") };
        assert_eq!(oldest["number"], n(3));
    }

    #[test]
    fn an_order_without_failures_reads_as_none() {
        let mut order = order();
        order.failures = Failures::default();
        let mut item = order_item(&order);
        item.remove("failedAttempts");
        item.remove("recentFailures");
        assert_eq!(order_from_item(&item).unwrap().failures, Failures::default());
    }

    #[test]
    fn a_payment_record_round_trips() {
        let order = order();
        let payment = Payment {
            id: PaymentId::generate(),
            order: order.id,
            user: order.user,
            amount: order.total,
            entry: Some(EntryId::generate()),
            at: at(9),
        };
        let item = payment_item(&payment);
        assert_eq!(item["sk"], s(format!("PAYMENT#{}", payment.id)));
        assert_eq!(payment_from_item(&item).unwrap(), payment);
    }
}
