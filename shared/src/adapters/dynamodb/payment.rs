//! Plans ([`crate::orders::plan`]) carried out as one `TransactWriteItems`: each step
//! becomes one item, and DynamoDB's cancellation reasons come back as the steps that
//! refused and what each found. What a refusal means is the plan's to say.
//!
//! | step | item | write | condition |
//! |---|---|---|---|
//! | order, paying | `ORDER#o` / `ORDER` | status PAID, paidAt, paymentId | `status = PENDING_PAYMENT AND payBy > now` |
//! | order, refunding | `ORDER#o` / `ORDER` | status REFUNDED, cancelledAt, refundEntryId | `status = PAID AND paymentId = p` |
//! | order, cancelling | `ORDER#o` / `ORDER` | status CANCELLED, cancelledAt | `status = PENDING_PAYMENT` |
//! | stock, out / back | `PRODUCT#p` / `PRODUCT`, or its buckets `PRODUCT#p#k` / `STOCK` | `stock − q` / `stock + q` | exists, and `stock >= q` out |
//! | sales, out / back | `SALES#<day>#<the order's shard>` / `PRODUCT#p` | `ADD quantity ±q` | back: `quantity >= q` |
//! | balance (pending entry) | `USER#u` / `PROFILE` | the ledger's update ([`BalanceUpdate`]) | exists, covers the debit or stays under the maximum |
//! | debit from the balance seen | `USER#u` / `PROFILE` | balance − amount, seq + 1 | exists, `seq` as seen, covers it |
//! | history | `USER#u` / `HIST#<seq>` | the entry's row | new |
//! | coupon, out / back | `USER#u` / `COUPON#c` | usedAt, orderId / REMOVE both | out: unused, `usableUntil > now`; back: used by this order, `usableUntil > now` |
//! | payment record | `ORDER#o` / `PAYMENT#pay` | the record / status REFUNDED, refundedAt | new / exists |
//! | event | outbox `ORDER#o` / `<TYPE>` | the event, listed for the sweeper | new |
//! | key | `USER#u` or `OPERATORS` / `IDEM#k` | the idempotency record | new |
//!
//! The order's and the balance's items come back as they were when refused, so the
//! refusal says what the order's status was, whether the payer exists, and whether a
//! balance seen had moved on. A refused payment is only counted on its order
//! ([`DynamoStore::count_failure`]).
//!
//! A product whose stock is in buckets ([`crate::catalog`]) gives a line from the
//! buckets as this process last read them (any read of them: a `GET`, the first
//! payment's own read when it had none, a refusal), less what it has taken
//! since: one that holds the line, found from a random start so that concurrent payers
//! spread, or several when none holds it alone. It takes a refund back into one bucket
//! at random. What it last read may be stale (other processes take too), so a bucket
//! short of its line is not the product out of stock: the commit reads the product's
//! buckets and tries again from those that hold the line, split over several if no one
//! holds it alone ([`shards::take_from`]); only buckets that together cannot cover the
//! line are `OUT_OF_STOCK`. These tries are the store's own: the plan is the same plan.

use std::collections::HashMap;

use anyhow::anyhow;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, Update};

use super::idempotency::{KeyReused, Record, Target};
use super::ledger::{balance_seen, ledger_row, BalanceUpdate};
use super::orders::{order_from_item, payment_from_item, payment_item};
use super::transaction::{Refusal, Transaction};
use super::{get_s, keys, n, s, DbError, DynamoStore};
use crate::balance::{BalanceReader, BalanceSeen};
use crate::clock::rfc3339;
use crate::feed::events::OrderEvent;
use crate::ids::{EntryId, IdempotencyKey, OrderId, ProductId, UserId};
use crate::money::Money;
use crate::orders::plan::{self, Found, OrderMove, Plan, Refused, Role, Step, Way};
use crate::orders::{
    Canceller, Order, OrderCanceller, OrderError, OrderPayer, OrderStatus, Paid, PaymentFailure, PlanStore,
};
use crate::retry::RetryPolicy;
use crate::shards;

impl PlanStore for DynamoStore {
    async fn commit(&self, plan: &Plan) -> Result<Result<(), Refused>, OrderError> {
        let mut picks = self.stock_picks(plan).await?;
        let policy = RetryPolicy::STOCK_BUCKETS;
        for round in 0..=policy.max_retries as usize {
            if round > 0 {
                let pause = policy.delay(round as u32 - 1).unwrap_or_default();
                tokio::time::sleep(pause).await;
            }
            let transaction = self.transaction(plan, &picks, round)?;
            let refusal = match self.transact(&transaction).await? {
                Ok(()) => return Ok(Ok(())),
                Err(refusal) => refusal,
            };
            let mut refused = self.refused(plan, &refusal)?;
            let held = self.repick_short_buckets(plan, &refused, &mut picks).await?;
            if held.is_empty() {
                return Ok(Err(refused));
            }
            refused.steps.retain(|(role, _)| !matches!(role, Role::Stock(product) if held.contains(product)));
            if !refused.steps.is_empty() {
                // Refused by something else too: that is the plan's to answer.
                return Ok(Err(refused));
            }
        }
        Err(OrderError::Unavailable(anyhow!(
            "{}: the stock buckets kept changing under {} tries",
            plan.what,
            policy.max_retries + 1
        )))
    }

    async fn settle_entry(
        &self,
        user: UserId,
        entry: EntryId,
        key: Option<&IdempotencyKey>,
    ) -> Result<Money, OrderError> {
        Ok(self.finish_entry(user, entry, key).await?.balance_after)
    }

    async fn balance_now(&self, user: UserId) -> Result<Money, OrderError> {
        Ok(BalanceReader::balance(self, user).await?)
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
            None => BalanceReader::balance(self, order.user).await?,
        };
        Ok(Paid { payment, balance_after, replayed: true })
    }

    async fn record_failure(&self, order: &Order, failure: PaymentFailure) -> Result<(), OrderError> {
        Ok(self.count_failure(order, &failure).await?)
    }
}

impl OrderCanceller for DynamoStore {
    async fn cancel_key_used(&self, by: Canceller, key: &IdempotencyKey, order: &Order) -> Result<bool, OrderError> {
        let scope = plan::cancel_scope(by, order);
        match self.find_idempotency_record(scope, key, &order.cancel_fingerprint()).await? {
            None => Ok(false),
            Some(Ok(stored)) if stored.target == Target::Order(order.id) => Ok(true),
            Some(_) => Err(OrderError::IdempotencyKeyReused),
        }
    }
}

/// Where to take `quantity` from buckets holding `levels` ([`shards::take_from`] from a
/// random start), taken off `levels`; `None` when they hold too little.
fn take_noted(levels: &mut [u64], quantity: u64) -> Option<Vec<(u32, u64)>> {
    let take = shards::take_from(levels, quantity, fastrand::usize(0..levels.len().max(1)))?;
    for (k, q) in &take {
        levels[*k as usize] -= q;
    }
    Some(take)
}

/// Bucket numbers of `product` with their quantities, as transaction items.
fn bucket_picks(product: ProductId, take: Vec<(u32, u64)>) -> Vec<(keys::Key, u64)> {
    take.into_iter().map(|(k, q)| (keys::stock_bucket(product, k), q)).collect()
}

/// DynamoDB's most items in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// Where each stock step of a plan takes its quantity from, or gives it back to: by
/// step, the items and how much each. A product of one bucket is its own item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockPicks(HashMap<usize, Vec<(keys::Key, u64)>>);

impl StockPicks {
    fn of(&self, step: usize) -> &[(keys::Key, u64)] {
        self.0.get(&step).map(Vec::as_slice).unwrap_or_default()
    }
}

fn built<T>(built: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, DbError> {
    built.map_err(|e| DbError::Other(anyhow!("build a plan's item: {e}")))
}

impl DynamoStore {
    /// Where each stock step of `plan` goes first: a product's own item, or its buckets
    /// as this process last saw them ([`DynamoStore::hint_levels`], less what it has
    /// taken since; read first where it never saw them, by one payer while the others
    /// that arrive meanwhile wait for its read): the line from one that holds it, found
    /// from a random start, or split over the fullest when none holds it alone; from one
    /// bucket at random when they looked too short (DynamoDB then says whether they are).
    pub async fn stock_picks(&self, plan: &Plan) -> Result<StockPicks, DbError> {
        let products: Vec<ProductId> = plan
            .steps
            .iter()
            .filter_map(|step| if let Step::Stock { product, .. } = step { Some(*product) } else { None })
            .collect();
        if products.is_empty() {
            return Ok(StockPicks::default());
        }
        let buckets = self.buckets_of(&products).await?;
        let unseen = self.unseen_buckets(plan, &buckets);
        if !unseen.is_empty() {
            match self.first_level_read.try_lock() {
                Ok(_reading) => {
                    for (product, levels) in self.levels_of(&unseen).await? {
                        self.hint_levels(product, levels);
                    }
                }
                // Another payer is reading them: its read serves this one too. Should it
                // fail, this one picks at random rather than queue for a read of its own.
                Err(_) => drop(self.first_level_read.lock().await),
            }
        }
        let mut picks = StockPicks::default();
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::Stock { product, quantity, way } = step {
                let quantity = u64::from(quantity.get());
                // A product that is not there refuses on its own item.
                let at = match buckets.get(product).copied().unwrap_or(1) {
                    1 => vec![(keys::product(*product), quantity)],
                    n => self.first_picks(*product, n, quantity, *way),
                };
                picks.0.insert(i, at);
            }
        }
        Ok(picks)
    }

    /// The products of `plan`'s lines out whose buckets (how many: `buckets`) this
    /// process has no hint of.
    fn unseen_buckets(&self, plan: &Plan, buckets: &HashMap<ProductId, u32>) -> Vec<(ProductId, u32)> {
        let hints = self.stock_hints.read().unwrap_or_else(|p| p.into_inner());
        let mut unseen: Vec<(ProductId, u32)> = plan
            .steps
            .iter()
            .filter_map(|step| {
                let Step::Stock { product, way: Way::Out, .. } = step else { return None };
                let n = buckets.get(product).copied().unwrap_or(1);
                let seen = hints.get(product).is_some_and(|levels| levels.len() == n as usize);
                (n > 1 && !seen).then_some((*product, n))
            })
            .collect();
        unseen.sort_unstable_by_key(|(product, _)| *product);
        unseen.dedup();
        unseen
    }

    /// Where a line of `quantity` of `product` (in `n` buckets) goes first: out, from
    /// the buckets the hint says hold it (taken off the hint); back, or with no hint that
    /// covers it, one bucket at random.
    fn first_picks(&self, product: ProductId, n: u32, quantity: u64, way: Way) -> Vec<(keys::Key, u64)> {
        if way == Way::Out {
            let mut hints = self.stock_hints.write().unwrap_or_else(|p| p.into_inner());
            if let Some(levels) = hints.get_mut(&product).filter(|levels| levels.len() == n as usize) {
                if let Some(take) = take_noted(levels, quantity) {
                    return bucket_picks(product, take);
                }
            }
        }
        vec![(keys::stock_bucket(product, fastrand::u32(0..n)), quantity)]
    }

    /// Notes the stock of `product`'s buckets as just read: where this process's next
    /// payments of it look first. Any read of them may note it; a pick takes its line off.
    pub(crate) fn hint_levels(&self, product: ProductId, levels: Vec<u64>) {
        self.stock_hints.write().unwrap_or_else(|p| p.into_inner()).insert(product, levels);
    }

    /// Drops what this process saw in `product`'s buckets (a restock moved them).
    pub(crate) fn forget_levels(&self, product: ProductId) {
        self.stock_hints.write().unwrap_or_else(|p| p.into_inner()).remove(&product);
    }

    /// For each product whose bucket was short of its line in `refused`: the buckets as
    /// they are now, and a pick from those that hold the line. The products whose
    /// buckets together hold their lines (their refusal was only a bucket's).
    async fn repick_short_buckets(
        &self,
        plan: &Plan,
        refused: &Refused,
        picks: &mut StockPicks,
    ) -> Result<Vec<ProductId>, OrderError> {
        let mut held = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let Step::Stock { product, quantity, way: Way::Out } = step else { continue };
            if !refused.steps.iter().any(|(role, _)| *role == Role::Stock(*product)) {
                continue;
            }
            let buckets = self.buckets_of(&[*product]).await?.get(product).copied().unwrap_or(1);
            if buckets == 1 {
                continue;
            }
            let mut levels = self.bucket_levels(*product, buckets).await?;
            let take = take_noted(&mut levels, u64::from(quantity.get()));
            // What the next payment of this process starts from.
            self.hint_levels(*product, levels);
            if let Some(take) = take {
                picks.0.insert(i, bucket_picks(*product, take));
                held.push(*product);
            }
        }
        Ok(held)
    }

    /// The transaction that carries `plan` out with its stock at `picks`: one item per
    /// step, in the plan's order, and one per bucket a line is split over. `round`
    /// numbers the store's tries of the plan (each a request of its own).
    pub fn transaction(&self, plan: &Plan, picks: &StockPicks, round: usize) -> Result<Transaction<Role>, OrderError> {
        let token = if round == 0 { plan.attempt.clone() } else { format!("{}.{round}", plan.attempt) };
        let mut transaction = Transaction::new(plan.what.clone()).with_token(token);
        for (i, step) in plan.steps.iter().enumerate() {
            let role = step.role();
            match step {
                Step::Order(change) => transaction.update(role, self.order_update(plan, change)?),
                Step::Stock { product, quantity, way } => {
                    let (expression, condition) = match way {
                        Way::Out => ("SET stock = stock - :q", "attribute_exists(pk) AND stock >= :q"),
                        Way::Back => ("SET stock = stock + :q", "attribute_exists(pk)"),
                    };
                    let at = picks.of(i);
                    if at.iter().map(|(_, q)| q).sum::<u64>() != u64::from(quantity.get()) {
                        return Err(
                            anyhow!("the stock picks of product {product} do not add up to its line: {at:?}").into()
                        );
                    }
                    for (item, q) in at {
                        let update = Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(item.item()))
                            .update_expression(expression)
                            .condition_expression(condition)
                            .expression_attribute_values(":q", n(q));
                        transaction.update(role, built(update.build())?);
                    }
                }
                Step::Sales { day, product, quantity, way, of } => {
                    let quantity = i64::from(quantity.get());
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::sales(*day, *product, *of).item()))
                        .expression_attribute_values(":q", n(quantity));
                    let update = match way {
                        // Makes the day's row if need be.
                        Way::Out => update
                            .update_expression("SET #day = :day, productId = :product ADD quantity :q")
                            .expression_attribute_names("#day", "day")
                            .expression_attribute_values(":day", s(day.to_string()))
                            .expression_attribute_values(":product", n(*product)),
                        // Never below zero: it was counted when sold.
                        Way::Back => update
                            .update_expression("ADD quantity :minus")
                            .condition_expression("quantity >= :q")
                            .expression_attribute_values(":minus", n(-quantity)),
                    };
                    transaction.update(role, built(update.build())?);
                }
                Step::Balance(change) => {
                    transaction.update(role, BalanceUpdate::new(change).transaction_item(&self.table)?)
                }
                Step::DebitSeen { change, seen } => {
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::profile(change.user).item()))
                        .update_expression("SET balance = balance - :amount, seq = :next")
                        .condition_expression("attribute_exists(pk) AND seq = :seen AND balance >= :amount")
                        .expression_attribute_values(":amount", n(change.amount.money()))
                        .expression_attribute_values(":seen", n(seen.seq))
                        .expression_attribute_values(":next", n(seen.seq + 1))
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
                    transaction.update(role, built(update.build())?);
                }
                Step::History(entry) => transaction.put(role, self.new_item(ledger_row(plan.user, entry))?),
                Step::Coupon { coupon, way } => {
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::coupon_copy(plan.user, *coupon).item()))
                        .expression_attribute_values(":at", s(rfc3339(plan.at)))
                        .expression_attribute_values(":order", s(plan.order.to_string()));
                    let update = match way {
                        Way::Out => {
                            update.update_expression("SET usedAt = :at, orderId = :order").condition_expression(
                                "attribute_exists(pk) AND attribute_not_exists(usedAt) AND usableUntil > :at",
                            )
                        }
                        Way::Back => update
                            .update_expression("REMOVE usedAt, orderId")
                            .condition_expression("orderId = :order AND usableUntil > :at"),
                    };
                    transaction.update(role, built(update.build())?);
                }
                Step::RecordPayment(payment) => transaction.put(role, self.new_item(payment_item(payment))?),
                Step::PaymentRefunded { payment } => {
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(keys::payment(plan.order, *payment).item()))
                        .update_expression("SET #status = :refunded, refundedAt = :at")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":refunded", s(OrderStatus::Refunded.as_str()))
                        .expression_attribute_values(":at", s(rfc3339(plan.at)));
                    transaction.update(role, built(update.build())?);
                }
                Step::Emit(event) => transaction.put(role, self.outbox_put(event)?),
                Step::ClaimKey(claim) => {
                    let record = Record {
                        scope: claim.scope,
                        key: &claim.key,
                        fingerprint: claim.fingerprint.clone(),
                        target: claim.target,
                        entry: claim.entry,
                        at: plan.at,
                    };
                    let put = match claim.seq {
                        Some(seq) => record.put_materialised(&self.table, seq)?,
                        None => record.put(&self.table)?,
                    };
                    transaction.put(role, put);
                }
            }
        }
        if transaction.items().len() > MAX_TRANSACTION_ITEMS {
            // Only lines split over many buckets get here: a restock levels them again.
            return Err(OrderError::Unavailable(anyhow!(
                "{}: {} items, its lines split over too many stock buckets",
                plan.what,
                transaction.items().len()
            )));
        }
        Ok(transaction)
    }

    /// The order's own item, moved only from the status the plan read; on a refusal it
    /// comes back as it was, telling paid, cancelled, refunded and expired apart.
    fn order_update(&self, plan: &Plan, change: &OrderMove) -> Result<Update, DbError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::order(plan.order).item()))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":at", s(rfc3339(plan.at)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let pending = s(OrderStatus::PendingPayment.as_str());
        let update = match change {
            OrderMove::Pay { payment } => update
                // Its sales are counted on the order's shard ([`keys::sales`]).
                .update_expression("SET #status = :paid, paidAt = :at, paymentId = :payment, salesSharded = :sharded")
                .condition_expression("#status = :pending AND payBy > :at")
                .expression_attribute_values(":sharded", AttributeValue::Bool(true))
                .expression_attribute_values(":paid", s(OrderStatus::Paid.as_str()))
                .expression_attribute_values(":pending", pending)
                .expression_attribute_values(":payment", s(payment.to_string())),
            OrderMove::Refund { payment, entry } => {
                let update = update
                    .condition_expression("#status = :paid AND paymentId = :payment")
                    .expression_attribute_values(":refunded", s(OrderStatus::Refunded.as_str()))
                    .expression_attribute_values(":paid", s(OrderStatus::Paid.as_str()))
                    .expression_attribute_values(":payment", s(payment.to_string()));
                match entry {
                    Some(entry) => update
                        .update_expression("SET #status = :refunded, cancelledAt = :at, refundEntryId = :entry")
                        .expression_attribute_values(":entry", s(entry.to_string())),
                    None => update.update_expression("SET #status = :refunded, cancelledAt = :at"),
                }
            }
            OrderMove::Cancel => update
                .update_expression("SET #status = :cancelled, cancelledAt = :at")
                .condition_expression("#status = :pending")
                .expression_attribute_values(":cancelled", s(OrderStatus::Cancelled.as_str()))
                .expression_attribute_values(":pending", pending),
        };
        built(update.build())
    }

    /// An order's event as a new outbox item, listed for the sweeper until the relay
    /// marks it published.
    fn outbox_put(&self, event: &OrderEvent) -> Result<Put, DbError> {
        let event_id = event.event_id();
        let at = rfc3339(event.at);
        let mut item = keys::order_event(event.order, event.kind).item();
        item.insert("orderId".to_owned(), s(event.order.to_string()));
        item.insert("payload".to_owned(), s(event.payload.to_string()));
        item.insert("createdAt".to_owned(), s(&at));
        item.insert("gsi1pk".to_owned(), s(keys::unpublished_gsi1pk(&event.order.to_string())));
        item.insert("gsi1sk".to_owned(), s(format!("{at}#{event_id}")));
        item.insert("eventId".to_owned(), s(event_id));
        let put = Put::builder()
            .table_name(&self.outbox_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build();
        built(put)
    }

    /// What each refusing step of `plan` found: the order's stored status, a payer who
    /// is gone, a balance seen that moved on; the other steps only say that they refused.
    fn refused(&self, plan: &Plan, refusal: &Refusal<Role>) -> Result<Refused, OrderError> {
        let mut steps = Vec::new();
        for (role, old) in refusal.iter() {
            let exists = old.is_some_and(|item| item.contains_key("pk"));
            let found = match role {
                Role::Order => match old.filter(|_| exists) {
                    None => Found::Missing,
                    Some(item) => match get_s(item, "status").ok().and_then(OrderStatus::parse) {
                        Some(status) => Found::Order(status),
                        None => return Err(anyhow!("order item with an unknown status: {item:?}").into()),
                    },
                },
                Role::Balance if !exists => Found::Missing,
                Role::Balance => match (seen_by(plan), old.map(balance_seen).transpose()?) {
                    (Some(seen), Some(now)) if now.seq != seen.seq => {
                        self.tell(|probe| probe.payment_balance_moved());
                        Found::Moved(now)
                    }
                    _ => Found::Refused,
                },
                _ => Found::Refused,
            };
            steps.push((role, found));
        }
        Ok(Refused { steps })
    }
}

/// The balance a plan's debit was made from, if it was made from one seen.
fn seen_by(plan: &Plan) -> Option<BalanceSeen> {
    plan.steps.iter().find_map(|step| if let Step::DebitSeen { seen, .. } = step { Some(*seen) } else { None })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
    use time::macros::datetime;

    use super::*;
    use crate::adapters::dynamodb::transaction::{read_cancellation, Cancelled};
    use crate::adapters::dynamodb::Item;
    use crate::ids::{PaymentId, ProductId};

    fn p(id: u64) -> ProductId {
        ProductId::new(id).unwrap()
    }

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn order() -> Order {
        crate::orders::plan::tests::order(true)
    }

    fn store() -> DynamoStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "shop-main")
    }

    /// Every stock step on its product's own item (products of one bucket).
    fn own_items(plan: &Plan) -> StockPicks {
        let mut picks = StockPicks::default();
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::Stock { product, quantity, .. } = step {
                picks.0.insert(i, vec![(keys::product(*product), u64::from(quantity.get()))]);
            }
        }
        picks
    }

    fn update(item: &TransactWriteItem) -> &Update {
        item.update().expect("an update")
    }

    fn payment_plan(seen: Option<(BalanceSeen, usize)>) -> (Order, Plan) {
        let order = order();
        let record = plan::payment_record(&order, PaymentId::generate(), EntryId::generate(), order.created_at);
        let key = IdempotencyKey::parse("pay-1").unwrap();
        let plan = plan::payment(&order, &record, Some(&key), seen).unwrap();
        (order, plan)
    }

    #[test]
    fn a_payment_plan_is_one_item_per_step_each_on_its_key_with_its_condition() {
        let (order, plan) = payment_plan(None);
        let transaction = store().transaction(&plan, &own_items(&plan), 0).unwrap();
        assert_eq!(transaction.roles(), plan.roles());
        let items = transaction.items();
        let status = update(&items[0]);
        assert_eq!(status.key()["pk"], s(format!("ORDER#{}", order.id)));
        assert_eq!(status.condition_expression(), Some("#status = :pending AND payBy > :at"));
        assert_eq!(status.expression_attribute_values().unwrap()[":at"], s("2026-11-24T10:00:00.000Z"));
        let stock = update(&items[2]);
        assert_eq!(
            (stock.key()["pk"].clone(), stock.condition_expression()),
            (s("PRODUCT#2"), Some("attribute_exists(pk) AND stock >= :q"))
        );
        assert_eq!(stock.expression_attribute_values().unwrap()[":q"], n(3));
        let sales = update(&items[3]);
        assert_eq!(
            (sales.key()["pk"].clone(), sales.key()["sk"].clone()),
            (
                s(keys::sales(datetime!(2026-11-24 0:00 UTC).date(), ProductId::new(1).unwrap(), Some(plan.order)).pk),
                s("PRODUCT#00000000000000000001")
            )
        );
        let balance = update(&items[5]);
        assert_eq!(balance.key()["sk"], s("PROFILE"));
        assert_eq!(balance.expression_attribute_values().unwrap()[":bound"], n("45"));
        let coupon = update(&items[6]);
        assert_eq!(coupon.key()["sk"], s("COUPON#00000000000000000009"));
        let record = items[7].put().unwrap();
        let Step::RecordPayment(payment) = &plan.steps[7] else { panic!("the record") };
        assert_eq!(get_s(record.item(), "sk").unwrap(), format!("PAYMENT#{}", payment.id));
        let outbox = items[8].put().unwrap();
        assert_eq!(outbox.table_name(), "shop-outbox");
        assert_eq!(get_s(outbox.item(), "sk").unwrap(), "ORDER_PAID");
        let order_id = get_s(outbox.item(), "orderId").unwrap();
        assert_eq!(get_s(outbox.item(), "gsi1pk").unwrap(), keys::unpublished_gsi1pk(order_id));
        assert_eq!(get_s(items[9].put().unwrap().item(), "sk").unwrap(), "IDEM#pay-1");
    }

    #[test]
    fn a_line_split_over_buckets_is_one_item_per_bucket_and_each_try_is_a_request_of_its_own() {
        let (_, plan) = payment_plan(None);
        let mut picks = own_items(&plan);
        // Product 2's line of 3: 2 from bucket 5, 1 from bucket 0.
        picks.0.insert(2, vec![(keys::stock_bucket(p(2), 5), 2), (keys::stock_bucket(p(2), 0), 1)]);
        let transaction = store().transaction(&plan, &picks, 2).unwrap();
        assert_eq!(transaction.items().len(), plan.steps.len() + 1);
        assert_eq!(transaction.roles()[2..4], [Role::Stock(p(2)), Role::Stock(p(2))]);
        for (item, (pk, q)) in transaction.items()[2..4].iter().zip([("PRODUCT#2#5", 2), ("PRODUCT#2#0", 1)]) {
            let stock = update(item);
            assert_eq!((stock.key()["pk"].clone(), stock.key()["sk"].clone()), (s(pk), s("STOCK")));
            assert_eq!(stock.condition_expression(), Some("attribute_exists(pk) AND stock >= :q"));
            assert_eq!(stock.expression_attribute_values().unwrap()[":q"], n(q));
        }
        assert_eq!(update(&transaction.items()[4]).key()["sk"], s("PRODUCT#00000000000000000001"), "then sales");

        picks.0.insert(2, vec![(keys::stock_bucket(p(2), 5), 2)]);
        let short = store().transaction(&plan, &picks, 0);
        assert!(matches!(short, Err(OrderError::Unexpected(_))), "picks that do not add up to the line");
    }

    #[test]
    fn a_debit_from_a_balance_seen_commits_only_at_its_seq_with_its_history_row() {
        let seen = BalanceSeen { balance: money("100.00"), seq: 7 };
        let (_, plan) = payment_plan(Some((seen, 0)));
        let transaction = store().transaction(&plan, &own_items(&plan), 0).unwrap();
        let items = transaction.items();
        let balance = update(&items[5]);
        assert_eq!(balance.condition_expression(), Some("attribute_exists(pk) AND seq = :seen AND balance >= :amount"));
        let values = balance.expression_attribute_values().unwrap();
        assert_eq!((&values[":seen"], &values[":next"], &values[":amount"]), (&n(7), &n(8), &n("45.00")));
        let history = items[6].put().unwrap();
        assert_eq!(get_s(history.item(), "sk").unwrap(), "HIST#00000000000000000008");
        assert_eq!(history.item()["balanceAfter"], n("55.00"));
        assert_eq!(history.condition_expression(), Some("attribute_not_exists(pk)"));
        assert_eq!(items[10].put().unwrap().item()["seq"], n(8), "the key names its entry's seq from the start");
    }

    #[test]
    fn a_refund_plan_gives_back_stock_sales_and_the_coupon_on_the_same_keys() {
        let order = Order {
            status: OrderStatus::Paid,
            paid_at: Some(datetime!(2026-11-24 10:05 UTC)),
            payment: Some(PaymentId::generate()),
            ..order()
        };
        let now = datetime!(2026-11-25 8:00 UTC);
        let plan = plan::refund(&order, now, Some(EntryId::generate()), None, Canceller::Operator, None).unwrap();
        let transaction = store().transaction(&plan, &own_items(&plan), 0).unwrap();
        let items = transaction.items();
        assert_eq!(update(&items[0]).condition_expression(), Some("#status = :paid AND paymentId = :payment"));
        assert!(update(&items[0]).update_expression().contains("refundEntryId"));
        assert_eq!(update(&items[1]).update_expression(), "SET stock = stock + :q");
        let sales = update(&items[3]);
        assert_eq!(
            (sales.key()["pk"].clone(), sales.condition_expression()),
            (s("SALES#2026-11-24"), Some("quantity >= :q")),
            "paid before the figures were sharded: the day's one figure"
        );
        let sharded = Order { sales_sharded: true, ..order.clone() };
        let plan = plan::refund(&sharded, now, Some(EntryId::generate()), None, Canceller::Operator, None).unwrap();
        let sales = update(&store().transaction(&plan, &own_items(&plan), 0).unwrap().items()[3]).key()["pk"].clone();
        assert_eq!(
            sales,
            s(keys::sales(datetime!(2026-11-24 0:00 UTC).date(), ProductId::new(3).unwrap(), Some(order.id)).pk)
        );
        assert!(sales.as_s().unwrap().starts_with("SALES#2026-11-24#"), "{sales:?}");
        assert_eq!(get_s(items[7].put().unwrap().item(), "sk").unwrap(), "ORDER_REFUNDED");
    }

    /// The refusal in which the steps at `failed` refused, each with `old` as its item.
    fn refusal(plan: &Plan, failed: &[(usize, Option<Item>)]) -> Refusal<Role> {
        let reasons: Vec<CancellationReason> = (0..plan.steps.len())
            .map(|i| match failed.iter().find(|(at, _)| *at == i) {
                Some((_, old)) => {
                    CancellationReason::builder().code("ConditionalCheckFailed").set_item(old.clone()).build()
                }
                None => CancellationReason::builder().code("None").build(),
            })
            .collect();
        match read_cancellation(&plan.roles(), &reasons) {
            Cancelled::Refused(refusal) => refusal,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    fn item(fields: &[(&str, aws_sdk_dynamodb::types::AttributeValue)]) -> Option<Item> {
        Some(fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect())
    }

    /// Counts the balances found moved.
    #[derive(Debug, Default)]
    struct Moved(std::sync::atomic::AtomicU64);

    impl crate::adapters::dynamodb::StoreProbe for Moved {
        fn payment_balance_moved(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_refusal_reads_back_the_orders_status_a_missing_payer_and_a_balance_that_moved() {
        let moved_count = std::sync::Arc::new(Moved::default());
        let store = store().with_probe(moved_count.clone());
        let moves = || moved_count.0.load(std::sync::atomic::Ordering::Relaxed);
        let seen = BalanceSeen { balance: money("100.00"), seq: 7 };
        let (_, plan) = payment_plan(Some((seen, 0)));
        let order = item(&[("pk", s("ORDER#o")), ("status", s("PAID"))]);
        let refused = store.refused(&plan, &refusal(&plan, &[(0, order), (2, None)])).unwrap();
        assert_eq!(
            refused.steps,
            [(Role::Order, Found::Order(OrderStatus::Paid)), (Role::Stock(p(2)), Found::Refused)]
        );
        assert_eq!(store.refused(&plan, &refusal(&plan, &[(0, None)])).unwrap().steps, [(Role::Order, Found::Missing)]);

        let profile = |seq: u64| item(&[("pk", s("USER#7")), ("balance", n("100.00")), ("seq", n(seq))]);
        let same = store.refused(&plan, &refusal(&plan, &[(5, profile(7))])).unwrap();
        assert_eq!(same.steps, [(Role::Balance, Found::Refused)], "the seq seen: the balance said no");
        assert_eq!(moves(), 0);
        let moved = store.refused(&plan, &refusal(&plan, &[(5, profile(8))])).unwrap();
        let now = BalanceSeen { balance: money("100.00"), seq: 8 };
        assert_eq!(moved.steps, [(Role::Balance, Found::Moved(now))], "another change came first");
        assert_eq!(moves(), 1, "told to the store's probe");
        let gone = store.refused(&plan, &refusal(&plan, &[(5, None)])).unwrap();
        assert_eq!(gone.steps, [(Role::Balance, Found::Missing)], "no profile: an unknown payer");

        let unknown = item(&[("pk", s("ORDER#o")), ("status", s("LOST"))]);
        assert!(store.refused(&plan, &refusal(&plan, &[(0, unknown)])).is_err(), "an unknown status is a fault");
    }
}
