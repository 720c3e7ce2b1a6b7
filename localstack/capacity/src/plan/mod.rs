//! From a DynamoDB request to what it costs: which partitions of which tables and
//! indexes it draws on, and how many units. Pure functions of the request, the tables'
//! schemas and (for writes) the items as stored before the write.
//!
//! A write is charged in full before it is forwarded: what it costs is known from the
//! request and the stored item. A read's cost depends on what it finds, so it is
//! charged in two steps: its minimum (1 unit strongly consistent, 0.5 eventually) is
//! taken before it is forwarded, and the rest once the answer shows the items
//! ([`settlement`]), which may take a bucket below zero; the partition then refuses
//! reads until it has refilled.
//!
//! - [`reads`]: `GetItem`, `BatchGetItem`, `Query`, `Scan`, `TransactGetItems`.
//! - [`writes`]: `PutItem`, `UpdateItem`, `DeleteItem`, `TransactWriteItems`,
//!   `BatchWriteItem`.

mod reads;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

pub use reads::{reads, settlement};
pub use writes::{keys_to_read, writes};

use crate::schema::TableSchema;
use crate::size::Item;
use crate::units::Axis;

/// The tables' schemas by name, as the engine describes them.
pub type Schemas = HashMap<String, Arc<TableSchema>>;

/// The DynamoDB operations the model charges. Every other operation (DynamoDB Streams,
/// the control plane, PartiQL) passes through uncharged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetItem,
    BatchGetItem,
    Query,
    Scan,
    TransactGetItems,
    PutItem,
    UpdateItem,
    DeleteItem,
    TransactWriteItems,
    BatchWriteItem,
}

impl Op {
    /// The operation an `X-Amz-Target` header names (`DynamoDB_20120810.PutItem`).
    pub fn from_target(target: &str) -> Option<Op> {
        Some(match target.strip_prefix("DynamoDB_20120810.")? {
            "GetItem" => Op::GetItem,
            "BatchGetItem" => Op::BatchGetItem,
            "Query" => Op::Query,
            "Scan" => Op::Scan,
            "TransactGetItems" => Op::TransactGetItems,
            "PutItem" => Op::PutItem,
            "UpdateItem" => Op::UpdateItem,
            "DeleteItem" => Op::DeleteItem,
            "TransactWriteItems" => Op::TransactWriteItems,
            "BatchWriteItem" => Op::BatchWriteItem,
            _ => return None,
        })
    }

    pub fn is_write(self) -> bool {
        matches!(self, Op::PutItem | Op::UpdateItem | Op::DeleteItem | Op::TransactWriteItems | Op::BatchWriteItem)
    }
}

/// Where a charge lands: a partition of a table or of one of its indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub table: String,
    pub index: Option<String>,
    /// The partition key value ([`crate::schema::key_string`]); `None` for a `Scan`,
    /// which no one partition serves (charged to the table's ceiling only).
    pub partition: Option<String>,
    /// The ARN a throttling reason names: the table's or the index's.
    pub arn: String,
}

impl Target {
    pub fn table(schema: &TableSchema, partition: Option<String>) -> Target {
        Target { table: schema.name.clone(), index: None, partition, arn: schema.arn.clone() }
    }

    pub fn index(schema: &TableSchema, index: &crate::schema::IndexSchema, partition: Option<String>) -> Target {
        Target { table: schema.name.clone(), index: Some(index.name.clone()), partition, arn: index.arn.clone() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub target: Target,
    pub axis: Axis,
    pub units: f64,
}

/// How a request's items are admitted, which decides how a throttle is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// One item: admitted, or answered `ProvisionedThroughputExceededException`.
    Whole,
    /// All items or none: a refusal cancels the transaction
    /// (`TransactionCanceledException`, `ThrottlingError` on the refused items).
    Transaction,
    /// Each item on its own: refused items come back unprocessed
    /// (`UnprocessedKeys`, `UnprocessedItems`); all refused is
    /// `ProvisionedThroughputExceededException`.
    EachItem,
}

/// One item of a request and its charges.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    /// The table the item is in.
    pub table: String,
    /// Its place in the request: its index in `TransactItems`, or in its table's
    /// `Keys` or write requests in a batch.
    pub position: usize,
    pub charges: Vec<Charge>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub admission: Admission,
    pub items: Vec<PlanItem>,
}

/// The tables a request names, whose schemas planning needs.
pub fn tables(op: Op, request: &Value) -> Vec<String> {
    let mut names: Vec<String> = match op {
        Op::BatchGetItem | Op::BatchWriteItem => request
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(t, _)| t.clone())
            .collect(),
        Op::TransactGetItems | Op::TransactWriteItems => request
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.values().next()?.get("TableName")?.as_str().map(str::to_owned))
            .collect(),
        _ => request.get("TableName").and_then(Value::as_str).map(str::to_owned).into_iter().collect(),
    };
    names.sort();
    names.dedup();
    names
}

/// The items as stored before a write, by table and key ([`TableSchema::key_id`]).
#[derive(Debug, Clone, Default)]
pub struct Stored {
    items: HashMap<(String, String), Item>,
}

impl Stored {
    pub fn insert(&mut self, table: &str, key_id: String, item: Item) {
        self.items.insert((table.to_owned(), key_id), item);
    }

    pub fn get(&self, table: &str, key_id: &str) -> Option<&Item> {
        self.items.get(&(table.to_owned(), key_id.to_owned()))
    }
}

fn object(value: &Value) -> Option<&Item> {
    value.as_object()
}

fn empty() -> &'static Item {
    static EMPTY: std::sync::OnceLock<Item> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Item::new)
}
