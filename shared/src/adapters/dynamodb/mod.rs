//! DynamoDB adapter: the client, error classification, attribute readers, and one
//! module per port.
//!
//! # Layout
//!
//! - [`keys`]: every key of the single-table design and the table of item types.
//! - [`table`]: the table definitions (provisioning, and the template test).
//! - [`transaction`]: running a transaction — conflict retries, refusals by item.
//! - [`idempotency`]: the records behind `Idempotency-Key`.
//! - [`ledger`]: balances and their history; a balance change as a transaction item.
//! - [`counters`]: numeric ids for new users, products and coupons.
//! - [`catalog`], [`coupons`], [`orders`], [`payment`], [`sales`], [`feed`],
//!   [`identity`]: the ports.
//! - [`seed`] and [`audit`]: bulk data and the invariant audits, for tools and tests.

pub mod catalog;
pub mod counters;
pub mod coupons;
pub mod feed;
pub mod idempotency;
pub mod identity;
pub mod keys;
pub mod ledger;
pub mod orders;
pub mod payment;
pub mod sales;
pub mod table;
pub mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::{anyhow, Context as _};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;

use crate::coupons::Coupon;
use crate::ids::CouponId;
use crate::retry::RetryPolicy;

pub use table::{TableSpec, MAIN_TABLE, OUTBOX_TABLE};

pub type Item = HashMap<String, AttributeValue>;

/// Every port's DynamoDB implementation, over the main table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox_table: String,
    coupon_terms: Arc<RwLock<HashMap<CouponId, Arc<tokio::sync::OnceCell<Coupon>>>>>,
    /// This process's block of user ids ([`counters::IdBlock`]), and how many one
    /// reservation takes.
    user_ids: Arc<tokio::sync::Mutex<counters::IdBlock>>,
    user_id_block: u64,
    /// The coupon counters (coupon, shard) found empty: a count never goes down.
    empty_shards: Arc<RwLock<std::collections::HashSet<(CouponId, u32)>>>,
    /// How many buckets hold each product's stock, once read: set when the product is
    /// made, never changed.
    stock_buckets: Arc<RwLock<HashMap<crate::ids::ProductId, u32>>>,
    /// What each bucket of a product held when this process last read them, less what
    /// it took since: where a payment looks first, so that buckets known short are not
    /// tried blind. Only a hint (other processes take and give back meanwhile).
    stock_hints: Arc<RwLock<HashMap<crate::ids::ProductId, Vec<u64>>>>,
    /// Held by a payment reading the buckets of products this process has no hint of;
    /// the payers that find it held wait for that read instead of making their own, so
    /// that a rush's first payers read them once, not once each.
    first_level_read: Arc<tokio::sync::Mutex<()>>,
    probe: Option<Arc<dyn StoreProbe>>,
}

/// What the store tells whoever counts its work: a benchmark or a test
/// (`rushcart-testkit`'s counters). The functions install none, and then each call
/// is nothing.
pub trait StoreProbe: std::any::Any + std::fmt::Debug + Send + Sync {
    /// An issue transaction was sent to DynamoDB (each retry of it too).
    fn coupon_issue_sent(&self) {}
    /// The top 5 was computed from the sales figures.
    fn top_computed(&self) {}
    /// A payment found its payer's balance moved between the read it paid from and its
    /// commit (it then tries again from the balance as it is now).
    fn payment_balance_moved(&self) {}
}

impl DynamoStore {
    /// A store on `table`; the outbox is the table of the same prefix
    /// (`<prefix>-main` → `<prefix>-outbox`) unless [`DynamoStore::with_outbox`] says
    /// otherwise.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoStore {
        let table = table.into();
        let main_suffix = format!("-{}", MAIN_TABLE.suffix);
        let outbox_table = match table.strip_suffix(&main_suffix) {
            Some(prefix) => OUTBOX_TABLE.local_name(prefix),
            None => format!("{table}-{}", OUTBOX_TABLE.suffix),
        };
        DynamoStore {
            client,
            table,
            outbox_table,
            coupon_terms: Arc::default(),
            user_ids: Arc::default(),
            user_id_block: counters::USER_ID_BLOCK,
            empty_shards: Arc::default(),
            stock_buckets: Arc::default(),
            stock_hints: Arc::default(),
            first_level_read: Arc::default(),
            probe: None,
        }
    }

    /// A store on fresh tables `<prefix>-main` and `<prefix>-outbox`, created if they
    /// are missing (as `rushcart-admin provision` creates them).
    pub async fn provisioned(client: aws_sdk_dynamodb::Client, prefix: &str) -> anyhow::Result<DynamoStore> {
        for spec in table::ALL_TABLES {
            spec.provision(&client, &spec.local_name(prefix)).await?;
        }
        Ok(DynamoStore::new(client, MAIN_TABLE.local_name(prefix)))
    }

    pub fn with_outbox(mut self, outbox_table: impl Into<String>) -> DynamoStore {
        self.outbox_table = outbox_table.into();
        self
    }

    /// Reserves `block` user ids at a time instead of [`counters::USER_ID_BLOCK`] (1:
    /// one counter write per sign-up, as before blocks: a benchmark's "before").
    pub fn with_user_id_block(mut self, block: u64) -> DynamoStore {
        self.user_id_block = block.max(1);
        self
    }

    pub fn outbox_table(&self) -> &str {
        &self.outbox_table
    }

    /// The store with `probe` told of its work (and every clone of it).
    pub fn with_probe(mut self, probe: Arc<dyn StoreProbe>) -> DynamoStore {
        self.probe = Some(probe);
        self
    }

    pub fn probe(&self) -> Option<&Arc<dyn StoreProbe>> {
        self.probe.as_ref()
    }

    fn tell(&self, what: impl FnOnce(&dyn StoreProbe)) {
        if let Some(probe) = &self.probe {
            what(probe.as_ref());
        }
    }

    /// The store the functions use: client from the environment, table from
    /// `TABLE_NAME`.
    pub async fn from_env() -> anyhow::Result<DynamoStore> {
        DynamoStore::from_env_with(client_from_env().await)
    }

    /// The store over `client`, tables from the environment as in [`Self::from_env`].
    pub fn from_env_with(client: aws_sdk_dynamodb::Client) -> anyhow::Result<DynamoStore> {
        let table = std::env::var(MAIN_TABLE.env_var)
            .with_context(|| format!("{} must name the main table", MAIN_TABLE.env_var))?;
        let store = DynamoStore::new(client, table);
        Ok(match std::env::var(OUTBOX_TABLE.env_var) {
            Ok(outbox) => store.with_outbox(outbox),
            Err(_) => store,
        })
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// A put of a new item into the main table, refused if its key exists.
    pub(crate) fn new_item(&self, item: Item) -> Result<aws_sdk_dynamodb::types::Put, DbError> {
        aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| DbError::Other(anyhow!("build a put: {e}")))
    }

    /// A strongly consistent `GetItem` on the main table; `doing` names it in errors.
    pub(crate) async fn get(&self, key: &keys::Key, doing: impl FnOnce() -> String) -> Result<Option<Item>, DbError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| db_error(e, doing))?;
        Ok(output.item)
    }
}

/// `BatchGetItem` takes at most this many keys in one request.
const BATCH_GET_KEYS: usize = 100;

impl DynamoStore {
    /// Strongly consistent reads of several items of the main table in one request
    /// (`BatchGetItem`, 100 keys each) instead of one `GetItem` each; the items found,
    /// by key. Keys it leaves unprocessed are asked for again after a jittered pause
    /// ([`RetryPolicy::UNPROCESSED_KEYS`]), then the read is unavailable. `doing` names
    /// it in errors.
    pub(crate) async fn get_many(
        &self,
        keys: &[keys::Key],
        doing: impl Fn() -> String,
    ) -> Result<HashMap<keys::Key, Item>, DbError> {
        self.batch_read(keys, true, doing).await
    }

    /// [`Self::get_many`] read eventually consistent: half the read units, spread over
    /// the partition's copies, and a change of the last second may not show yet. For
    /// what may be that old: a product's name and price as an order copies them.
    pub(crate) async fn get_many_eventually(
        &self,
        keys: &[keys::Key],
        doing: impl Fn() -> String,
    ) -> Result<HashMap<keys::Key, Item>, DbError> {
        self.batch_read(keys, false, doing).await
    }

    async fn batch_read(
        &self,
        keys: &[keys::Key],
        consistent: bool,
        doing: impl Fn() -> String,
    ) -> Result<HashMap<keys::Key, Item>, DbError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut unique: Vec<&keys::Key> = Vec::with_capacity(keys.len());
        for key in keys {
            // DynamoDB refuses a request that names one key twice.
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        let mut found = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_KEYS) {
            let mut wanted: Vec<Item> = chunk.iter().map(|key| key.item()).collect();
            let mut retry = 0;
            loop {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(wanted))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| DbError::Other(anyhow!("build a batch read: {e}")))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| db_error(e, &doing))?;
                for item in output.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    let key = keys::Key::of_item(&item).map_err(DbError::Other)?;
                    found.insert(key, item);
                }
                wanted =
                    output.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
                if wanted.is_empty() {
                    break;
                }
                let Some(pause) = RetryPolicy::UNPROCESSED_KEYS.delay(retry) else {
                    return Err(DbError::Unavailable(anyhow!(
                        "{}: {} keys still unprocessed after {retry} more requests",
                        doing(),
                        wanted.len()
                    )));
                };
                tokio::time::sleep(pause).await;
                retry += 1;
            }
        }
        Ok(found)
    }
}

/// A DynamoDB client from the process's shared SDK configuration
/// ([`crate::adapters::aws_sdk_config`]).
pub async fn client_from_env() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(crate::adapters::aws_sdk_config().await)
}

/// Storage failures, split the way callers must react to them.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Network trouble, throttling, timeouts: nothing is known to have happened.
    #[error("DynamoDB unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Other(anyhow::Error),
}

impl DbError {
    pub fn context(self, context: String) -> DbError {
        match self {
            DbError::Unavailable(e) => DbError::Unavailable(e.context(context)),
            DbError::Other(e) => DbError::Other(e.context(context)),
        }
    }
}

/// Classifies an SDK error and attaches what was being done.
pub fn db_error<E, R>(err: SdkError<E, R>, doing: impl FnOnce() -> String) -> DbError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionInProgressException"
            )
        ),
        _ => false,
    };
    let detailed = anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err)).context(doing());
    if transient {
        DbError::Unavailable(detailed)
    } else {
        DbError::Other(detailed)
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        other => Err(anyhow!("attribute {name} is not a string: {other:?}")),
    }
}

pub fn get_n(item: &Item, name: &str) -> anyhow::Result<Decimal> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => {
            Decimal::from_str_exact(value).with_context(|| format!("attribute {name} = {value} is not a decimal"))
        }
        other => Err(anyhow!("attribute {name} is not a number: {other:?}")),
    }
}

pub fn get_u64(item: &Item, name: &str) -> anyhow::Result<u64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => {
            value.parse().with_context(|| format!("attribute {name} = {value} is not an integer"))
        }
        other => Err(anyhow!("attribute {name} is not a number: {other:?}")),
    }
}

pub fn get_time(item: &Item, name: &str) -> anyhow::Result<time::OffsetDateTime> {
    let text = get_s(item, name)?;
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("attribute {name} = {text} is not RFC 3339"))?;
    Ok(at.to_offset(time::UtcOffset::UTC))
}

/// An optional time attribute: absent is `None`, present must parse.
pub fn get_optional_time(item: &Item, name: &str) -> anyhow::Result<Option<time::OffsetDateTime>> {
    item.get(name).map(|_| get_time(item, name)).transpose()
}

/// An optional string attribute parsed as `T` (an id): absent is `None`, present must parse.
pub fn get_optional_parsed<T: std::str::FromStr>(item: &Item, name: &str) -> anyhow::Result<Option<T>> {
    item.get(name)
        .map(|_| {
            let text = get_s(item, name)?;
            text.parse().map_err(|_| anyhow!("attribute {name} = {text} is not a valid id"))
        })
        .transpose()
}

pub fn get_money(item: &Item, name: &str) -> anyhow::Result<crate::money::Money> {
    let value = get_n(item, name)?;
    crate::money::Money::from_decimal(value).map_err(|e| anyhow!("attribute {name} = {value}: {e}"))
}
