//! What reads cost.
//!
//! | request | charged to | units |
//! |---|---|---|
//! | `GetItem` | the key's table partition | the item's size read once (a missing item: the minimum) |
//! | `BatchGetItem` | each key's table partition | each item read once, rounded up item by item |
//! | `Query` | the partition its key condition names, on the table or the index queried | the returned items' sizes summed, then rounded up once |
//! | `Scan` | no partition: the table's ceiling only | as `Query` |
//! | `TransactGetItems` | each item's table partition | twice a strongly consistent read of the item |
//!
//! Before forwarding, each item takes its minimum ([`super`]); [`settlement`] charges
//! the rest from the answer. A read is sized on what the answer holds: a
//! `ProjectionExpression` makes it look smaller than the item DynamoDB charges for,
//! and a `FilterExpression` hides the items it dropped (DynamoDB charges for them).

use serde_json::Value;

use super::{empty, object, Admission, Charge, Op, Plan, PlanItem, Schemas, Target};
use crate::expression::key_condition_partition;
use crate::schema::{key_string, TableSchema};
use crate::size::item_size;
use crate::units::{read_units, Axis, Consistency, TRANSACTION_FACTOR};

/// The minimum each read takes before it is forwarded; `None` when the request names
/// no table the model knows, or is not a read.
pub fn reads(op: Op, request: &Value, schemas: &Schemas) -> Option<Plan> {
    match op {
        Op::GetItem => {
            let schema = schemas.get(request.get("TableName")?.as_str()?)?;
            let partition = schema.partition_of(object(request.get("Key")?)?)?;
            let consistency = consistency(request);
            let charge = read(Target::table(schema, Some(partition)), read_units(0, consistency));
            Some(whole(schema, charge))
        }
        Op::Query | Op::Scan => {
            let schema = schemas.get(request.get("TableName")?.as_str()?)?;
            let target = scanned(op, request, schema)?;
            Some(whole(schema, read(target, read_units(0, consistency(request)))))
        }
        Op::BatchGetItem => {
            let mut items = Vec::new();
            for (table, wanted) in request.get("RequestItems")?.as_object()? {
                let schema = schemas.get(table)?;
                let consistency = consistency(wanted);
                for (position, key) in wanted.get("Keys")?.as_array()?.iter().enumerate() {
                    let partition = schema.partition_of(object(key)?)?;
                    let charge = read(Target::table(schema, Some(partition)), read_units(0, consistency));
                    items.push(PlanItem { table: table.clone(), position, charges: vec![charge] });
                }
            }
            Some(Plan { admission: Admission::EachItem, items })
        }
        Op::TransactGetItems => {
            let mut items = Vec::new();
            for (position, item) in request.get("TransactItems")?.as_array()?.iter().enumerate() {
                let get = item.get("Get")?;
                let schema = schemas.get(get.get("TableName")?.as_str()?)?;
                let partition = schema.partition_of(object(get.get("Key")?)?)?;
                let units = TRANSACTION_FACTOR * read_units(0, Consistency::Strong);
                let charge = read(Target::table(schema, Some(partition)), units);
                items.push(PlanItem { table: schema.name.clone(), position, charges: vec![charge] });
            }
            Some(Plan { admission: Admission::Transaction, items })
        }
        _ => None,
    }
}

/// What a forwarded read costs beyond the minimum it took, from its answer.
pub fn settlement(op: Op, request: &Value, answer: &Value, schemas: &Schemas) -> Vec<Charge> {
    settle(op, request, answer, schemas).unwrap_or_default()
}

fn settle(op: Op, request: &Value, answer: &Value, schemas: &Schemas) -> Option<Vec<Charge>> {
    match op {
        Op::GetItem => {
            let schema = schemas.get(request.get("TableName")?.as_str()?)?;
            let partition = schema.partition_of(object(request.get("Key")?)?)?;
            let consistency = consistency(request);
            let size = answer.get("Item").and_then(object).map_or(0, item_size);
            let more = read_units(size, consistency) - read_units(0, consistency);
            Some(vec![read(Target::table(schema, Some(partition)), more)])
        }
        Op::Query | Op::Scan => {
            let schema = schemas.get(request.get("TableName")?.as_str()?)?;
            let target = scanned(op, request, schema)?;
            let consistency = consistency(request);
            let size: usize = answer
                .get("Items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(object)
                .map(item_size)
                .sum();
            Some(vec![read(target, read_units(size, consistency) - read_units(0, consistency))])
        }
        Op::BatchGetItem => {
            let mut charges = Vec::new();
            for (table, found) in answer.get("Responses")?.as_object()? {
                let Some(schema) = schemas.get(table) else { continue };
                let wanted = request.pointer(&format!("/RequestItems/{}", escape(table)));
                let consistency = wanted.map_or(Consistency::Eventual, consistency);
                for item in found.as_array().into_iter().flatten().filter_map(object) {
                    // An item projected without its key cannot be placed: it keeps its minimum.
                    let Some(partition) = schema.partition_of(item) else { continue };
                    let more = read_units(item_size(item), consistency) - read_units(0, consistency);
                    charges.push(read(Target::table(schema, Some(partition)), more));
                }
            }
            Some(charges)
        }
        Op::TransactGetItems => {
            let mut charges = Vec::new();
            let responses = answer.get("Responses")?.as_array()?;
            for (item, response) in request.get("TransactItems")?.as_array()?.iter().zip(responses) {
                let get = item.get("Get")?;
                let schema = schemas.get(get.get("TableName")?.as_str()?)?;
                let partition = schema.partition_of(object(get.get("Key")?)?)?;
                let size = response.get("Item").and_then(object).map_or(0, item_size);
                let more =
                    TRANSACTION_FACTOR * (read_units(size, Consistency::Strong) - read_units(0, Consistency::Strong));
                charges.push(read(Target::table(schema, Some(partition)), more));
            }
            Some(charges)
        }
        _ => None,
    }
}

/// Where a `Query` or `Scan` reads: the index it names or the table; for a `Query`,
/// the partition its key condition names.
fn scanned(op: Op, request: &Value, schema: &TableSchema) -> Option<Target> {
    let index = match request.get("IndexName").and_then(Value::as_str) {
        Some(name) => Some(schema.index(name)?),
        None => None,
    };
    let partition = match op {
        Op::Query => {
            let hash_key = index.map_or(&schema.hash_key, |index| &index.hash_key);
            Some(key_string(&query_partition(request, hash_key)?)?)
        }
        _ => None,
    };
    Some(match index {
        Some(index) => Target::index(schema, index, partition),
        None => Target::table(schema, partition),
    })
}

/// The partition key value of a `Query`: from `KeyConditionExpression`, or the legacy
/// `KeyConditions`.
fn query_partition(request: &Value, hash_key: &str) -> Option<Value> {
    if let Some(expression) = request.get("KeyConditionExpression").and_then(Value::as_str) {
        let names = request.get("ExpressionAttributeNames").and_then(object).unwrap_or(empty());
        let values = request.get("ExpressionAttributeValues").and_then(object).unwrap_or(empty());
        return key_condition_partition(expression, hash_key, names, values);
    }
    request.get("KeyConditions")?.get(hash_key)?.get("AttributeValueList")?.get(0).cloned()
}

fn consistency(request: &Value) -> Consistency {
    Consistency::from_flag(request.get("ConsistentRead").and_then(Value::as_bool))
}

fn read(target: Target, units: f64) -> Charge {
    Charge { target, axis: Axis::Read, units }
}

fn whole(schema: &TableSchema, charge: Charge) -> Plan {
    Plan {
        admission: Admission::Whole,
        items: vec![PlanItem { table: schema.name.clone(), position: 0, charges: vec![charge] }],
    }
}

/// A table name as one JSON pointer step.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::schema::tests::main_table;

    fn schemas() -> Schemas {
        Schemas::from([("rushcart-main".to_owned(), Arc::new(main_table()))])
    }

    fn units(charges: &[Charge]) -> Vec<(Option<String>, Option<String>, f64)> {
        charges.iter().map(|c| (c.target.index.clone(), c.target.partition.clone(), c.units)).collect()
    }

    fn padded(pk: &str, sk: &str, bytes: usize) -> Value {
        // pk/sk names and values, plus "pad" (3) and its string.
        let used = 2 + pk.len() + 2 + sk.len() + 3;
        json!({"pk": {"S": pk}, "sk": {"S": sk}, "pad": {"S": "x".repeat(bytes - used)}})
    }

    #[test]
    fn a_get_takes_its_minimum_then_the_rest_of_the_item_read() {
        let strong =
            json!({"TableName": "rushcart-main", "Key": {"pk": {"S": "P"}, "sk": {"S": "S"}}, "ConsistentRead": true});
        let plan = reads(Op::GetItem, &strong, &schemas()).expect("a plan");
        assert_eq!(plan.admission, Admission::Whole);
        assert_eq!(units(&plan.items[0].charges), vec![(None, Some("S:P".into()), 1.0)]);
        // 9,000 bytes: 3 strong units, 2 more than the minimum.
        let answer = json!({"Item": padded("P", "S", 9000)});
        assert_eq!(
            units(&settlement(Op::GetItem, &strong, &answer, &schemas())),
            vec![(None, Some("S:P".into()), 2.0)]
        );
        // Eventually consistent: half. A missing item costs the minimum only.
        let eventual = json!({"TableName": "rushcart-main", "Key": {"pk": {"S": "P"}, "sk": {"S": "S"}}});
        assert_eq!(
            units(&settlement(Op::GetItem, &eventual, &answer, &schemas())),
            vec![(None, Some("S:P".into()), 1.0)]
        );
        assert_eq!(
            units(&settlement(Op::GetItem, &eventual, &json!({}), &schemas())),
            vec![(None, Some("S:P".into()), 0.0)]
        );
    }

    #[test]
    fn a_query_sums_the_items_before_rounding_and_charges_the_index_it_reads() {
        let request = json!({
            "TableName": "rushcart-main", "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :kind", "ExpressionAttributeValues": {":kind": {"S": "PRODUCTS"}}
        });
        let plan = reads(Op::Query, &request, &schemas()).expect("a plan");
        assert_eq!(units(&plan.items[0].charges), vec![(Some("gsi1".into()), Some("S:PRODUCTS".into()), 0.5)]);
        // Three items of 2,000 bytes: 6,000 bytes read at once, 2 strong units, 1 eventual.
        let answer = json!({"Items": [padded("A", "1", 2000), padded("B", "1", 2000), padded("C", "1", 2000)]});
        assert_eq!(
            units(&settlement(Op::Query, &request, &answer, &schemas())),
            vec![(Some("gsi1".into()), Some("S:PRODUCTS".into()), 0.5)]
        );
    }

    #[test]
    fn a_scan_is_charged_to_no_partition() {
        let request = json!({"TableName": "rushcart-main"});
        let plan = reads(Op::Scan, &request, &schemas()).expect("a plan");
        assert_eq!(units(&plan.items[0].charges), vec![(None, None, 0.5)]);
    }

    #[test]
    fn a_batch_get_rounds_each_item_and_a_transaction_doubles_strong_reads() {
        let batch = json!({"RequestItems": {"rushcart-main": {"ConsistentRead": true, "Keys": [
            {"pk": {"S": "A"}, "sk": {"S": "1"}}, {"pk": {"S": "B"}, "sk": {"S": "1"}}
        ]}}});
        let plan = reads(Op::BatchGetItem, &batch, &schemas()).expect("a plan");
        assert_eq!(plan.admission, Admission::EachItem);
        assert_eq!(plan.items.iter().map(|i| i.position).collect::<Vec<_>>(), vec![0, 1]);
        // Two items of 2,000 bytes: 1 unit each, no more than their minimums.
        let answer = json!({"Responses": {"rushcart-main": [padded("A", "1", 2000), padded("B", "1", 5000)]}});
        assert_eq!(
            units(&settlement(Op::BatchGetItem, &batch, &answer, &schemas())),
            vec![(None, Some("S:A".into()), 0.0), (None, Some("S:B".into()), 1.0)]
        );

        let transaction = json!({"TransactItems": [
            {"Get": {"TableName": "rushcart-main", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}}}},
            {"Get": {"TableName": "rushcart-main", "Key": {"pk": {"S": "B"}, "sk": {"S": "1"}}}}
        ]});
        let plan = reads(Op::TransactGetItems, &transaction, &schemas()).expect("a plan");
        assert_eq!(plan.admission, Admission::Transaction);
        assert_eq!(units(&plan.items[1].charges), vec![(None, Some("S:B".into()), 2.0)]);
        let answer = json!({"Responses": [{"Item": padded("A", "1", 5000)}, {}]});
        assert_eq!(
            units(&settlement(Op::TransactGetItems, &transaction, &answer, &schemas())),
            vec![(None, Some("S:A".into()), 2.0), (None, Some("S:B".into()), 0.0)]
        );
    }

    #[test]
    fn an_unknown_table_is_not_planned() {
        let request = json!({"TableName": "elsewhere", "Key": {"pk": {"S": "P"}, "sk": {"S": "S"}}});
        assert_eq!(reads(Op::GetItem, &request, &schemas()), None);
    }
}
