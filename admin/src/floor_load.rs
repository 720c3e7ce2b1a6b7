//! `rushcart-admin floor --load <scenario>`: the storage's floor *under load*. Drives
//! the DynamoDB calls one of `make bench`'s scenarios makes — one after another as the
//! handler makes them, from as many concurrent workers as k6 has virtual users —
//! straight from the Rust SDK (the same SDK configuration as the functions), with no
//! HTTP, no handler and no use case in between. Prints what it measured as JSON.
//!
//! Every request is built by the adapters' own builders, so the floor sends exactly
//! the items, keys, conditions and update expressions rushcart sends: a payment is
//! the domain's plan (`orders::plan::payment`) turned into items by
//! `DynamoStore::transaction`; an issue is `DynamoStore::issue_transaction`; a balance
//! change is `BalanceUpdate::update_item`, then `ledger::put_ledger_row` and
//! `ledger::clear_pending_entry`; a new order is `orders::put_new_order`; every key
//! comes from `keys`. Only the sending is the floor's own: each request goes out
//! through the raw client, once, so the time is the SDK's (no conflict retries, no
//! unprocessed-key retries: either is an error here). The reads (`GetItem`,
//! `BatchGetItem`, the sales `Query`) are built here from the adapters' keys, as the
//! adapters build them inside their own calls.
//!
//! It works on scratch copies of the tables (`<prefix>-floorload-main`, `-outbox`,
//! same keys, indexes and stream), seeded like the scenario's own data and deleted
//! afterwards, so the run leaves the shop's data as it found it. The local engine
//! serialises every call, so the scratch tables see the same contention as the shop's:
//! what it cannot see is the rest of the shop (the feed's relay and consumer writing the
//! outbox while payments run); that is part of rushcart's cost.

pub mod layers;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use aws_sdk_dynamodb::Client;
use rushcart::adapters::dynamodb::catalog::{terms_from_item, Held};
use rushcart::adapters::dynamodb::coupons::{copy_from_item, coupon_from_item};
use rushcart::adapters::dynamodb::ledger::{self, balance_seen, pending_entries, BalanceUpdate};
use rushcart::adapters::dynamodb::orders::{order_from_item, put_new_order};
use rushcart::adapters::dynamodb::table::{MAIN_TABLE, OUTBOX_TABLE};
use rushcart::adapters::dynamodb::transaction::Transaction;
use rushcart::adapters::dynamodb::{get_u64, keys, n, s, DynamoStore, Item};
use rushcart::balance::{BalanceChange, EntryKind};
use rushcart::coupons::Coupon;
use rushcart::ids::{CouponId, EntryId, OrderId, PaymentId, ProductId, Quantity, UserId};
use rushcart::money::Money;
use rushcart::orders::{plan, Failures, Order, OrderLine, OrderStatus, OrderWindows};
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

/// The scratch tables a run works on, and a store pointed at them. The store only
/// builds requests (its plans' and issues' transaction items); `client` sends them.
struct Tables {
    client: Client,
    main: String,
    outbox: String,
    store: DynamoStore,
}

impl Tables {
    /// The main table `main` and its outbox, named as `DynamoStore::new` names it, so the
    /// outbox the store's items write to is the one provisioned.
    fn on(client: Client, main: String) -> Tables {
        let store = DynamoStore::new(client.clone(), main.clone());
        let outbox = store.outbox_table().to_owned();
        Tables { client, main, outbox, store }
    }
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
                .set_key(Some(keys::Key { pk: "FLOOR#WARM".to_owned(), sk: "WARM".to_owned() }.item()))
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
    let tables = Arc::new(Tables::on(client.clone(), MAIN_TABLE.local_name(&format!("{prefix}-floorload"))));
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

fn user(id: u64) -> anyhow::Result<UserId> {
    Ok(UserId::new(id)?)
}

/// Order lines, `(product, quantity)`.
fn lines(wanted: &[(u64, u64)]) -> anyhow::Result<Vec<(ProductId, Quantity)>> {
    wanted
        .iter()
        .map(|&(product, quantity)| {
            Ok((ProductId::new(product)?, Quantity::new(quantity).ok_or_else(|| anyhow!("quantity {quantity}"))?))
        })
        .collect()
}

async fn run(tables: Arc<Tables>, scenario: Scenario) -> anyhow::Result<serde_json::Value> {
    let now = OffsetDateTime::now_utc();
    // The one user and product of the scenarios that need only one.
    let (one, product) = (user(1)?, ProductId::new(1)?);
    let samples = match scenario {
        Scenario::Balance => {
            seed_users(&tables, 1..=1).await?;
            // One iteration of k6 is a charge then a use: two requests, each timed.
            drive(&tables, 100, 20, None, move |t, _, i| async move { change_balance(&t, one, i % 2 == 0).await }).await
        }
        Scenario::Coupon100 | Scenario::Coupon1000 => {
            let users = if scenario == Scenario::Coupon100 { 100 } else { 1000 };
            seed_users(&tables, 1..=users).await?;
            let terms = Arc::new(seed_coupon(&tables, 1, now).await?);
            drive(&tables, users as usize, 1, None, move |t, worker, _| {
                let terms = terms.clone();
                async move { issue_coupon(&t, &terms, user(worker as u64 + 1)?).await }
            })
            .await
        }
        Scenario::Payment => {
            seed_users(&tables, 1..=100).await?;
            seed_products(&tables, &[1, 2, 3], 1000).await?;
            // k6's setup makes the orders first; only the payments are timed.
            let bought = lines(&[(1, 10), (2, 10), (3, 10)])?;
            let mut orders = Vec::new();
            for buyer in 1..=100u64 {
                orders.push(create_order(&tables, user(buyer)?, &bought, None).await?);
            }
            let orders = Arc::new(orders);
            drive(&tables, 100, 1, None, move |t, worker, _| {
                let orders = orders.clone();
                async move { pay(&t, user(worker as u64 + 1)?, orders[worker]).await }
            })
            .await
        }
        Scenario::Flow => {
            seed_users(&tables, 101..=200).await?;
            seed_products(&tables, &[1], 1000).await?;
            let terms = Arc::new(seed_coupon(&tables, 1, now).await?);
            drive(&tables, 100, 1, None, move |t, worker, _| {
                let terms = terms.clone();
                async move { checkout(&t, &terms, user(101 + worker as u64)?).await }
            })
            .await
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
            let buckets = rushcart::shards::default_shards(1000);
            let unit = move |t: Arc<Tables>, _, _| async move { read_product(&t, product, buckets).await };
            drive(&tables, 1, UNLOADED_ITERATIONS, None, unit).await
        }
        Scenario::GetBalance => {
            seed_users(&tables, 1..=1).await?;
            let unit = move |t: Arc<Tables>, _, _| async move { read(&t, &keys::profile(one)).await };
            drive(&tables, 1, UNLOADED_ITERATIONS, None, unit).await
        }
        Scenario::Charge => {
            seed_users(&tables, 1..=1).await?;
            let unit = move |t: Arc<Tables>, _, _| async move { change_balance(&t, one, true).await };
            drive(&tables, 1, UNLOADED_ITERATIONS, None, unit).await
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
    let users: Vec<(UserId, Money)> = users.map(|u| Ok((user(u)?, balance))).collect::<anyhow::Result<_>>()?;
    seed::seed_users(&tables.client, &tables.main, &users, OffsetDateTime::now_utc(), &|_| {}).await?;
    Ok(())
}

async fn seed_products(tables: &Tables, ids: &[u64], stock: u64) -> anyhow::Result<()> {
    let products = ids
        .iter()
        .map(|&id| Ok(ProductSeed::new(ProductId::new(id)?, format!("Product {id}"), PRICE.parse()?, stock)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    seed::seed_products(&tables.client, &tables.main, &products).await?;
    Ok(())
}

/// Seeds coupon `id` and reads its terms back, as the issuer reads and caches them
/// before its first issue.
async fn seed_coupon(tables: &Tables, id: u64, now: OffsetDateTime) -> anyhow::Result<Coupon> {
    let id = CouponId::new(id)?;
    let coupon = CouponSeed {
        id,
        name: format!("Coupon {id}"),
        discount: PRICE.parse()?,
        total: 100,
        ends_at: now + time::Duration::days(30),
        shards: 1,
    };
    seed::seed_coupons(&tables.client, &tables.main, &[coupon]).await?;
    coupon_from_item(&get(tables, &keys::coupon(id)).await?)
}

/// Today's sales of each product, as the paid orders before the top-5 run leave them.
async fn seed_sales(tables: &Tables, products: &[u64], day: time::Date) -> anyhow::Result<()> {
    for &product in products {
        tables
            .client
            .put_item()
            .table_name(&tables.main)
            .set_item(Some(keys::sales(day, ProductId::new(product)?, Some(OrderId::generate())).item()))
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
async fn get(tables: &Tables, key: &keys::Key) -> anyhow::Result<Item> {
    let output = tables
        .client
        .get_item()
        .table_name(&tables.main)
        .set_key(Some(key.item()))
        .consistent_read(true)
        .send()
        .await
        .map_err(sdk)?;
    output.item.ok_or_else(|| anyhow!("no item {}/{}", key.pk, key.sk))
}

/// get-balance: one strongly consistent read.
async fn read(tables: &Tables, key: &keys::Key) -> anyhow::Result<Outcome> {
    get(tables, key).await.map(|_| Outcome::Done)
}

/// get-product of a product whose stock is in `buckets` buckets, as a process that knows
/// them reads it: its item and its buckets in one strongly consistent `BatchGetItem`
/// (one bucket: its item alone, one `GetItem`).
async fn read_product(tables: &Tables, product: ProductId, buckets: u32) -> anyhow::Result<Outcome> {
    if buckets <= 1 {
        return read(tables, &keys::product(product)).await;
    }
    let wanted: Vec<keys::Key> =
        std::iter::once(keys::product(product)).chain((0..buckets).map(|k| keys::stock_bucket(product, k))).collect();
    let found = read_many(tables, &wanted).await?;
    if found.len() != wanted.len() {
        anyhow::bail!("product {product} or some of its buckets are missing");
    }
    Ok(Outcome::Done)
}

/// Sends a transaction an adapter built, as its first attempt goes out: the same
/// items, under `token` (the attempt's `ClientRequestToken`, if it has one).
async fn send<R: Copy + PartialEq + std::fmt::Debug>(
    tables: &Tables,
    transaction: &Transaction<R>,
    token: Option<String>,
) -> anyhow::Result<Outcome> {
    let sent = tables
        .client
        .transact_write_items()
        .set_transact_items(Some(transaction.items().to_vec()))
        .set_client_request_token(token)
        .send()
        .await;
    transaction_outcome(sent)
}

/// charge-balance / use-balance without a key: the ledger's conditional update that
/// commits the change with its pending entry, then the entry materialised (its history
/// row, the pending attributes cleared).
async fn change_balance(tables: &Tables, user: UserId, credit: bool) -> anyhow::Result<Outcome> {
    let change = BalanceChange {
        id: EntryId::generate(),
        user,
        kind: if credit { EntryKind::Charge } else { EntryKind::Use },
        amount: PRICE.parse()?,
        order: None,
        at: OffsetDateTime::now_utc(),
        idempotency_key: None,
    };
    let updated = BalanceUpdate::new(&change).update_item(&tables.client, &tables.main).send().await.map_err(sdk)?;
    let entry = pending_entries(&updated.attributes.unwrap_or_default())?
        .into_iter()
        .map(|(entry, _)| entry)
        .find(|entry| entry.id == change.id)
        .ok_or_else(|| anyhow!("entry {} missing from the returned attributes", change.id))?;
    ledger::put_ledger_row(&tables.client, &tables.main, user, &entry).send().await.map_err(sdk)?;
    ledger::clear_pending_entry(&tables.client, &tables.main, user, entry.id).send().await.map_err(sdk)?;
    Ok(Outcome::Done)
}

/// issue-coupon with the gate off, its terms known (the issuer caches them): one
/// transaction of three items.
async fn issue_coupon(tables: &Tables, terms: &Coupon, user: UserId) -> anyhow::Result<Outcome> {
    let now = OffsetDateTime::now_utc();
    send(tables, &tables.store.issue_transaction(terms, &terms.copy_for(user, now), 0, None, now)?, None).await
}

/// Strongly consistent reads of `wanted` (distinct keys of the main table) in one
/// `BatchGetItem`; the items found, by key.
async fn read_many(tables: &Tables, wanted: &[keys::Key]) -> anyhow::Result<HashMap<keys::Key, Item>> {
    batch_read(tables, wanted, true).await
}

async fn batch_read(
    tables: &Tables,
    wanted: &[keys::Key],
    consistent: bool,
) -> anyhow::Result<HashMap<keys::Key, Item>> {
    let request = KeysAndAttributes::builder()
        .set_keys(Some(wanted.iter().map(keys::Key::item).collect()))
        .consistent_read(consistent);
    let output =
        tables.client.batch_get_item().request_items(&tables.main, request.build()?).send().await.map_err(sdk)?;
    if output.unprocessed_keys.as_ref().is_some_and(|u| !u.is_empty()) {
        anyhow::bail!("keys left unprocessed");
    }
    let found = output.responses.and_then(|mut r| r.remove(&tables.main)).unwrap_or_default();
    found.into_iter().map(|item| Ok((keys::Key::of_item(&item)?, item))).collect()
}

/// create-order without a key: the profile and the coupon copy (if any) in one batch
/// read, each product in another (eventually consistent) at the same time, then the
/// order, priced as the use case prices it, put new.
async fn create_order(
    tables: &Tables,
    user: UserId,
    lines: &[(ProductId, Quantity)],
    coupon: Option<CouponId>,
) -> anyhow::Result<OrderId> {
    let now = OffsetDateTime::now_utc();
    let profile = keys::profile(user);
    let products: Vec<keys::Key> = lines.iter().map(|(product, _)| keys::product(*product)).collect();
    let copy = coupon.map(|coupon| keys::coupon_copy(user, coupon));
    let wanted: Vec<keys::Key> = std::iter::once(profile.clone()).chain(copy.clone()).collect();
    let (found, priced) = futures::try_join!(read_many(tables, &wanted), batch_read(tables, &products, false))?;
    let found: HashMap<keys::Key, Item> = found.into_iter().chain(priced).collect();
    if !found.contains_key(&profile) {
        anyhow::bail!("user {user} is missing");
    }
    let mut priced = Vec::with_capacity(lines.len());
    let mut subtotal = Money::ZERO;
    for (&(product_id, quantity), key) in lines.iter().zip(&products) {
        let (product, _) = terms_from_item(found.get(key).ok_or_else(|| anyhow!("product {product_id} is missing"))?)?;
        let line_total = product.price.checked_mul(quantity.get())?;
        subtotal = subtotal.checked_add(line_total)?;
        priced.push(OrderLine { product_id, name: product.name, quantity, unit_price: product.price, line_total });
    }
    let discount = match &copy {
        None => Money::ZERO,
        Some(key) => {
            let copy = copy_from_item(found.get(key).ok_or_else(|| anyhow!("the coupon copy of {user} is missing"))?)?;
            copy.discount.min(subtotal)
        }
    };
    let order = Order {
        id: OrderId::generate(),
        user,
        status: OrderStatus::PendingPayment,
        lines: priced,
        subtotal,
        discount,
        total: subtotal.saturating_sub(discount),
        coupon,
        created_at: now,
        pay_by: now + OrderWindows::default().payment,
        paid_at: None,
        payment: None,
        cancelled_at: None,
        refund_entry: None,
        failures: Failures::default(),
        sales_sharded: false,
    };
    put_new_order(&tables.client, &tables.main, &order).send().await.map_err(sdk)?;
    Ok(order.id)
}

/// pay-order without a key, its balance unmoved since the read: the order and the
/// payer's profile in one batch read, then the payment's plan from the balance seen
/// (first attempt) as one transaction — order, stock and sales of each line, the debit
/// at the seq read and the entry's history row, coupon, payment record, outbox event.
async fn pay(tables: &Tables, user: UserId, order: OrderId) -> anyhow::Result<Outcome> {
    let wanted = [keys::order(order), keys::profile(user)];
    let found = read_many(tables, &wanted).await?;
    let (Some(item), Some(profile)) = (found.get(&wanted[0]), found.get(&wanted[1])) else {
        anyhow::bail!("order {order} or the profile of user {user} is missing");
    };
    let (order, seen) = (order_from_item(item)?, balance_seen(profile)?);
    let record = plan::payment_record(&order, PaymentId::generate(), EntryId::generate(), OffsetDateTime::now_utc());
    let plan = plan::payment(&order, &record, None, Some((seen, 0)))?;
    // The attempt's token, as `Transaction::with_token(&plan.attempt)` numbers attempt 0.
    let picks = tables.store.stock_picks(&plan).await?;
    send(tables, &tables.store.transaction(&plan, &picks, 0)?, Some(format!("{}-0", plan.attempt))).await
}

/// checkout-flow.js's iteration: issue the coupon, order one product with it, pay.
async fn checkout(tables: &Tables, terms: &Coupon, user: UserId) -> anyhow::Result<Outcome> {
    if let Outcome::Refused = issue_coupon(tables, terms, user).await? {
        return Ok(Outcome::Refused);
    }
    let order = create_order(tables, user, &lines(&[(1, 1)])?, Some(terms.id)).await?;
    pay(tables, user, order).await
}

/// products-top without the cache: the sales of the last three days at once, then the
/// five products in one batch read.
async fn top_five(tables: &Tables, today: time::Date) -> anyhow::Result<Outcome> {
    // Every partition of each of the three days, as the reader asks for them.
    let partitions: Vec<String> =
        (0..3).flat_map(|back| keys::sales_partitions(today - time::Duration::days(back))).collect();
    let days = futures::future::try_join_all(partitions.iter().map(|partition| day_sales(tables, partition)));
    let mut sold: HashMap<ProductId, u64> = HashMap::new();
    for (product, quantity) in days.await?.into_iter().flatten() {
        *sold.entry(product).or_default() += quantity;
    }
    let mut ranked: Vec<(ProductId, u64)> = sold.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let wanted: Vec<keys::Key> = ranked.iter().take(5).map(|(product, _)| keys::product(*product)).collect();
    let found = read_many(tables, &wanted).await?;
    // Then the buckets of those whose stock is in buckets, in one more batch read.
    let mut buckets = Vec::new();
    for item in found.values() {
        if let (terms, Held::Buckets(n)) = terms_from_item(item)? {
            buckets.extend((0..n).map(|k| keys::stock_bucket(terms.product_id, k)));
        }
    }
    if !buckets.is_empty() {
        read_many(tables, &buckets).await?;
    }
    Ok(Outcome::Done)
}

/// The quantity sold of each product that one partition of a day's figures holds.
async fn day_sales(tables: &Tables, partition: &str) -> anyhow::Result<Vec<(ProductId, u64)>> {
    let mut sold = Vec::new();
    let mut start = None;
    loop {
        let page = tables
            .client
            .query()
            .table_name(&tables.main)
            .key_condition_expression("pk = :day")
            .expression_attribute_values(":day", s(partition))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk)?;
        for row in page.items() {
            sold.push((ProductId::new(get_u64(row, "productId")?)?, get_u64(row, "quantity")?));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(sold);
        }
    }
}
