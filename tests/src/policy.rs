//! Holds the DynamoDB calls a function really makes to the IAM policy `template.yaml`
//! gives it, so that a function never meets `AccessDenied` for the first time on AWS.
//!
//! [`CallRecorder`] is an SDK interceptor: it reads each attempt's request (the
//! operation from `X-Amz-Target`, the rest from the JSON body) into the IAM action
//! it needs, the table or index, and the partition key value that IAM's
//! `dynamodb:LeadingKeys` condition is checked against. A transaction needs, per item,
//! `PutItem`, `UpdateItem`, `ConditionCheckItem` or `DeleteItem` on that item's table
//! and key; there is no `TransactWriteItems` action of its own. Calls are charged to
//! the future run in [`with_calls`] (a task-local), so parallel tests do not mix.
//!
//! [`Policies`] reads every function's `Allow` statements from the template and says
//! which recorded calls none of them allows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use rushcart::adapters::dynamodb::table::ALL_TABLES;
use serde_json::Value;

/// One authorisation a call needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DynamoCall {
    /// The IAM action, without `dynamodb:`.
    pub action: String,
    /// The resource as the template names it: `MainTable`, `MainTable/index/gsi1`.
    pub resource: String,
    /// The partition key value (of the index, for an index query).
    pub leading_key: Option<String>,
}

impl std::fmt::Display for DynamoCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dynamodb:{} on {} key {:?}", self.action, self.resource, self.leading_key)
    }
}

tokio::task_local! {
    static CALLS: Arc<Mutex<Vec<DynamoCall>>>;
}

/// Runs `work`, returning what it returned and every DynamoDB call it made.
pub async fn with_calls<T>(work: impl std::future::Future<Output = T>) -> (T, Vec<DynamoCall>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let output = CALLS.scope(calls.clone(), work).await;
    let made = calls.lock().map(|calls| calls.clone()).unwrap_or_default();
    (output, made)
}

/// The interceptor to put on a test store's client (see [`crate::TestApp::recording_store`]).
#[derive(Debug)]
pub struct CallRecorder;

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "rushcart-test-call-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let body: Value = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        let calls = calls_of(&operation, &body);
        let _ = CALLS.try_with(|recorded| {
            if let Ok(mut recorded) = recorded.lock() {
                recorded.extend(calls);
            }
        });
        Ok(())
    }
}

/// The authorisations one request body needs.
pub fn calls_of(operation: &str, body: &Value) -> Vec<DynamoCall> {
    if operation == "BatchGetItem" {
        // `dynamodb:BatchGetItem` on each table, its LeadingKeys condition checked
        // against every key asked for.
        return body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, wanted)| {
                wanted["Keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |key| call(operation, &serde_json::json!({"TableName": table, "Key": key})))
            })
            .collect();
    }
    if operation != "TransactWriteItems" {
        return vec![call(operation, body)];
    }
    let kinds = [
        ("Put", "PutItem"),
        ("Update", "UpdateItem"),
        ("ConditionCheck", "ConditionCheckItem"),
        ("Delete", "DeleteItem"),
    ];
    body["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| kinds.iter().filter_map(|(kind, action)| item.get(*kind).map(|inner| call(action, inner))))
        .collect()
}

fn call(action: &str, body: &Value) -> DynamoCall {
    let table = body["TableName"].as_str().unwrap_or_default();
    let logical = ALL_TABLES
        .iter()
        .find(|spec| table.ends_with(&format!("-{}", spec.suffix)))
        .map_or_else(|| format!("unknown table {table}"), |spec| spec.logical_id.to_owned());
    let resource = match body["IndexName"].as_str() {
        Some(index) => format!("{logical}/index/{index}"),
        None => logical,
    };
    let leading_key = body["Key"]["pk"]["S"]
        .as_str()
        .or_else(|| body["Item"]["pk"]["S"].as_str())
        .map(str::to_owned)
        .or_else(|| key_condition_partition(body));
    DynamoCall { action: action.to_owned(), resource, leading_key }
}

/// The partition key value a `Query`'s key condition (`name = :value AND …`) names.
fn key_condition_partition(body: &Value) -> Option<String> {
    let condition = body["KeyConditionExpression"].as_str()?;
    let first = condition.split(" AND ").next()?;
    let (_, placeholder) = first.split_once('=')?;
    body["ExpressionAttributeValues"][placeholder.trim()]["S"].as_str().map(str::to_owned)
}

/// One `Allow` statement of a function's policy, as far as DynamoDB goes.
#[derive(Debug, Clone)]
struct Grant {
    actions: Vec<String>,
    resources: Vec<String>,
    leading_keys: Option<Vec<String>>,
}

impl Grant {
    fn allows(&self, call: &DynamoCall) -> bool {
        let action = format!("dynamodb:{}", call.action);
        self.actions.iter().any(|a| *a == action || a == "dynamodb:*")
            && self.resources.contains(&call.resource)
            && match (&self.leading_keys, &call.leading_key) {
                (None, _) => true,
                (Some(patterns), Some(key)) => patterns.iter().any(|p| glob(p, key)),
                // `ForAllValues` over no values holds (a Query with no key to read).
                (Some(_), None) => true,
            }
    }
}

/// IAM's `StringLike`: `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else { return false };
            (0..=after.len()).filter(|i| after.is_char_boundary(*i)).any(|i| glob(rest, &after[i..]))
        }
    }
}

/// Every function's DynamoDB grants, by its binary's name.
#[derive(Debug)]
pub struct Policies(BTreeMap<String, Vec<Grant>>);

/// A YAML value without its `!Ref`/`!GetAtt`/`!Sub` tag.
fn untag(value: &serde_norway::Value) -> &serde_norway::Value {
    match value {
        serde_norway::Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

/// `!GetAtt MainTable.Arn` → `MainTable`; `!Sub "${MainTable.Arn}/index/gsi1"` →
/// `MainTable/index/gsi1`; anything else as written.
fn resource_name(value: &serde_norway::Value) -> String {
    let text = untag(value).as_str().unwrap_or_default();
    match text.strip_prefix("${").and_then(|rest| rest.split_once(".Arn}")) {
        Some((table, tail)) => format!("{table}{tail}"),
        None => text.trim_end_matches(".Arn").to_owned(),
    }
}

fn strings(value: &serde_norway::Value) -> Vec<String> {
    match untag(value) {
        serde_norway::Value::Sequence(items) => items.iter().map(resource_name).collect(),
        single => vec![resource_name(single)],
    }
}

impl Policies {
    pub fn from_template() -> Policies {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let text = std::fs::read_to_string(path).expect("read template.yaml");
        let template: serde_norway::Value = serde_norway::from_str(&text).expect("template.yaml is YAML");
        let mut policies = BTreeMap::new();
        for (_, resource) in template["Resources"].as_mapping().expect("Resources") {
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().expect("Binary").to_owned();
            let mut grants = Vec::new();
            for policy in resource["Properties"]["Policies"].as_sequence().into_iter().flatten() {
                for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                    if statement["Effect"].as_str() != Some("Allow") {
                        continue;
                    }
                    let condition = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                    grants.push(Grant {
                        actions: strings(&statement["Action"]),
                        resources: strings(&statement["Resource"]),
                        leading_keys: condition.as_sequence().map(|_| strings(condition)),
                    });
                }
            }
            policies.insert(binary, grants);
        }
        Policies(policies)
    }

    /// The calls `function`'s policy does not allow, as text (empty: all allowed).
    pub fn denied(&self, function: &str, calls: &[DynamoCall]) -> Vec<String> {
        let grants = self.0.get(function).unwrap_or_else(|| panic!("template.yaml has no function {function}"));
        let mut denied: Vec<String> =
            calls.iter().filter(|call| !grants.iter().any(|g| g.allows(call))).map(ToString::to_string).collect();
        denied.sort();
        denied.dedup();
        denied
    }

    /// Panics naming every call of `function` its policy does not allow.
    pub fn assert_allowed(&self, function: &str, calls: &[DynamoCall]) {
        let denied = self.denied(function, calls);
        assert!(denied.is_empty(), "template.yaml does not allow {function} to make: {denied:#?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_needs_each_items_own_action_table_and_key() {
        let body = serde_json::json!({"TransactItems": [
            {"Update": {"TableName": "t1-main", "Key": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}}}},
            {"Put": {"TableName": "t1-outbox", "Item": {"pk": {"S": "ORDER#1"}}}},
            {"ConditionCheck": {"TableName": "t1-main", "Key": {"pk": {"S": "USER#7"}}}},
        ]});
        let calls: Vec<String> = calls_of("TransactWriteItems", &body).iter().map(ToString::to_string).collect();
        assert_eq!(
            calls,
            [
                r#"dynamodb:UpdateItem on MainTable key Some("ORDER#1")"#,
                r#"dynamodb:PutItem on OutboxTable key Some("ORDER#1")"#,
                r#"dynamodb:ConditionCheckItem on MainTable key Some("USER#7")"#,
            ]
        );
    }

    #[test]
    fn a_batch_read_needs_its_action_on_every_key_it_asks_for() {
        let body = serde_json::json!({"RequestItems": {"t1-main": {"ConsistentRead": true, "Keys": [
            {"pk": {"S": "USER#7"}, "sk": {"S": "PROFILE"}},
            {"pk": {"S": "PRODUCT#3"}, "sk": {"S": "PRODUCT"}},
        ]}}});
        let calls: Vec<String> = calls_of("BatchGetItem", &body).iter().map(ToString::to_string).collect();
        assert_eq!(
            calls,
            [
                r#"dynamodb:BatchGetItem on MainTable key Some("USER#7")"#,
                r#"dynamodb:BatchGetItem on MainTable key Some("PRODUCT#3")"#,
            ]
        );
    }

    #[test]
    fn an_index_query_is_on_the_index_and_keyed_by_its_partition() {
        let body = serde_json::json!({
            "TableName": "t1-main", "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk < :before",
            "ExpressionAttributeValues": {":pk": {"S": "ORDERS#7"}, ":before": {"S": "x"}},
        });
        let call = &calls_of("Query", &body)[0];
        assert_eq!((call.resource.as_str(), call.leading_key.as_deref()), ("MainTable/index/gsi1", Some("ORDERS#7")));
    }

    #[test]
    fn string_like_patterns_match_as_iam_does() {
        assert!(glob("USER#*", "USER#7") && glob("OPERATORS", "OPERATORS") && glob("*", ""));
        assert!(
            !glob("USER#*", "ORDER#1")
                && !glob("OPERATORS", "OPERATORS#1")
                && !glob("COUNTER#users", "COUNTER#coupons")
        );
    }

    #[test]
    fn the_template_grants_read_as_written() {
        let policies = Policies::from_template();
        let get = |action: &str, resource: &str, key: &str| DynamoCall {
            action: action.into(),
            resource: resource.into(),
            leading_key: Some(key.into()),
        };
        assert!(policies.denied("get-order", &[get("GetItem", "MainTable", "ORDER#1")]).is_empty());
        assert_eq!(
            policies.denied("get-order", &[get("GetItem", "MainTable", "USER#1")]).len(),
            1,
            "another partition"
        );
        assert_eq!(policies.denied("get-order", &[get("PutItem", "MainTable", "ORDER#1")]).len(), 1, "another action");
        assert!(policies.denied("list-products", &[get("Query", "MainTable/index/gsi1", "PRODUCTS")]).is_empty());
        assert_eq!(policies.denied("list-products", &[get("Query", "MainTable", "PRODUCTS")]).len(), 1, "the table");
    }
}
