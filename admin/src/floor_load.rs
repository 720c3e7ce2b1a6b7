//! `rushcart-admin floor --load <scenario>`: the storage's floor *under load*. Drives
//! the DynamoDB calls one of `make bench`'s scenarios makes — the same items, the same
//! conditions and update expressions, the same transaction shapes, one after another
//! as the handler makes them, from as many concurrent workers as k6 has virtual users —
//! straight from the Rust SDK (the same SDK configuration as the functions), with no
//! HTTP, no handler and no use case in between. Prints what it measured as JSON.
//!
//! It works on scratch copies of the tables (`<prefix>-floorload-main`, `-outbox`,
//! same keys, indexes and stream), seeded like the scenario's own data and deleted
//! afterwards, so the run leaves the shop's data as it found it. The local engine
//! serialises every call, so the scratch tables see the same contention as the shop's:
//! what it cannot see is the rest of the shop (the feed's relay and consumer writing the
//! outbox while payments run); that is part of rushcart's cost.
//!
//! The key shapes below are the adapters' (shared/src/adapters/dynamodb/keys.rs),
//! written out here on purpose: this is the floor, not rushcart.

pub mod layers;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use rushcart::adapters::dynamodb::table::{MAIN_TABLE, OUTBOX_TABLE};
use rushcart::clock::rfc3339;
use rushcart::ids::{CouponId, ProductId, UserId};
use rushcart::money::Money;
use rushcart_testkit::seed::{self, CouponSeed, ProductSeed};
use time::OffsetDateTime;

/// `make bench`'s scenarios, each as its k6 script runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// k6/balance.js: 100 users × 10 charge/use pairs of 1000.00, all on user 1.
    Balance,
    /// k6/coupon-rush.js: 100 users race for a coupon of 100 (gate off).
    Coupon100,
    /// k6/coupon-rush.js: 1000 users race for a coupon of 100 (gate off).
    Coupon1000,
    /// k6/payment.js: 100 users each pay an order of 3 products × 10 (orders made first).
    Payment,
    /// k6/checkout-flow.js: 100 users each take the coupon, order 1 product with it, pay.
    Flow,
    /// k6/top-products.js without the cache: 100 users read the top 5 for 20 s.
    Top,
    /// k6/unloaded.js, one request at a time: GET product.
    GetProduct,
    /// k6/unloaded.js, one request at a time: GET balance.
    GetBalance,
    /// k6/unloaded.js, one request at a time: an unkeyed charge.
    Charge,
}

/// Requests of each kind k6/unloaded.js makes.
const UNLOADED_ITERATIONS: usize = 500;

/// How long the top-5 readers read (k6/top-products.js's DURATION).
const TOP_SECONDS: u64 = 20;
const PRICE: &str = "1000.00";
const BALANCE: &str = "1000000.00";

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn pad(id: u64) -> String {
    format!("{id:020}")
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn sdk<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    err: SdkError<E, R>,
) -> anyhow::Error {
    anyhow!("{}", DisplayErrorContext(&err))
}

/// What one unit of work came to.
enum Outcome {
    Done,
    /// A condition said no, as the scenario expects of some (a coupon sold out).
    Refused,
}

/// A transaction's outcome: committed, or refused by a condition.
fn transaction_outcome<R>(sent: Result<R, SdkError<TransactWriteItemsError>>) -> anyhow::Result<Outcome> {
    match sent {
        Ok(_) => Ok(Outcome::Done),
        Err(err) => match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                if cancelled
                    .cancellation_reasons()
                    .iter()
                    .any(|reason| reason.code() == Some("ConditionalCheckFailed")) =>
            {
                Ok(Outcome::Refused)
            }
            _ => Err(sdk(err)),
        },
    }
}

/// The scratch tables a run works on.
struct Tables {
    client: Client,
    main: String,
    outbox: String,
}

/// Per-unit latencies and counts of one run.
struct Samples {
    latencies: Vec<Duration>,
    refused: usize,
    errors: Vec<String>,
    wall: Duration,
}

/// Runs `unit(tables, worker, iteration)` from `workers` concurrent tasks, which start together,
/// each `iterations` times or until `until` has passed; times every unit.
///
/// Each task first makes one untimed read, so the SDK's connection pool holds a warm
/// connection per task, as the API's does after `make bench`'s warm-up: otherwise a
/// rush of one request per task would time a hundred TCP handshakes.
async fn drive<F, Fut>(
    tables: &Arc<Tables>,
    workers: usize,
    iterations: usize,
    until: Option<Duration>,
    unit: F,
) -> Samples
where
    F: Fn(Arc<Tables>, usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Outcome>> + Send,
{
    let unit = Arc::new(unit);
    let start = Arc::new(tokio::sync::Barrier::new(workers + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let (unit, start, tables) = (unit.clone(), start.clone(), tables.clone());
        tasks.spawn(async move {
            let warm = tables
                .client
                .get_item()
                .table_name(&tables.main)
                .set_key(Some(key("FLOOR#WARM".to_owned(), "WARM".to_owned())))
                .send()
                .await;
            start.wait().await;
            if let Err(err) = warm {
                return vec![(Duration::ZERO, Err(sdk(err).context("the warm-up read")))];
            }
            let began = Instant::now();
            let mut timed = Vec::new();
            for iteration in 0..iterations {
                if until.is_some_and(|limit| began.elapsed() >= limit) {
                    break;
                }
                let t = Instant::now();
                let outcome = unit(tables.clone(), worker, iteration).await;
                timed.push((t.elapsed(), outcome));
            }
            timed
        });
    }
    start.wait().await;
    let began = Instant::now();
    let mut samples = Samples { latencies: Vec::new(), refused: 0, errors: Vec::new(), wall: Duration::ZERO };
    while let Some(joined) = tasks.join_next().await {
        let Ok(timed) = joined else {
            samples.errors.push("a worker panicked".to_owned());
            continue;
        };
        for (latency, outcome) in timed {
            samples.latencies.push(latency);
            match outcome {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Refused) => samples.refused += 1,
                Err(err) => samples.errors.push(format!("{err:#}")),
            }
        }
    }
    samples.wall = began.elapsed();
    samples
}

impl Samples {
    fn figures(mut self, scenario: Scenario, workers: usize) -> serde_json::Value {
        self.latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q| percentile_ms(&self.latencies, q);
        let units = self.latencies.len();
        let total: Duration = self.latencies.iter().sum();
        let max = self.latencies.last().copied().unwrap_or_default();
        serde_json::json!({
            "scenario": format!("{scenario:?}"),
            "workers": workers,
            "units": units,
            "refused": self.refused,
            "errors": self.errors.len(),
            "first_error": self.errors.first(),
            "seconds": self.wall.as_secs_f64(),
            "rate": units as f64 / self.wall.as_secs_f64().max(f64::EPSILON),
            "span_rate": units as f64 / max.as_secs_f64().max(f64::EPSILON),
            "avg": if units == 0 { 0.0 } else { ms(total) / units as f64 },
            "p50": at(0.50),
            "p90": at(0.90),
            "p99": at(0.99),
            "max": ms(max),
        })
    }
}

/// The nearest-rank percentile `q` of sorted latencies, in milliseconds (0 for none).
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).saturating_sub(1);
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub async fn floor_load(client: &Client, prefix: &str, scenario: Scenario) -> anyhow::Result<()> {
    on_scratch_tables(client, prefix, |tables| run(tables, scenario)).await
}

/// Runs `measure` on fresh scratch tables (`<prefix>-floorload-main`, `-outbox`), drops
/// them afterwards whatever happened, and prints what it measured.
async fn on_scratch_tables<F, Fut>(client: &Client, prefix: &str, measure: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Tables>) -> Fut,
    Fut: Future<Output = anyhow::Result<serde_json::Value>>,
{
    let tables = Arc::new(Tables {
        client: client.clone(),
        main: format!("{prefix}-floorload-main"),
        outbox: format!("{prefix}-floorload-outbox"),
    });
    // A scratch table left by an interrupted run would carry its data into this one.
    drop_tables(&tables).await;
    MAIN_TABLE.provision(client, &tables.main).await.context("create the scratch main table")?;
    OUTBOX_TABLE.provision(client, &tables.outbox).await.context("create the scratch outbox table")?;
    let measured = measure(tables.clone()).await;
    drop_tables(&tables).await;
    println!("{}", serde_json::to_string_pretty(&measured?)?);
    Ok(())
}

async fn drop_tables(tables: &Tables) {
    for name in [&tables.main, &tables.outbox] {
        let _ = tables.client.delete_table().table_name(name).send().await;
    }
}

async fn run(tables: Arc<Tables>, scenario: Scenario) -> anyhow::Result<serde_json::Value> {
    let now = OffsetDateTime::now_utc();
    let samples = match scenario {
        Scenario::Balance => {
            seed_users(&tables, 1..=1).await?;
            // One iteration of k6 is a charge then a use: two requests, each timed.
            drive(&tables, 100, 20, None, |t, _, i| async move { change_balance(&t, 1, i % 2 == 0).await }).await
        }
        Scenario::Coupon100 | Scenario::Coupon1000 => {
            let users = if scenario == Scenario::Coupon100 { 100 } else { 1000 };
            seed_users(&tables, 1..=users).await?;
            seed_coupon(&tables, 1, now).await?;
            drive(&tables, users as usize, 1, None, |t, worker, _| async move {
                issue_coupon(&t, 1, worker as u64 + 1).await
            })
            .await
        }
        Scenario::Payment => {
            seed_users(&tables, 1..=100).await?;
            seed_products(&tables, &[1, 2, 3], 1000).await?;
            // k6's setup makes the orders first; only the payments are timed.
            let mut orders = Vec::new();
            for user in 1..=100u64 {
                orders.push(create_order(&tables, user, &[(1, 10), (2, 10), (3, 10)], None, now).await?);
            }
            let orders = Arc::new(orders);
            drive(&tables, 100, 1, None, move |t, worker, _| {
                let orders = orders.clone();
                async move { pay(&t, worker as u64 + 1, &orders[worker], &[(1, 10), (2, 10), (3, 10)], None).await }
            })
            .await
        }
        Scenario::Flow => {
            seed_users(&tables, 101..=200).await?;
            seed_products(&tables, &[1], 1000).await?;
            seed_coupon(&tables, 1, now).await?;
            drive(&tables, 100, 1, None, |t, worker, _| async move { checkout(&t, 101 + worker as u64).await }).await
        }
        Scenario::Top => {
            let products: Vec<u64> = (1..=32).collect();
            seed_products(&tables, &products, 1000).await?;
            seed_sales(&tables, &products, now.date()).await?;
            drive(&tables, 100, usize::MAX, Some(Duration::from_secs(TOP_SECONDS)), move |t, _, _| async move {
                top_five(&t, now.date()).await
            })
            .await
        }
        Scenario::GetProduct => {
            seed_products(&tables, &[1], 1000).await?;
            drive(
                &tables,
                1,
                UNLOADED_ITERATIONS,
                None,
                |t, _, _| async move { read(&t, "PRODUCT#1", "PRODUCT").await },
            )
            .await
        }
        Scenario::GetBalance => {
            seed_users(&tables, 1..=1).await?;
            drive(&tables, 1, UNLOADED_ITERATIONS, None, |t, _, _| async move { read(&t, "USER#1", "PROFILE").await })
                .await
        }
        Scenario::Charge => {
            seed_users(&tables, 1..=1).await?;
            drive(&tables, 1, UNLOADED_ITERATIONS, None, |t, _, _| async move { change_balance(&t, 1, true).await })
                .await
        }
    };
    let workers = match scenario {
        Scenario::Coupon1000 => 1000,
        Scenario::GetProduct | Scenario::GetBalance | Scenario::Charge => 1,
        _ => 100,
    };
    Ok(samples.figures(scenario, workers))
}

async fn seed_users(tables: &Tables, users: std::ops::RangeInclusive<u64>) -> anyhow::Result<()> {
    let balance: Money = BALANCE.parse()?;
    let users: Vec<(UserId, Money)> = users.map(|u| Ok((UserId::new(u)?, balance))).collect::<anyhow::Result<_>>()?;
    seed::seed_users(&tables.client, &tables.main, &users, OffsetDateTime::now_utc(), &|_| {}).await?;
    Ok(())
}

async fn seed_products(tables: &Tables, ids: &[u64], stock: u64) -> anyhow::Result<()> {
    let products = ids
        .iter()
        .map(|&id| {
            Ok(ProductSeed { id: ProductId::new(id)?, name: format!("Product {id}"), price: PRICE.parse()?, stock })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    seed::seed_products(&tables.client, &tables.main, &products).await?;
    Ok(())
}

async fn seed_coupon(tables: &Tables, id: u64, now: OffsetDateTime) -> anyhow::Result<()> {
    let coupon = CouponSeed {
        id: CouponId::new(id)?,
        name: format!("Coupon {id}"),
        discount: PRICE.parse()?,
        total: 100,
        ends_at: now + time::Duration::days(30),
    };
    seed::seed_coupons(&tables.client, &tables.main, &[coupon]).await?;
    Ok(())
}

/// Today's sales of each product, as the paid orders before the top-5 run leave them.
async fn seed_sales(tables: &Tables, products: &[u64], day: time::Date) -> anyhow::Result<()> {
    for &product in products {
        tables
            .client
            .put_item()
            .table_name(&tables.main)
            .set_item(Some(key(format!("SALES#{day}"), format!("PRODUCT#{}", pad(product)))))
            .item("day", s(day.to_string()))
            .item("productId", n(product))
            .item("quantity", n(product))
            .send()
            .await
            .map_err(sdk)
            .context("seed a sales row")?;
    }
    Ok(())
}

/// A strongly consistent read of one item of the main table, which must exist.
async fn get(tables: &Tables, pk: String, sk: &str) -> anyhow::Result<HashMap<String, AttributeValue>> {
    let output = tables
        .client
        .get_item()
        .table_name(&tables.main)
        .set_key(Some(key(pk.clone(), sk.to_owned())))
        .consistent_read(true)
        .send()
        .await
        .map_err(sdk)?;
    output.item.ok_or_else(|| anyhow!("no item {pk}/{sk}"))
}

/// get-product and get-balance: one strongly consistent read.
async fn read(tables: &Tables, pk: &str, sk: &str) -> anyhow::Result<Outcome> {
    get(tables, pk.to_owned(), sk).await.map(|_| Outcome::Done)
}

/// An update as a transaction item.
fn updating(update: Update) -> TransactWriteItem {
    TransactWriteItem::builder().update(update).build()
}

/// charge-balance / use-balance without a key: the conditional update that commits the
/// change with its pending entry, the history row, the clearing of the pending entry.
async fn change_balance(tables: &Tables, user: u64, credit: bool) -> anyhow::Result<Outcome> {
    let entry = ulid::Ulid::generate().to_string();
    let (delta, condition, bound) = if credit {
        ("1000", "attribute_exists(pk) AND attribute_not_exists(#pe) AND balance <= :bound", "999999000.00")
    } else {
        ("-1000", "attribute_exists(pk) AND attribute_not_exists(#pe) AND balance >= :bound", "1000")
    };
    let at = rfc3339(OffsetDateTime::now_utc());
    let pending = HashMap::from([
        ("kind".to_owned(), s(if credit { "CHARGE" } else { "USE" })),
        ("amount".to_owned(), n(PRICE)),
        ("at".to_owned(), s(at.clone())),
    ]);
    let updated = tables
        .client
        .update_item()
        .table_name(&tables.main)
        .set_key(Some(key(format!("USER#{user}"), "PROFILE".to_owned())))
        .update_expression(BALANCE_UPDATE)
        .condition_expression(condition)
        .set_expression_attribute_names(Some(pending_names(&entry)))
        .expression_attribute_values(":d", n(delta))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":entry", AttributeValue::M(pending))
        .expression_attribute_values(":bound", n(bound))
        .return_values(ReturnValue::UpdatedNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .map_err(sdk)?;
    let attributes = updated.attributes.unwrap_or_default();
    let seq = attribute_n(&attributes, &format!("ps_{entry}"))?;
    let after = attribute_n(&attributes, &format!("pb_{entry}"))?;
    let kind = if credit { "CHARGE" } else { "USE" };
    let entry = Entry { id: &entry, seq: &seq, balance_after: &after, kind, amount: PRICE, order: None, at: &at };
    materialise(tables, user, &entry).await?;
    Ok(Outcome::Done)
}

const BALANCE_UPDATE: &str =
    "SET balance = balance + :d, seq = seq + :one, #pe = :entry, #pb = balance + :d, #ps = seq + :one";

fn pending_names(entry: &str) -> HashMap<String, String> {
    HashMap::from([
        ("#pe".to_owned(), format!("pe_{entry}")),
        ("#pb".to_owned(), format!("pb_{entry}")),
        ("#ps".to_owned(), format!("ps_{entry}")),
    ])
}

fn attribute_n(item: &HashMap<String, AttributeValue>, name: &str) -> anyhow::Result<String> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => Ok(value.clone()),
        _ => Err(anyhow!("no number {name} in the returned item")),
    }
}

/// A committed ledger entry, as the history row and the pending attributes name it.
struct Entry<'a> {
    id: &'a str,
    seq: &'a str,
    balance_after: &'a str,
    kind: &'a str,
    amount: &'a str,
    order: Option<&'a str>,
    at: &'a str,
}

/// A ledger entry's history row, `USER#u / HIST#<seq>`.
fn history_row(user: u64, entry: &Entry) -> anyhow::Result<HashMap<String, AttributeValue>> {
    let seq: u64 = entry.seq.parse().context("a history seq")?;
    let mut row = key(format!("USER#{user}"), format!("HIST#{}", pad(seq)));
    row.insert("entryId".to_owned(), s(entry.id));
    row.insert("seq".to_owned(), n(entry.seq));
    row.insert("kind".to_owned(), s(entry.kind));
    row.insert("amount".to_owned(), n(entry.amount));
    row.insert("balanceAfter".to_owned(), n(entry.balance_after));
    if let Some(order) = entry.order {
        row.insert("orderId".to_owned(), s(order));
    }
    row.insert("createdAt".to_owned(), s(entry.at));
    Ok(row)
}

/// The history row of a committed change, then the pending entry cleared.
async fn materialise(tables: &Tables, user: u64, entry: &Entry<'_>) -> anyhow::Result<()> {
    let row = history_row(user, entry)?;
    tables.client.put_item().table_name(&tables.main).set_item(Some(row)).send().await.map_err(sdk)?;
    tables
        .client
        .update_item()
        .table_name(&tables.main)
        .set_key(Some(key(format!("USER#{user}"), "PROFILE".to_owned())))
        .update_expression("REMOVE #pe, #pb, #ps")
        .set_expression_attribute_names(Some(pending_names(entry.id)))
        .send()
        .await
        .map_err(sdk)?;
    Ok(())
}

/// issue-coupon with the gate off: one transaction of three items.
async fn issue_coupon(tables: &Tables, coupon: u64, user: u64) -> anyhow::Result<Outcome> {
    let now = rfc3339(OffsetDateTime::now_utc());
    let counter = Update::builder()
        .table_name(&tables.main)
        .set_key(Some(key(format!("COUPON#{coupon}"), "COUPON".to_owned())))
        .update_expression("SET issued = issued + :one")
        .condition_expression("attribute_exists(pk) AND issued < #total AND endsAt > :now")
        .expression_attribute_names("#total", "total")
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":now", s(now.clone()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()?;
    let holder = ConditionCheck::builder()
        .table_name(&tables.main)
        .set_key(Some(key(format!("USER#{user}"), "PROFILE".to_owned())))
        .condition_expression("attribute_exists(pk)")
        .build()?;
    let mut copy = key(format!("USER#{user}"), format!("COUPON#{}", pad(coupon)));
    copy.insert("couponId".to_owned(), n(coupon));
    copy.insert("userId".to_owned(), n(user));
    copy.insert("name".to_owned(), s(format!("Coupon {coupon}")));
    copy.insert("discount".to_owned(), n(PRICE));
    copy.insert("issuedAt".to_owned(), s(now.clone()));
    copy.insert("usableUntil".to_owned(), s(rfc3339(OffsetDateTime::now_utc() + time::Duration::days(30))));
    let sent = tables
        .client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(counter).build())
        .transact_items(TransactWriteItem::builder().condition_check(holder).build())
        .transact_items(seed::new_put(&tables.main, copy)?)
        .send()
        .await;
    transaction_outcome(sent)
}

/// Strongly consistent reads of `keys` of the main table in one `BatchGetItem`; the
/// items found.
async fn read_many(
    tables: &Tables,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    let wanted = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build()?;
    let output = tables.client.batch_get_item().request_items(&tables.main, wanted).send().await.map_err(sdk)?;
    if output.unprocessed_keys.as_ref().is_some_and(|u| !u.is_empty()) {
        anyhow::bail!("keys left unprocessed");
    }
    Ok(output.responses.and_then(|mut r| r.remove(&tables.main)).unwrap_or_default())
}

/// create-order: the user, each product and the coupon copy (if any) in one batch
/// read, then the order. Returns the order id.
async fn create_order(
    tables: &Tables,
    user: u64,
    lines: &[(u64, u64)],
    coupon: Option<u64>,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let c = &tables.client;
    let mut wanted = vec![key(format!("USER#{user}"), "PROFILE".to_owned())];
    wanted.extend(lines.iter().map(|(product, _)| key(format!("PRODUCT#{product}"), "PRODUCT".to_owned())));
    wanted.extend(coupon.map(|coupon| key(format!("USER#{user}"), format!("COUPON#{}", pad(coupon)))));
    let expected = wanted.len();
    let found = read_many(tables, wanted).await?;
    if found.len() != expected {
        anyhow::bail!("user {user}, a product or the coupon copy is missing");
    }
    let mut items = Vec::new();
    let mut subtotal = rust_decimal::Decimal::ZERO;
    for &(product, quantity) in lines {
        let price: rust_decimal::Decimal = PRICE.parse()?;
        let total = price * rust_decimal::Decimal::from(quantity);
        subtotal += total;
        items.push(AttributeValue::M(HashMap::from([
            ("productId".to_owned(), n(product)),
            ("name".to_owned(), s(format!("Product {product}"))),
            ("quantity".to_owned(), n(quantity)),
            ("unitPrice".to_owned(), n(PRICE)),
            ("lineTotal".to_owned(), n(format!("{total:.2}"))),
        ])));
    }
    let discount = match coupon {
        Some(_) => PRICE.parse::<rust_decimal::Decimal>()?.min(subtotal),
        None => rust_decimal::Decimal::ZERO,
    };
    let order = ulid::Ulid::generate().to_string();
    let at = rfc3339(now);
    let mut item = key(format!("ORDER#{order}"), "ORDER".to_owned());
    item.insert("orderId".to_owned(), s(order.clone()));
    item.insert("userId".to_owned(), n(user));
    item.insert("gsi1pk".to_owned(), s(format!("ORDERS#{user}")));
    item.insert("gsi1sk".to_owned(), s(format!("{at}#{order}")));
    item.insert("status".to_owned(), s("PENDING_PAYMENT"));
    item.insert("lines".to_owned(), AttributeValue::L(items));
    item.insert("subtotal".to_owned(), n(format!("{subtotal:.2}")));
    item.insert("discount".to_owned(), n(format!("{discount:.2}")));
    item.insert("total".to_owned(), n(format!("{:.2}", subtotal - discount)));
    if let Some(coupon) = coupon {
        item.insert("couponId".to_owned(), n(coupon));
    }
    item.insert("createdAt".to_owned(), s(at));
    item.insert("payBy".to_owned(), s(rfc3339(now + time::Duration::minutes(30))));
    item.insert("failedAttempts".to_owned(), n(0));
    item.insert("recentFailures".to_owned(), AttributeValue::M(HashMap::new()));
    c.put_item()
        .table_name(&tables.main)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map_err(sdk)?;
    Ok(order)
}

/// pay-order without a key, its balance unmoved since the read: the order and the
/// payer's profile in one batch read, then one transaction (order, stock and sales of
/// each line, the balance at the seq read and the entry's history row, coupon, payment
/// record, outbox event).
async fn pay(
    tables: &Tables,
    user: u64,
    order: &str,
    lines: &[(u64, u64)],
    coupon: Option<u64>,
) -> anyhow::Result<Outcome> {
    let (order_key, profile_key) =
        (key(format!("ORDER#{order}"), "ORDER".to_owned()), key(format!("USER#{user}"), "PROFILE".to_owned()));
    let found = read_many(tables, vec![order_key.clone(), profile_key.clone()]).await?;
    let find = |wanted: &HashMap<String, AttributeValue>| {
        found.iter().find(|item| item.get("pk") == wanted.get("pk") && item.get("sk") == wanted.get("sk"))
    };
    let (Some(item), Some(profile)) = (find(&order_key), find(&profile_key)) else {
        anyhow::bail!("order {order} or the profile of user {user} is missing");
    };
    let total = attribute_n(item, "total")?;
    let free = total.parse::<rust_decimal::Decimal>()?.is_zero();
    let balance: rust_decimal::Decimal = attribute_n(profile, "balance")?.parse()?;
    let seq: u64 = attribute_n(profile, "seq")?.parse()?;
    let now = OffsetDateTime::now_utc();
    let at = rfc3339(now);
    let payment = ulid::Ulid::generate().to_string();
    let entry = ulid::Ulid::generate().to_string();
    let mut writes = vec![updating(
        Update::builder()
            .table_name(&tables.main)
            .set_key(Some(key(format!("ORDER#{order}"), "ORDER".to_owned())))
            .update_expression("SET #status = :paid, paidAt = :at, paymentId = :payment")
            .condition_expression("#status = :pending AND payBy > :at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s("PAID"))
            .expression_attribute_values(":pending", s("PENDING_PAYMENT"))
            .expression_attribute_values(":at", s(at.clone()))
            .expression_attribute_values(":payment", s(payment.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?,
    )];
    for &(product, quantity) in lines {
        writes.push(updating(
            Update::builder()
                .table_name(&tables.main)
                .set_key(Some(key(format!("PRODUCT#{product}"), "PRODUCT".to_owned())))
                .update_expression("SET stock = stock - :q")
                .condition_expression("attribute_exists(pk) AND stock >= :q")
                .expression_attribute_values(":q", n(quantity))
                .build()?,
        ));
    }
    let day = now.date().to_string();
    for &(product, quantity) in lines {
        writes.push(updating(
            Update::builder()
                .table_name(&tables.main)
                .set_key(Some(key(format!("SALES#{day}"), format!("PRODUCT#{}", pad(product)))))
                .update_expression("SET #day = :day, productId = :product ADD quantity :q")
                .expression_attribute_names("#day", "day")
                .expression_attribute_values(":day", s(day.clone()))
                .expression_attribute_values(":product", n(product))
                .expression_attribute_values(":q", n(quantity))
                .build()?,
        ));
    }
    if !free {
        let next = (seq + 1).to_string();
        let after = balance - total.parse::<rust_decimal::Decimal>()?;
        writes.push(updating(
            Update::builder()
                .table_name(&tables.main)
                .set_key(Some(profile_key))
                .update_expression("SET balance = balance - :amount, seq = :next")
                .condition_expression("attribute_exists(pk) AND seq = :seen AND balance >= :amount")
                .expression_attribute_values(":amount", n(&total))
                .expression_attribute_values(":seen", n(seq))
                .expression_attribute_values(":next", n(&next))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()?,
        ));
        let after = after.to_string();
        let paid = Entry {
            id: &entry,
            seq: &next,
            balance_after: &after,
            kind: "PAYMENT",
            amount: &total,
            order: Some(order),
            at: &at,
        };
        let row = history_row(user, &paid)?;
        writes.push(seed::new_put(&tables.main, row)?);
    }
    if let Some(coupon) = coupon {
        writes.push(updating(
            Update::builder()
                .table_name(&tables.main)
                .set_key(Some(key(format!("USER#{user}"), format!("COUPON#{}", pad(coupon)))))
                .update_expression("SET usedAt = :at, orderId = :order")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(usedAt) AND usableUntil > :at")
                .expression_attribute_values(":at", s(at.clone()))
                .expression_attribute_values(":order", s(order))
                .build()?,
        ));
    }
    let mut record = key(format!("ORDER#{order}"), format!("PAYMENT#{payment}"));
    record.insert("paymentId".to_owned(), s(payment.clone()));
    record.insert("orderId".to_owned(), s(order));
    record.insert("userId".to_owned(), n(user));
    record.insert("status".to_owned(), s("SUCCEEDED"));
    record.insert("amount".to_owned(), n(&total));
    if !free {
        record.insert("entryId".to_owned(), s(entry.clone()));
    }
    record.insert("createdAt".to_owned(), s(at.clone()));
    writes.push(seed::new_put(&tables.main, record)?);
    let event_id = format!("{order}:ORDER_PAID");
    let mut event = key(format!("ORDER#{order}"), "ORDER_PAID".to_owned());
    event.insert("orderId".to_owned(), s(order));
    event.insert("payload".to_owned(), s(event_payload(order, user, &payment, &total, &at, lines)));
    event.insert("createdAt".to_owned(), s(at.clone()));
    event.insert("gsi1pk".to_owned(), s("PENDING"));
    event.insert("gsi1sk".to_owned(), s(format!("{at}#{event_id}")));
    event.insert("eventId".to_owned(), s(event_id));
    writes.push(seed::new_put(&tables.outbox, event)?);
    let sent = tables
        .client
        .transact_write_items()
        .set_transact_items(Some(writes))
        .client_request_token(format!("{payment}-0"))
        .send()
        .await;
    transaction_outcome(sent)
}

/// The ORDER_PAID event's JSON, the size and shape of the real one (docs/events.md).
fn event_payload(order: &str, user: u64, payment: &str, amount: &str, at: &str, lines: &[(u64, u64)]) -> String {
    serde_json::json!({
        "eventId": format!("{order}:ORDER_PAID"),
        "eventType": "ORDER_PAID",
        "orderId": order,
        "paymentId": payment,
        "userId": user,
        "lines": lines.iter().map(|(p, q)| serde_json::json!({"productId": p, "quantity": q})).collect::<Vec<_>>(),
        "amount": amount,
        "paidAt": at,
    })
    .to_string()
}

/// checkout-flow.js's iteration: issue the coupon, order one product with it, pay.
async fn checkout(tables: &Tables, user: u64) -> anyhow::Result<Outcome> {
    if let Outcome::Refused = issue_coupon(tables, 1, user).await? {
        return Ok(Outcome::Refused);
    }
    let order = create_order(tables, user, &[(1, 1)], Some(1), OffsetDateTime::now_utc()).await?;
    pay(tables, user, &order, &[(1, 1)], Some(1)).await
}

/// products-top without the cache: the sales of the last three days at once, then the
/// five products in one batch read.
async fn top_five(tables: &Tables, today: time::Date) -> anyhow::Result<Outcome> {
    let days = futures::future::try_join_all((0..3).map(|back| day_sales(tables, today - time::Duration::days(back))));
    let mut sold: HashMap<u64, u64> = HashMap::new();
    for (product, quantity) in days.await?.into_iter().flatten() {
        *sold.entry(product).or_default() += quantity;
    }
    let mut ranked: Vec<(u64, u64)> = sold.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let wanted: Vec<_> =
        ranked.iter().take(5).map(|(product, _)| key(format!("PRODUCT#{product}"), "PRODUCT".to_owned())).collect();
    read_many(tables, wanted).await?;
    Ok(Outcome::Done)
}

/// The quantity sold of each product on `day`.
async fn day_sales(tables: &Tables, day: time::Date) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut sold = Vec::new();
    let mut start = None;
    loop {
        let page = tables
            .client
            .query()
            .table_name(&tables.main)
            .key_condition_expression("pk = :day")
            .expression_attribute_values(":day", s(format!("SALES#{day}")))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk)?;
        for row in page.items() {
            sold.push((attribute_n(row, "productId")?.parse()?, attribute_n(row, "quantity")?.parse()?));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(sold);
        }
    }
}
