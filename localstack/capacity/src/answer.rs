//! The throttles as DynamoDB answers them, in the JSON the AWS SDK parses:
//!
//! - a refused request: HTTP 400 `ProvisionedThroughputExceededException`, its
//!   `ThrottlingReasons` naming each reason and the ARN of the table or index;
//! - a refused transaction: HTTP 400 `TransactionCanceledException`, one
//!   `CancellationReasons` entry per item in request order, `ThrottlingError` on the
//!   items that did not fit and `None` on the others;
//! - a batch with some items refused: the others forwarded, the refused ones added to
//!   the answer's `UnprocessedKeys` / `UnprocessedItems` ([`split_batch`],
//!   [`merge_unprocessed`]); all refused is `ProvisionedThroughputExceededException`.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::model::{Limit, Refusal, Verdict};
use crate::plan::{Op, Plan};

/// The message DynamoDB gives a throttled on-demand table or a hot key.
pub const HOT_KEY_MESSAGE: &str = "Throughput exceeds the current capacity of your table or index. DynamoDB is \
     automatically scaling your table or index so please try again shortly. If exceptions persist, check if you \
     have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";
/// The message DynamoDB gives a transaction item throttled on an index.
pub const HOT_INDEX_MESSAGE: &str = "Throughput exceeds the current capacity for one or more global secondary \
     indexes. DynamoDB is automatically scaling your index so please try again shortly.";
/// The model's message for a table past its ceiling (`CAPACITY_TABLE_MAX`).
pub const TABLE_MAX_MESSAGE: &str = "Throughput exceeds the maximum throughput configured for the table \
     (CAPACITY_TABLE_MAX).";

/// An answer the proxy gives itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `ProvisionedThroughputExceededException` with the reasons of `refusals`.
pub fn throughput_exceeded<'a>(refusals: impl IntoIterator<Item = &'a Refusal>) -> Answer {
    let mut reasons: Vec<(String, String)> = Vec::new();
    let mut table_max = false;
    for refusal in refusals {
        table_max |= refusal.limit == Limit::TableMax;
        let reason = (refusal.reason(), refusal.target.arn.clone());
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    let reasons: Vec<Value> =
        reasons.into_iter().map(|(reason, resource)| json!({"reason": reason, "resource": resource})).collect();
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": if table_max { TABLE_MAX_MESSAGE } else { HOT_KEY_MESSAGE },
        "ThrottlingReasons": reasons,
    });
    Answer { status: 400, body: body.to_string() }
}

/// `TransactionCanceledException`: `ThrottlingError` on each refused item.
pub fn transaction_cancelled(verdict: &Verdict) -> Answer {
    let reasons: Vec<Value> = verdict
        .refused
        .iter()
        .map(|refusals| match refusals.first() {
            None => json!({"Code": "None"}),
            Some(refusal) => {
                let message = match (refusal.limit, refusal.target.index.is_some()) {
                    (Limit::TableMax, _) => TABLE_MAX_MESSAGE,
                    (Limit::Partition, true) => HOT_INDEX_MESSAGE,
                    (Limit::Partition, false) => HOT_KEY_MESSAGE,
                };
                json!({"Code": "ThrottlingError", "Message": message})
            }
        })
        .collect();
    let codes: Vec<&str> = reasons.iter().filter_map(|reason| reason["Code"].as_str()).collect();
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    Answer { status: 400, body: body.to_string() }
}

/// A batch split by the verdict: the request to forward (the admitted items) and the
/// refused items as the answer lists them unprocessed.
pub fn split_batch(op: Op, request: &Value, plan: &Plan, verdict: &Verdict) -> Option<(Value, Map<String, Value>)> {
    let refused: HashSet<(&str, usize)> = plan
        .items
        .iter()
        .zip(&verdict.refused)
        .filter(|(_, refusals)| !refusals.is_empty())
        .map(|(item, _)| (item.table.as_str(), item.position))
        .collect();
    let mut forwarded = request.clone();
    let mut unprocessed = Map::new();
    let tables = forwarded.get_mut("RequestItems")?.as_object_mut()?;
    for (table, wanted) in tables.iter_mut() {
        let list = match op {
            Op::BatchGetItem => wanted.get_mut("Keys")?.as_array_mut()?,
            Op::BatchWriteItem => wanted.as_array_mut()?,
            _ => return None,
        };
        let mut dropped = Vec::new();
        for (at, entry) in std::mem::take(list).into_iter().enumerate() {
            if refused.contains(&(table.as_str(), at)) {
                dropped.push(entry);
            } else {
                list.push(entry);
            }
        }
        if dropped.is_empty() {
            continue;
        }
        let entry = match op {
            Op::BatchGetItem => {
                // The keys with the rest of their request (consistency, projection).
                let mut keys_and_attributes = wanted.clone();
                keys_and_attributes["Keys"] = Value::Array(dropped);
                keys_and_attributes
            }
            _ => Value::Array(dropped),
        };
        unprocessed.insert(table.clone(), entry);
    }
    tables.retain(|_, wanted| match op {
        Op::BatchGetItem => wanted.get("Keys").and_then(Value::as_array).is_some_and(|keys| !keys.is_empty()),
        _ => wanted.as_array().is_some_and(|entries| !entries.is_empty()),
    });
    Some((forwarded, unprocessed))
}

/// Adds the refused items to a batch's answer, beside any the engine left itself.
pub fn merge_unprocessed(op: Op, answer: &mut Value, unprocessed: Map<String, Value>) {
    let field = match op {
        Op::BatchGetItem => "UnprocessedKeys",
        _ => "UnprocessedItems",
    };
    let Some(answer) = answer.as_object_mut() else { return };
    let listed = answer.entry(field).or_insert_with(|| json!({}));
    if !listed.is_object() {
        *listed = json!({});
    }
    let Some(listed) = listed.as_object_mut() else { return };
    for (table, entry) in unprocessed {
        match listed.get_mut(&table) {
            None => {
                listed.insert(table, entry);
            }
            Some(existing) => {
                let (into, from) = match op {
                    Op::BatchGetItem => (existing.get_mut("Keys"), entry.get("Keys").cloned()),
                    _ => (Some(existing), Some(entry)),
                };
                if let (Some(Value::Array(into)), Some(Value::Array(from))) = (into, from) {
                    into.extend(from);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Admission, PlanItem, Target};
    use crate::units::Axis;

    fn refusal(index: Option<&str>, limit: Limit) -> Refusal {
        let target = Target {
            table: "t".into(),
            index: index.map(str::to_owned),
            partition: Some("S:HOT".into()),
            arn: match index {
                Some(index) => format!("arn:aws:dynamodb:us-east-1:000000000000:table/t/index/{index}"),
                None => "arn:aws:dynamodb:us-east-1:000000000000:table/t".into(),
            },
        };
        Refusal { target, axis: Axis::Write, limit }
    }

    fn body(answer: &Answer) -> Value {
        serde_json::from_str(&answer.body).expect("JSON")
    }

    #[test]
    fn a_refused_request_is_a_provisioned_throughput_exceeded_exception_with_its_reasons() {
        let answer = throughput_exceeded(&[refusal(None, Limit::Partition), refusal(Some("gsi1"), Limit::Partition)]);
        assert_eq!(answer.status, 400);
        assert_eq!(
            body(&answer),
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": HOT_KEY_MESSAGE,
                "ThrottlingReasons": [
                    {"reason": "TableWriteKeyRangeThroughputExceeded",
                     "resource": "arn:aws:dynamodb:us-east-1:000000000000:table/t"},
                    {"reason": "IndexWriteKeyRangeThroughputExceeded",
                     "resource": "arn:aws:dynamodb:us-east-1:000000000000:table/t/index/gsi1"}
                ]
            })
        );
        let ceiling = body(&throughput_exceeded(&[refusal(None, Limit::TableMax)]));
        assert_eq!(ceiling["ThrottlingReasons"][0]["reason"], "TableWriteMaxOnDemandThroughputExceeded");
    }

    #[test]
    fn a_refused_transaction_names_throttling_error_on_exactly_the_refused_items() {
        let verdict = Verdict { refused: vec![vec![], vec![refusal(Some("gsi1"), Limit::Partition)], vec![]] };
        let answer = transaction_cancelled(&verdict);
        assert_eq!(
            body(&answer),
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ThrottlingError, None]",
                "CancellationReasons": [
                    {"Code": "None"},
                    {"Code": "ThrottlingError", "Message": HOT_INDEX_MESSAGE},
                    {"Code": "None"}
                ]
            })
        );
    }

    #[test]
    fn a_batch_forwards_what_fits_and_returns_the_rest_unprocessed() {
        let request = json!({"RequestItems": {
            "t": {"ConsistentRead": true, "Keys": [{"pk": {"S": "A"}}, {"pk": {"S": "HOT"}}, {"pk": {"S": "B"}}]},
            "u": {"Keys": [{"pk": {"S": "HOT"}}]}
        }});
        let plan = Plan {
            admission: Admission::EachItem,
            items: [("t", 0), ("t", 1), ("t", 2), ("u", 0)]
                .iter()
                .map(|(table, position)| PlanItem { table: (*table).into(), position: *position, charges: vec![] })
                .collect(),
        };
        let hot = refusal(None, Limit::Partition);
        let verdict = Verdict { refused: vec![vec![], vec![hot.clone()], vec![], vec![hot]] };
        let (forwarded, unprocessed) = split_batch(Op::BatchGetItem, &request, &plan, &verdict).expect("a split");
        assert_eq!(
            forwarded,
            json!({"RequestItems": {"t": {"ConsistentRead": true, "Keys": [{"pk": {"S": "A"}}, {"pk": {"S": "B"}}]}}})
        );
        let mut answer = json!({"Responses": {"t": []}, "UnprocessedKeys": {"t": {"Keys": [{"pk": {"S": "B"}}]}}});
        merge_unprocessed(Op::BatchGetItem, &mut answer, unprocessed);
        assert_eq!(
            answer["UnprocessedKeys"],
            json!({
                "t": {"Keys": [{"pk": {"S": "B"}}, {"pk": {"S": "HOT"}}]},
                "u": {"Keys": [{"pk": {"S": "HOT"}}]}
            })
        );

        let writes = json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": {"pk": {"S": "HOT"}}}}, {"DeleteRequest": {"Key": {"pk": {"S": "A"}}}}
        ]}});
        let plan = Plan { admission: Admission::EachItem, items: plan.items[..2].to_vec() };
        let verdict = Verdict { refused: vec![vec![refusal(None, Limit::Partition)], vec![]] };
        let (forwarded, unprocessed) = split_batch(Op::BatchWriteItem, &writes, &plan, &verdict).expect("a split");
        assert_eq!(forwarded, json!({"RequestItems": {"t": [{"DeleteRequest": {"Key": {"pk": {"S": "A"}}}}]}}));
        let mut answer = json!({"UnprocessedItems": {}});
        merge_unprocessed(Op::BatchWriteItem, &mut answer, unprocessed);
        assert_eq!(answer, json!({"UnprocessedItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "HOT"}}}}]}}));
    }
}
