//! What the model knows of a table: its key, its global secondary indexes and their
//! projections, and the ARNs a throttling reason names. Read from the engine's
//! `DescribeTable` answer, never written down per table.
//!
//! Local secondary indexes are not modelled: they live in the table's own partitions
//! (rushcart has none).

use anyhow::Context as _;
use serde_json::Value;

use crate::size::{item_size, Item};

#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub arn: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    pub indexes: Vec<IndexSchema>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexSchema {
    pub name: String,
    pub arn: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    pub projection: Projection,
}

/// Which attributes an index entry holds besides the table's and the index's keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// An item's entry in an index: where it sits and what it weighs.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The index partition key value ([`key_string`]).
    pub partition: String,
    /// The index sort key value, if the index has one.
    pub sort: Option<String>,
    /// The projected attributes (keys included).
    pub projected: Item,
}

impl IndexEntry {
    pub fn size(&self) -> usize {
        item_size(&self.projected)
    }
}

/// `S:USER#1`, `N:42`, `B:AAEC`: a key attribute's value as one string, the form the
/// model keys its partitions by and the metrics show.
pub fn key_string(value: &Value) -> Option<String> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    match kind.as_str() {
        "S" | "N" | "B" => Some(format!("{kind}:{}", inner.as_str()?)),
        _ => None,
    }
}

impl TableSchema {
    /// From a `DescribeTable` answer (`{"Table": {…}}`) or its `Table` object.
    pub fn from_description(description: &Value) -> anyhow::Result<TableSchema> {
        let table = description.get("Table").unwrap_or(description);
        let name = text(table, "TableName")?;
        let (hash_key, range_key) = key_schema(table).with_context(|| format!("the key schema of {name}"))?;
        let arn = table
            .get("TableArn")
            .and_then(Value::as_str)
            .map_or_else(|| format!("arn:aws:dynamodb:us-east-1:000000000000:table/{name}"), str::to_owned);
        let mut indexes = Vec::new();
        for index in table.get("GlobalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
            let index_name = text(index, "IndexName")?;
            let (hash_key, range_key) =
                key_schema(index).with_context(|| format!("the key schema of {name} index {index_name}"))?;
            let projection = match index.pointer("/Projection/ProjectionType").and_then(Value::as_str) {
                Some("KEYS_ONLY") => Projection::KeysOnly,
                Some("INCLUDE") => Projection::Include(
                    index
                        .pointer("/Projection/NonKeyAttributes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                ),
                _ => Projection::All,
            };
            let index_arn = index
                .get("IndexArn")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{arn}/index/{index_name}"), str::to_owned);
            indexes.push(IndexSchema { name: index_name, arn: index_arn, hash_key, range_key, projection });
        }
        Ok(TableSchema { name, arn, hash_key, range_key, indexes })
    }

    /// The partition key value of an item (or a key), or `None` if it lacks one.
    pub fn partition_of(&self, item: &Item) -> Option<String> {
        item.get(&self.hash_key).and_then(key_string)
    }

    /// The primary key attributes of an item, or `None` if it lacks one.
    pub fn key_of(&self, item: &Item) -> Option<Item> {
        let mut key = Item::new();
        for name in std::iter::once(&self.hash_key).chain(&self.range_key) {
            key.insert(name.clone(), item.get(name)?.clone());
        }
        Some(key)
    }

    /// The primary key as one string: the identity of an item.
    pub fn key_id(&self, item: &Item) -> Option<String> {
        let partition = self.partition_of(item)?;
        match &self.range_key {
            Some(range) => Some(format!("{partition}|{}", key_string(item.get(range)?)?)),
            None => Some(partition),
        }
    }

    pub fn index(&self, name: &str) -> Option<&IndexSchema> {
        self.indexes.iter().find(|index| index.name == name)
    }
}

impl IndexSchema {
    /// The item's entry in this index, or `None` when the item is not in it (a sparse
    /// index holds only the items that carry its key attributes).
    pub fn entry(&self, table: &TableSchema, item: &Item) -> Option<IndexEntry> {
        let partition = key_string(item.get(&self.hash_key)?)?;
        let sort = match &self.range_key {
            Some(range) => Some(key_string(item.get(range)?)?),
            None => None,
        };
        let keys = [Some(&table.hash_key), table.range_key.as_ref(), Some(&self.hash_key), self.range_key.as_ref()];
        let projected: Item = match &self.projection {
            Projection::All => item.clone(),
            Projection::KeysOnly | Projection::Include(_) => {
                let included = match &self.projection {
                    Projection::Include(names) => names.as_slice(),
                    _ => &[],
                };
                item.iter()
                    .filter(|(name, _)| keys.iter().flatten().any(|key| key == name) || included.contains(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect()
            }
        };
        Some(IndexEntry { partition, sort, projected })
    }
}

fn text(value: &Value, field: &str) -> anyhow::Result<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned).with_context(|| format!("no {field}"))
}

fn key_schema(value: &Value) -> anyhow::Result<(String, Option<String>)> {
    let elements = value.get("KeySchema").and_then(Value::as_array).context("no KeySchema")?;
    let named = |kind: &str| {
        elements
            .iter()
            .find(|element| element.get("KeyType").and_then(Value::as_str) == Some(kind))
            .and_then(|element| element.get("AttributeName").and_then(Value::as_str))
            .map(str::to_owned)
    };
    Ok((named("HASH").context("no HASH key")?, named("RANGE")))
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// rushcart's main table as the engine describes it.
    pub(crate) fn main_table() -> TableSchema {
        TableSchema::from_description(&json!({"Table": {
            "TableName": "rushcart-main",
            "TableArn": "arn:aws:dynamodb:us-east-1:000000000000:table/rushcart-main",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"}
            ],
            "GlobalSecondaryIndexes": [{
                "IndexName": "gsi1",
                "IndexArn": "arn:aws:dynamodb:us-east-1:000000000000:table/rushcart-main/index/gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"}
                ],
                "Projection": {"ProjectionType": "ALL"}
            }]
        }}))
        .expect("a description")
    }

    pub(crate) fn item(value: Value) -> Item {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_description_gives_the_keys_the_indexes_and_their_arns() {
        let table = main_table();
        assert_eq!((table.hash_key.as_str(), table.range_key.as_deref()), ("pk", Some("sk")));
        let index = table.index("gsi1").expect("gsi1");
        assert_eq!(index.arn, "arn:aws:dynamodb:us-east-1:000000000000:table/rushcart-main/index/gsi1");
        assert_eq!(index.projection, Projection::All);
    }

    #[test]
    fn an_item_outside_a_sparse_index_has_no_entry() {
        let table = main_table();
        let index = table.index("gsi1").expect("gsi1");
        let profile = item(json!({"pk": {"S": "USER#1"}, "sk": {"S": "PROFILE"}}));
        assert_eq!(index.entry(&table, &profile), None);
        let product = item(json!({
            "pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"},
            "gsi1pk": {"S": "PRODUCTS"}, "gsi1sk": {"S": "1"}, "stock": {"N": "5"}
        }));
        let entry = index.entry(&table, &product).expect("in the index");
        assert_eq!((entry.partition.as_str(), entry.sort.as_deref()), ("S:PRODUCTS", Some("S:1")));
        assert_eq!(entry.size(), item_size(&product));
    }

    #[test]
    fn a_keys_only_or_include_entry_holds_the_keys_and_the_named_attributes() {
        let mut table = main_table();
        let product = item(json!({
            "pk": {"S": "P"}, "sk": {"S": "S"}, "gsi1pk": {"S": "G"}, "gsi1sk": {"S": "H"},
            "name": {"S": "a long product name"}, "stock": {"N": "5"}
        }));
        table.indexes[0].projection = Projection::KeysOnly;
        let keys_only = table.indexes[0].entry(&table, &product).expect("an entry");
        assert_eq!(keys_only.size(), 2 * (2 + 1) + 2 * (6 + 1));
        table.indexes[0].projection = Projection::Include(vec!["stock".to_owned()]);
        let include = table.indexes[0].entry(&table, &product).expect("an entry");
        assert_eq!(include.size(), keys_only.size() + 5 + 2);
    }

    #[test]
    fn key_strings_name_the_type() {
        assert_eq!(key_string(&json!({"S": "USER#1"})).as_deref(), Some("S:USER#1"));
        assert_eq!(key_string(&json!({"N": "42"})).as_deref(), Some("N:42"));
        assert_eq!(key_string(&json!({"BOOL": true})), None);
        let table = main_table();
        let key = item(json!({"pk": {"S": "A"}, "sk": {"S": "B"}, "other": {"N": "1"}}));
        assert_eq!(table.key_id(&key).as_deref(), Some("S:A|S:B"));
        assert_eq!(table.key_of(&key).map(|k| k.len()), Some(2));
    }
}
