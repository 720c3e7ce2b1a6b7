//! What writes cost, decided before the write is forwarded: a forwarded write commits.
//!
//! Each written item is charged on its table partition (the item's partition key
//! value) `write_units(max(size before, size after))`: the larger of the stored item
//! and what the write leaves (a delete: the stored item; nothing stored: 1 unit). A
//! `ConditionCheck` is charged the same on the item it reads, and writes no index.
//!
//! Each global secondary index is charged on the partition of the index entry's key,
//! by how the write changes the entry (the projected attributes plus the keys):
//!
//! | entry before | entry after | charge |
//! |---|---|---|
//! | none | none | nothing |
//! | none | present | `write_units(after)` on the new entry's partition |
//! | present | none | `write_units(before)` on the old entry's partition |
//! | present | same key, same attributes | nothing |
//! | present | same key, other attributes | `write_units(max(before, after))` |
//! | present | moved (another key) | `write_units(before)` on the old partition and `write_units(after)` on the new |
//!
//! In a transaction the table charge is doubled and the index charges are not: the
//! figures dynoxide's authors captured against AWS (a GSI key move in a transaction
//! charged the table 2 × 2 and the index 2 + 2, not 8).
//!
//! The item before comes from the engine ([`keys_to_read`], read just before); the item
//! after from the request (`Item`) or by applying the `UpdateExpression` to the item
//! before ([`crate::update`]). An expression the model does not understand is sized as
//! the item before plus every value the request carries, and moves no index key.

use serde_json::Value;

use super::{empty, object, Admission, Charge, Op, Plan, PlanItem, Schemas, Stored, Target};
use crate::schema::{IndexSchema, TableSchema};
use crate::size::{item_size, Item};
use crate::units::{write_units, Axis, TRANSACTION_FACTOR};

/// The items a write needs to see as stored before it is charged: by table, each key.
pub fn keys_to_read(op: Op, request: &Value, schemas: &Schemas) -> Vec<(String, Item)> {
    let mut keys = Vec::new();
    for (table, action, body, _) in actions(op, request) {
        let Some(schema) = schemas.get(table) else { continue };
        let key = match action {
            Action::Put => body.get("Item").and_then(object).and_then(|item| schema.key_of(item)),
            _ => body.get("Key").and_then(object).cloned(),
        };
        if let Some(key) = key {
            keys.push((table.to_owned(), key));
        }
    }
    keys
}

/// The charges of a write; `None` when it names a table the model does not know or
/// is malformed (it is forwarded uncharged, and the engine answers it).
pub fn writes(op: Op, request: &Value, schemas: &Schemas, stored: &Stored) -> Option<Plan> {
    let (admission, factor) = match op {
        Op::PutItem | Op::UpdateItem | Op::DeleteItem => (Admission::Whole, 1.0),
        Op::TransactWriteItems => (Admission::Transaction, TRANSACTION_FACTOR),
        Op::BatchWriteItem => (Admission::EachItem, 1.0),
        _ => return None,
    };
    let mut items = Vec::new();
    for (table, action, body, position) in actions(op, request) {
        let schema = schemas.get(table)?;
        let charges = charges(schema, action, body, stored, factor)?;
        items.push(PlanItem { table: table.to_owned(), position, charges });
    }
    if items.is_empty() {
        return None;
    }
    Some(Plan { admission, items })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Put,
    Update,
    Delete,
    Check,
}

/// Each item a write touches: its table, what is done to it, the object that says so
/// (a `PutItem` request, a transaction's `Put`, a batch's `PutRequest` …) and its
/// place ([`PlanItem::position`]).
fn actions(op: Op, request: &Value) -> Vec<(&str, Action, &Value, usize)> {
    fn table(body: &Value) -> Option<&str> {
        body.get("TableName").and_then(Value::as_str)
    }
    let mut actions = Vec::new();
    match op {
        Op::PutItem | Op::UpdateItem | Op::DeleteItem => {
            let action = match op {
                Op::PutItem => Action::Put,
                Op::UpdateItem => Action::Update,
                _ => Action::Delete,
            };
            actions.extend(table(request).map(|name| (name, action, request, 0)));
        }
        Op::TransactWriteItems => {
            let items = request.get("TransactItems").and_then(Value::as_array).into_iter().flatten();
            for (position, item) in items.enumerate() {
                let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
                let action = match kind.as_str() {
                    "Put" => Action::Put,
                    "Update" => Action::Update,
                    "Delete" => Action::Delete,
                    _ => Action::Check,
                };
                actions.extend(table(body).map(|name| (name, action, body, position)));
            }
        }
        Op::BatchWriteItem => {
            for (name, requests) in request.get("RequestItems").and_then(Value::as_object).into_iter().flatten() {
                for (position, entry) in requests.as_array().into_iter().flatten().enumerate() {
                    if let Some(put) = entry.get("PutRequest") {
                        actions.push((name.as_str(), Action::Put, put, position));
                    } else if let Some(delete) = entry.get("DeleteRequest") {
                        actions.push((name.as_str(), Action::Delete, delete, position));
                    }
                }
            }
        }
        _ => {}
    }
    actions
}

fn charges(schema: &TableSchema, action: Action, body: &Value, stored: &Stored, factor: f64) -> Option<Vec<Charge>> {
    let key = match action {
        Action::Put => schema.key_of(object(body.get("Item")?)?)?,
        _ => object(body.get("Key")?)?.clone(),
    };
    let partition = schema.partition_of(&key)?;
    let before = stored.get(&schema.name, &schema.key_id(&key)?);
    let after: Option<Item> = match action {
        Action::Put => Some(object(body.get("Item")?)?.clone()),
        Action::Update => Some(updated(before.unwrap_or(&key), body)),
        Action::Delete | Action::Check => None,
    };
    let bytes = before.map_or(0, item_size).max(after.as_ref().map_or(0, item_size));
    let table_charge = Charge {
        target: Target::table(schema, Some(partition)),
        axis: Axis::Write,
        units: factor * write_units(bytes),
    };
    let mut charges = vec![table_charge];
    if action != Action::Check {
        for index in &schema.indexes {
            charges.extend(index_writes(schema, index, before, after.as_ref()));
        }
    }
    Some(charges)
}

/// The item an `UpdateItem` leaves, or an estimate of it ([`super`]).
fn updated(before: &Item, update: &Value) -> Item {
    let names = update.get("ExpressionAttributeNames").and_then(object).unwrap_or(empty());
    let values = update.get("ExpressionAttributeValues").and_then(object).unwrap_or(empty());
    let expression = update.get("UpdateExpression").and_then(Value::as_str).unwrap_or_default();
    crate::update::apply(before, expression, names, values).unwrap_or_else(|| {
        // Every value the request carries, under its placeholder: names no key attribute.
        let mut estimate = before.clone();
        estimate.extend(values.iter().map(|(placeholder, value)| (placeholder.clone(), value.clone())));
        estimate
    })
}

fn index_writes(schema: &TableSchema, index: &IndexSchema, before: Option<&Item>, after: Option<&Item>) -> Vec<Charge> {
    let old = before.and_then(|item| index.entry(schema, item));
    let new = after.and_then(|item| index.entry(schema, item));
    let charge = |partition: &str, bytes: usize| Charge {
        target: Target::index(schema, index, Some(partition.to_owned())),
        axis: Axis::Write,
        units: write_units(bytes),
    };
    match (old, new) {
        (None, None) => vec![],
        (None, Some(new)) => vec![charge(&new.partition, new.size())],
        (Some(old), None) => vec![charge(&old.partition, old.size())],
        (Some(old), Some(new)) if (&old.partition, &old.sort) == (&new.partition, &new.sort) => {
            if old.projected == new.projected {
                vec![]
            } else {
                vec![charge(&new.partition, old.size().max(new.size()))]
            }
        }
        (Some(old), Some(new)) => vec![charge(&old.partition, old.size()), charge(&new.partition, new.size())],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::schema::tests::{item, main_table};

    fn schemas() -> Schemas {
        Schemas::from([("rushcart-main".to_owned(), Arc::new(main_table()))])
    }

    /// (index, partition, units) of each charge, in order.
    fn units(plan: &Plan, at: usize) -> Vec<(Option<String>, String, f64)> {
        plan.items[at]
            .charges
            .iter()
            .map(|c| (c.target.index.clone(), c.target.partition.clone().unwrap_or_default(), c.units))
            .collect()
    }

    fn product(stock: &str, pad: usize) -> Value {
        json!({
            "pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}, "gsi1pk": {"S": "PRODUCTS"},
            "gsi1sk": {"S": "1"}, "stock": {"N": stock}, "pad": {"S": "x".repeat(pad)}
        })
    }

    fn stored(items: &[Value]) -> Stored {
        let table = main_table();
        let mut stored = Stored::default();
        for value in items {
            let item = item(value.clone());
            stored.insert("rushcart-main", table.key_id(&item).expect("a key"), item);
        }
        stored
    }

    #[test]
    fn a_put_of_a_new_item_charges_its_size_and_its_index_entry() {
        let request = json!({"TableName": "rushcart-main", "Item": product("5", 1500)});
        let plan = writes(Op::PutItem, &request, &schemas(), &Stored::default()).expect("a plan");
        assert_eq!(plan.admission, Admission::Whole);
        assert_eq!(
            units(&plan, 0),
            vec![(None, "S:PRODUCT#1".into(), 2.0), (Some("gsi1".into()), "S:PRODUCTS".into(), 2.0)]
        );
        assert_eq!(keys_to_read(Op::PutItem, &request, &schemas()).len(), 1);
    }

    #[test]
    fn a_put_is_charged_the_larger_of_the_item_before_and_after() {
        let request = json!({"TableName": "rushcart-main", "Item": product("5", 10)});
        let plan = writes(Op::PutItem, &request, &schemas(), &stored(&[product("5", 3000)])).expect("a plan");
        // 3 KB before, tiny after: the table pays 3; the index entry changed in place: 3.
        assert_eq!(
            units(&plan, 0),
            vec![(None, "S:PRODUCT#1".into(), 3.0), (Some("gsi1".into()), "S:PRODUCTS".into(), 3.0)]
        );
        // Rewriting the same item changes no index entry.
        let same = json!({"TableName": "rushcart-main", "Item": product("5", 10)});
        let plan = writes(Op::PutItem, &same, &schemas(), &stored(&[product("5", 10)])).expect("a plan");
        assert_eq!(units(&plan, 0), vec![(None, "S:PRODUCT#1".into(), 1.0)]);
    }

    #[test]
    fn an_update_is_applied_to_the_stored_item_and_a_removed_index_key_deletes_the_entry() {
        let event = json!({
            "pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER_PAID"},
            "gsi1pk": {"S": "PENDING"}, "gsi1sk": {"S": "t#1"}, "pad": {"S": "x".repeat(1900)}
        });
        let request = json!({
            "TableName": "rushcart-main", "Key": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER_PAID"}},
            "UpdateExpression": "SET publishedAt = :at REMOVE gsi1pk, gsi1sk",
            "ExpressionAttributeValues": {":at": {"S": "2030-01-01T00:00:00Z"}}
        });
        let plan = writes(Op::UpdateItem, &request, &schemas(), &stored(&[event])).expect("a plan");
        assert_eq!(
            units(&plan, 0),
            vec![(None, "S:ORDER#1".into(), 2.0), (Some("gsi1".into()), "S:PENDING".into(), 2.0)]
        );
    }

    #[test]
    fn an_index_key_that_moves_is_charged_on_both_partitions() {
        let order = json!({"pk": {"S": "O"}, "sk": {"S": "ORDER"}, "gsi1pk": {"S": "A"}, "gsi1sk": {"S": "1"}});
        let request = json!({
            "TableName": "rushcart-main", "Key": {"pk": {"S": "O"}, "sk": {"S": "ORDER"}},
            "UpdateExpression": "SET gsi1pk = :b", "ExpressionAttributeValues": {":b": {"S": "B"}}
        });
        let plan = writes(Op::UpdateItem, &request, &schemas(), &stored(&[order])).expect("a plan");
        assert_eq!(
            units(&plan, 0),
            vec![
                (None, "S:O".into(), 1.0),
                (Some("gsi1".into()), "S:A".into(), 1.0),
                (Some("gsi1".into()), "S:B".into(), 1.0)
            ]
        );
    }

    #[test]
    fn a_delete_is_charged_the_stored_item_or_one_unit() {
        let request = json!({"TableName": "rushcart-main", "Key": {"pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}}});
        let plan = writes(Op::DeleteItem, &request, &schemas(), &stored(&[product("1", 2500)])).expect("a plan");
        assert_eq!(
            units(&plan, 0),
            vec![(None, "S:PRODUCT#1".into(), 3.0), (Some("gsi1".into()), "S:PRODUCTS".into(), 3.0)]
        );
        let plan = writes(Op::DeleteItem, &request, &schemas(), &Stored::default()).expect("a plan");
        assert_eq!(units(&plan, 0), vec![(None, "S:PRODUCT#1".into(), 1.0)]);
    }

    #[test]
    fn a_transaction_doubles_each_items_table_charge_but_not_its_index_charge() {
        let request = json!({"TransactItems": [
            {"Update": {"TableName": "rushcart-main", "Key": {"pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}},
                        "UpdateExpression": "SET stock = stock - :q", "ExpressionAttributeValues": {":q": {"N": "1"}}}},
            {"ConditionCheck": {"TableName": "rushcart-main", "Key": {"pk": {"S": "USER#1"}, "sk": {"S": "PROFILE"}},
                                "ConditionExpression": "attribute_exists(pk)"}},
            {"Put": {"TableName": "rushcart-main", "Item": {"pk": {"S": "USER#1"}, "sk": {"S": "HIST#1"}}}}
        ]});
        let plan = writes(Op::TransactWriteItems, &request, &schemas(), &stored(&[product("5", 10)])).expect("a plan");
        assert_eq!(plan.admission, Admission::Transaction);
        assert_eq!(
            units(&plan, 0),
            vec![(None, "S:PRODUCT#1".into(), 2.0), (Some("gsi1".into()), "S:PRODUCTS".into(), 1.0)]
        );
        assert_eq!(units(&plan, 1), vec![(None, "S:USER#1".into(), 2.0)]);
        assert_eq!(units(&plan, 2), vec![(None, "S:USER#1".into(), 2.0)]);
        assert_eq!(plan.items.iter().map(|i| i.position).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(keys_to_read(Op::TransactWriteItems, &request, &schemas()).len(), 3);
    }

    #[test]
    fn a_batch_write_plans_each_request_in_its_tables_list() {
        let request = json!({"RequestItems": {"rushcart-main": [
            {"PutRequest": {"Item": {"pk": {"S": "A"}, "sk": {"S": "1"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "B"}, "sk": {"S": "1"}}}}
        ]}});
        let plan = writes(Op::BatchWriteItem, &request, &schemas(), &Stored::default()).expect("a plan");
        assert_eq!(plan.admission, Admission::EachItem);
        assert_eq!(plan.items.iter().map(|i| i.position).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(units(&plan, 1), vec![(None, "S:B".into(), 1.0)]);
    }

    #[test]
    fn an_expression_beyond_the_model_is_sized_with_every_value_it_carries() {
        let request = json!({
            "TableName": "rushcart-main", "Key": {"pk": {"S": "P"}, "sk": {"S": "S"}},
            "UpdateExpression": "SET a = size(b)", "ExpressionAttributeValues": {":big": {"S": "x".repeat(2000)}}
        });
        let plan = writes(Op::UpdateItem, &request, &schemas(), &Stored::default()).expect("a plan");
        assert_eq!(units(&plan, 0), vec![(None, "S:P".into(), 2.0)]);
    }
}
