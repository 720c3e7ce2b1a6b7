//! `template.yaml` is the deployment's truth; these tests hold the local run to it:
//! the local API's routes, the provisioned tables, and the function crates.

use std::collections::BTreeSet;

use rushcart::adapters::dynamodb::table::ALL_TABLES;
use rushcart::http::routes::ROUTES;
use rushcart_tests::{dynamodb_client, dynamodb_endpoint};
use serde_norway::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("read template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().unwrap(), r))
        .collect()
}

/// `!Ref X` / `!GetAtt X.Arn` / `!Sub "..."` arrive as tagged values.
fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

fn function_binary(function: &Value) -> &str {
    function["Metadata"]["BuildProperties"]["Binary"].as_str().expect("BuildProperties.Binary")
}

#[test]
fn the_local_api_serves_exactly_the_routes_of_the_template() {
    let template = template();
    let mut declared = BTreeSet::new();
    for (_, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        for (_, event) in function["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("HttpApi") {
                let method = event["Properties"]["Method"].as_str().unwrap().to_uppercase();
                let path = event["Properties"]["Path"].as_str().unwrap().to_owned();
                declared.insert((method, path, function_binary(function).to_owned()));
            }
        }
    }
    let local: BTreeSet<_> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.path.to_owned(), r.function.to_owned())).collect();
    assert_eq!(local, declared);
}

#[test]
fn every_template_function_has_a_crate_and_every_function_crate_is_deployed() {
    let template = template();
    let deployed: BTreeSet<String> = resources_of_type(&template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(_, f)| function_binary(f).to_owned())
        .collect();
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "local-api")
        .collect();
    assert_eq!(crates, deployed);
    for name in &crates {
        let manifest = std::fs::read_to_string(root().join("functions").join(name).join("Cargo.toml")).unwrap();
        assert!(manifest.contains(&format!("name = \"{name}\"")), "functions/{name} builds the binary {name}");
    }
}

#[test]
fn every_route_but_the_public_ones_has_the_authorizer_and_operator_routes_are_the_functions_to_check() {
    use rushcart::http::routes::Access;
    let template = template();
    let api = &template["Resources"]["HttpApi"]["Properties"]["Auth"];
    let default = api["DefaultAuthorizer"].as_str().expect("a default authorizer");
    let jwt = &api["Authorizers"][default]["JwtConfiguration"];
    assert!(!jwt["issuer"].is_null() && !jwt["audience"].is_null(), "a JWT authorizer: {jwt:?}");
    assert_eq!(api["Authorizers"][default]["IdentitySource"].as_str(), Some("$request.header.Authorization"));
    for (_, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        for (_, event) in function["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let path = event["Properties"]["Path"].as_str().unwrap();
            let method = event["Properties"]["Method"].as_str().unwrap().to_uppercase();
            let route = ROUTES.iter().find(|r| r.path == path && r.method.as_str() == method).expect("a route");
            let public = event["Properties"]["Auth"]["Authorizer"].as_str() == Some("NONE");
            assert_eq!(
                public,
                route.access == Access::Public,
                "{method} {path}: public in the template = public in code"
            );
        }
    }
    let public: Vec<&str> = ROUTES.iter().filter(|r| r.access == Access::Public).map(|r| r.path).collect();
    assert_eq!(
        public,
        ["/api/v1/products", "/api/v1/products/top", "/api/v1/products/{productId}", "/api/v1/coupons/{couponId}"]
    );
}

#[test]
fn the_deployed_api_has_no_local_routes_and_no_way_to_turn_sign_in_off() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    assert!(!text.contains("/_local"), "the local issuer and counters are never deployed");
    let template = template();
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let variables = &function["Properties"]["Environment"]["Variables"];
        assert!(variables["AUTH"].is_null(), "{name} has an AUTH switch");
    }
    assert!(template["Globals"]["Function"]["Environment"]["Variables"]["AUTH"].is_null());
}

#[test]
fn cognito_runs_the_sign_up_and_token_claims_triggers_and_has_the_operators_group() {
    let template = template();
    let resources = &template["Resources"];
    let pool = &resources["UserPool"]["Properties"];
    assert!(!pool["LambdaConfig"]["PostConfirmation"].is_null());
    assert_eq!(pool["LambdaConfig"]["PreTokenGenerationConfig"]["LambdaVersion"].as_str(), Some("V2_0"));
    assert_eq!(resources["OperatorsGroup"]["Type"].as_str(), Some("AWS::Cognito::UserPoolGroup"));
    for function in ["UserSignupFunction", "TokenClaimsFunction"] {
        assert_eq!(resources[function]["Type"].as_str(), Some("AWS::Serverless::Function"), "{function}");
    }
}

/// Each function's binary, asked (`--route`), names the route it serves: the one the
/// table gives its function. Builds the binaries first (nothing to do after `cargo
/// build --workspace`).
#[test]
fn every_http_function_runs_the_handler_of_its_own_route() {
    let mut build = std::process::Command::new(env!("CARGO"));
    build.current_dir(root()).args(["build", "--offline", "--quiet"]);
    for route in ROUTES {
        build.args(["--package", route.function]);
    }
    assert!(build.status().expect("run cargo build").success(), "the functions build");
    // This test runs from <target>/<profile>/deps; the binaries are in <profile>.
    let exe = std::env::current_exe().expect("the test's own path");
    let binaries = exe.parent().and_then(|deps| deps.parent()).expect("the profile's directory");
    for route in ROUTES {
        let output = std::process::Command::new(binaries.join(route.function))
            .arg("--route")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", route.function));
        let named = String::from_utf8_lossy(&output.stdout);
        assert_eq!(named.trim(), format!("{} {} {}", route.function, route.method, route.path), "{route:?}");
    }
}

#[test]
fn every_table_spec_matches_its_template_table() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    let ids: BTreeSet<&str> = tables.iter().map(|(id, _)| *id).collect();
    let specs: BTreeSet<&str> = ALL_TABLES.iter().map(|s| s.logical_id).collect();
    assert_eq!(ids, specs);

    for spec in ALL_TABLES {
        let (_, table) = tables.iter().find(|(id, _)| *id == spec.logical_id).unwrap();
        let p = &table["Properties"];
        let name = untag(&p["TableName"]).as_str().unwrap();
        assert_eq!(name, format!("${{AWS::StackName}}-{}", spec.suffix));
        assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
        assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
        let keys: Vec<(&str, &str)> = p["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| (k["AttributeName"].as_str().unwrap(), k["KeyType"].as_str().unwrap()))
            .collect();
        assert_eq!(keys, [(spec.hash_key, "HASH"), (spec.range_key, "RANGE")]);
        let attributes: BTreeSet<(&str, &str)> = p["AttributeDefinitions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| (a["AttributeName"].as_str().unwrap(), a["AttributeType"].as_str().unwrap()))
            .collect();
        assert_eq!(attributes, spec.string_attributes.iter().map(|a| (*a, "S")).collect());
        let indexes: BTreeSet<(String, String, String)> = p["GlobalSecondaryIndexes"]
            .as_sequence()
            .map(|s| s.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|i| {
                let key = |n: usize| i["KeySchema"][n]["AttributeName"].as_str().unwrap().to_owned();
                assert_eq!(i["Projection"]["ProjectionType"].as_str(), Some("ALL"));
                (i["IndexName"].as_str().unwrap().to_owned(), key(0), key(1))
            })
            .collect();
        let expected: BTreeSet<_> =
            spec.indexes.iter().map(|i| (i.name.to_owned(), i.hash_key.to_owned(), i.range_key.to_owned())).collect();
        assert_eq!(indexes, expected);
        assert_eq!(p["TimeToLiveSpecification"]["AttributeName"].as_str(), spec.ttl_attribute);
        assert_eq!(p["StreamSpecification"]["StreamViewType"].as_str(), spec.stream);
        // Every function gets the table's name in the env var the code reads.
        let env = &template["Globals"]["Function"]["Environment"]["Variables"][spec.env_var];
        assert_eq!(untag(env).as_str(), Some(spec.logical_id));
    }
}

#[tokio::test]
async fn provisioning_creates_tables_the_way_the_template_declares_them() {
    let client = dynamodb_client(&dynamodb_endpoint().await).await;
    let prefix = format!("p{}", ulid::Ulid::generate().to_string().to_lowercase());
    for spec in ALL_TABLES {
        let name = spec.local_name(&prefix);
        spec.provision(&client, &name).await.unwrap();
        spec.provision(&client, &name).await.expect("provisioning twice is harmless");
        let described = client.describe_table().table_name(&name).send().await.unwrap();
        let table = described.table().unwrap();
        let keys: Vec<(&str, &str)> =
            table.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
        assert_eq!(keys, [(spec.hash_key, "HASH"), (spec.range_key, "RANGE")]);
        let indexes: BTreeSet<(String, Vec<String>)> = table
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_owned(),
                    i.key_schema().iter().map(|k| k.attribute_name().to_owned()).collect(),
                )
            })
            .collect();
        let expected: BTreeSet<_> = spec
            .indexes
            .iter()
            .map(|i| (i.name.to_owned(), vec![i.hash_key.to_owned(), i.range_key.to_owned()]))
            .collect();
        assert_eq!(indexes, expected);
        let stream = table.stream_specification().and_then(|s| s.stream_view_type()).map(|v| v.as_str());
        assert_eq!(stream, spec.stream);
        let ttl = client.describe_time_to_live().table_name(&name).send().await.unwrap();
        let ttl_attribute = ttl.time_to_live_description().and_then(|d| d.attribute_name());
        assert_eq!(ttl_attribute, spec.ttl_attribute);
    }
}

#[test]
fn every_function_has_a_sample_event_and_http_ones_parse_through_lambda_http() {
    let template = template();
    for (_, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let name = function_binary(function);
        let path = root().join("events").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("events/{name}.json is missing"));
        let is_http = function["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, event)| event["Type"].as_str() == Some("HttpApi"));
        if !is_http {
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
            continue;
        }
        let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
        let route = ROUTES.iter().find(|r| r.function == name).expect("a route");
        assert_eq!(request.method(), &route.method, "events/{name}.json");
        assert!(matches_template(route.path, request.uri().path()), "events/{name}.json path");
    }
}

#[test]
fn the_feed_queue_and_stream_are_provisioned_as_the_template_declares_them() {
    use rushcart_testkit::channels::{KINESIS_SHARDS, MAX_RECEIVES, VISIBILITY_TIMEOUT};
    let template = template();
    let resources = &template["Resources"];
    let queue = &resources["FeedQueue"]["Properties"];
    assert_eq!(queue["VisibilityTimeout"].as_u64(), Some(u64::from(VISIBILITY_TIMEOUT)));
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(u64::from(MAX_RECEIVES)));
    assert_eq!(resources["FeedDeadLetterQueue"]["Type"].as_str(), Some("AWS::SQS::Queue"));
    assert_eq!(resources["FeedStream"]["Properties"]["ShardCount"].as_i64(), Some(i64::from(KINESIS_SHARDS)));
    // The relay reports partial failures and bisects; the consumer reports partial failures.
    let relay = &resources["FeedRelayFunction"]["Properties"]["Events"]["Outbox"]["Properties"];
    assert_eq!(relay["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
    assert_eq!(relay["BisectBatchOnFunctionError"].as_bool(), Some(true));
    let consumer = &resources["FeedConsumerFunction"]["Properties"]["Events"]["Feed"]["Properties"];
    assert_eq!(consumer["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
}

/// Whether `path` is one API Gateway would route to `template`
/// (`/api/v1/users/{userId}/balance`): the same segments, a `{parameter}` taking any
/// non-empty one.
fn matches_template(template: &str, path: &str) -> bool {
    let (wanted, given): (Vec<&str>, Vec<&str>) =
        (template.trim_matches('/').split('/').collect(), path.trim_matches('/').split('/').collect());
    wanted.len() == given.len()
        && wanted.iter().zip(&given).all(|(w, g)| if w.starts_with('{') { !g.is_empty() } else { w == g })
}

/// The local API answers CORS as the deployed API does: the same origins by default,
/// methods, headers and max age.
#[test]
fn the_local_apis_cors_is_the_templates_cors_configuration() {
    use rushcart_local_api::cors;
    let template = template();
    let parameter = &template["Parameters"]["CorsAllowedOrigins"];
    assert_eq!(parameter["Type"].as_str(), Some("CommaDelimitedList"));
    assert_eq!(parameter["Default"].as_str(), Some(cors::DEFAULT_ALLOWED_ORIGINS), "CORS_ALLOWED_ORIGINS' default");

    let config = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    match &config["AllowOrigins"] {
        Value::Tagged(tagged) => {
            assert_eq!(tagged.tag.to_string(), "!Ref");
            assert_eq!(tagged.value.as_str(), Some("CorsAllowedOrigins"));
        }
        other => panic!("AllowOrigins must be !Ref CorsAllowedOrigins, not {other:?}"),
    }
    let list = |name: &str| -> Vec<String> {
        config[name]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("AllowMethods"), cors::ALLOW_METHODS);
    assert_eq!(list("AllowHeaders"), cors::ALLOW_HEADERS);
    assert_eq!(list("ExposeHeaders"), cors::EXPOSE_HEADERS);
    assert_eq!(config["MaxAge"].as_u64(), Some(u64::from(cors::MAX_AGE_SECONDS)));
    assert!(config.get("AllowCredentials").is_none(), "tokens travel in Authorization, never in cookies");
}

// --- Operations: logs, traces, throttles, alarms and the dashboard ---------------------

/// The name `!Ref name` refers to, if `value` is one.
fn ref_to(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => None,
    }
}

/// `(resource, attribute)` of a `!GetAtt resource.attribute`.
fn get_att(value: &Value) -> Option<(&str, &str)> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged.value.as_str()?.split_once('.'),
        _ => None,
    }
}

/// A metric as an alarm or a dashboard widget names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct NamedMetric {
    namespace: String,
    name: String,
    dimensions: BTreeSet<String>,
}

impl NamedMetric {
    fn new(namespace: &str, name: &str, dimensions: impl IntoIterator<Item = impl Into<String>>) -> NamedMetric {
        NamedMetric {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions.into_iter().map(Into::into).collect(),
        }
    }
}

/// The metric a Metrics Insights query reads:
/// `SELECT SUM(Name) FROM SCHEMA(namespace, Dim, …)`. `None` for another expression.
/// Only the SCHEMA form names an exact dimension set, so a bare `FROM namespace` fails.
fn metrics_insights_metric(expression: &str) -> Option<NamedMetric> {
    let rest = expression.trim().strip_prefix("SELECT ")?;
    let (_, rest) = rest.split_once('(')?;
    let (name, rest) = rest.split_once(')')?;
    let schema = rest
        .trim()
        .strip_prefix("FROM SCHEMA(")
        .unwrap_or_else(|| panic!("{expression}: FROM SCHEMA(namespace, dimensions…), the exact dimension set"));
    let (arguments, _) = schema.split_once(')').expect("SCHEMA(…)");
    let mut arguments = arguments.split(',').map(|a| a.trim().trim_matches('"'));
    let namespace = arguments.next().unwrap();
    Some(NamedMetric::new(namespace, name.trim(), arguments))
}

/// The metric a `SEARCH('{namespace,Dim,…} MetricName="Name" …', 'Stat', period)` reads.
fn search_metric(expression: &str) -> Option<NamedMetric> {
    let query = expression.trim().strip_prefix("SEARCH('")?.split('\'').next()?;
    let schema = query.strip_prefix('{').and_then(|q| q.split_once('}')).map(|(schema, _)| schema);
    let schema = schema.unwrap_or_else(|| panic!("{expression}: a SEARCH names its schema {{namespace,dimensions…}}"));
    let mut parts = schema.split(',').map(|p| p.trim().trim_matches('"'));
    let namespace = parts.next().unwrap();
    let name = query
        .split_once("MetricName=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name)
        .unwrap_or_else(|| panic!("{expression}: a SEARCH names its MetricName=\"…\""));
    Some(NamedMetric::new(namespace, name, parts))
}

/// Every metric an alarm reads: its own, or those of its `Metrics` (metric stats and
/// Metrics Insights queries; metric math over them names none of its own).
fn alarm_metrics(alarm: &Value) -> Vec<NamedMetric> {
    let dimension_names = |dimensions: &Value| -> Vec<String> {
        dimensions
            .as_sequence()
            .map(|s| s.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|d| d["Name"].as_str().expect("a dimension's Name").to_owned())
            .collect()
    };
    let p = &alarm["Properties"];
    if let Some(name) = p["MetricName"].as_str() {
        return vec![NamedMetric::new(
            p["Namespace"].as_str().expect("Namespace"),
            name,
            dimension_names(&p["Dimensions"]),
        )];
    }
    let queries = p["Metrics"].as_sequence().expect("an alarm reads a metric or Metrics");
    let mut metrics = Vec::new();
    for query in queries {
        let metric = &query["MetricStat"]["Metric"];
        if let Some(name) = metric["MetricName"].as_str() {
            metrics.push(NamedMetric::new(
                metric["Namespace"].as_str().unwrap(),
                name,
                dimension_names(&metric["Dimensions"]),
            ));
        } else {
            let expression = query["Expression"].as_str().expect("a MetricStat or an Expression");
            assert!(!expression.contains("SEARCH"), "an alarm cannot SEARCH: {expression}");
            metrics.extend(metrics_insights_metric(expression));
        }
    }
    metrics
}

fn alarms(template: &Value) -> Vec<(&str, &Value)> {
    let alarms = resources_of_type(template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 10, "the alarms of issue 16, not {}", alarms.len());
    alarms
}

/// Whether a metric in namespace `rushcart` is in the code's catalogue, with exactly
/// that dimension set (CloudWatch matches a metric by its whole dimension set).
fn assert_in_catalogue(metric: &NamedMetric, who: &str) {
    let spec = rushcart::metrics::spec(&metric.name)
        .unwrap_or_else(|| panic!("{who} names {}, which rushcart::metrics::CATALOGUE lacks", metric.name));
    let dimensions: BTreeSet<String> = spec.dimensions.iter().map(|d| d.to_string()).collect();
    assert_eq!(metric.dimensions, dimensions, "{who}: {}'s dimensions", metric.name);
}

#[test]
fn every_alarm_on_a_rushcart_metric_names_one_the_code_emits_with_its_dimensions() {
    let template = template();
    let mut ours = BTreeSet::new();
    for (id, alarm) in alarms(&template) {
        for metric in alarm_metrics(alarm) {
            if metric.namespace == rushcart::metrics::NAMESPACE {
                assert_in_catalogue(&metric, id);
                ours.insert(metric.name);
            }
        }
    }
    // The coupon gate's bypass rate, the retried transaction conflicts, and the failed
    // Redis connects.
    let expected = ["CouponGate", "TransactionConflictsRetried", "RedisConnect"];
    assert_eq!(ours, expected.into_iter().map(str::to_owned).collect::<BTreeSet<_>>());
}

/// The AWS metrics the alarms and the dashboard may read, as AWS documents them, with
/// each one's dimension sets: a REST API's `5XXError` or a misspelt dimension would
/// watch nothing, silently.
fn aws_metric_is_documented(metric: &NamedMetric) -> bool {
    let dims: Vec<&str> = metric.dimensions.iter().map(String::as_str).collect();
    match (metric.namespace.as_str(), metric.name.as_str()) {
        ("AWS/ApiGateway", "Count" | "4xx" | "5xx" | "Latency" | "IntegrationLatency") => {
            dims == ["ApiId"] || dims == ["ApiId", "Stage"]
        }
        ("AWS/Lambda", "Errors" | "Throttles" | "Duration" | "Invocations" | "ConcurrentExecutions") => {
            dims.is_empty() || dims == ["FunctionName"]
        }
        ("AWS/Lambda", "IteratorAge") => dims == ["FunctionName"],
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible" | "ApproximateAgeOfOldestMessage") => dims == ["QueueName"],
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds") => dims == ["StreamName"],
        ("AWS/DynamoDB", "ReadThrottleEvents" | "WriteThrottleEvents") => {
            dims == ["TableName"] || dims == ["GlobalSecondaryIndexName", "TableName"]
        }
        ("AWS/DynamoDB", "TransactionConflict") => dims == ["TableName"],
        _ => false,
    }
}

#[test]
fn every_alarm_on_an_aws_metric_names_a_documented_one_of_this_stacks_resources() {
    let template = template();
    let resources = &template["Resources"];
    let kind = |id: &str| resources[id]["Type"].as_str().unwrap_or_else(|| panic!("no resource {id}")).to_owned();
    for (id, alarm) in alarms(&template) {
        for metric in alarm_metrics(alarm) {
            if metric.namespace != rushcart::metrics::NAMESPACE {
                assert!(aws_metric_is_documented(&metric), "{id}: {metric:?} is not an AWS metric we know");
            }
        }
        // The dimension values are this stack's resources.
        let p = &alarm["Properties"];
        let mut dimensions: Vec<&Value> = p["Dimensions"].as_sequence().into_iter().flatten().collect();
        for query in p["Metrics"].as_sequence().into_iter().flatten() {
            dimensions.extend(query["MetricStat"]["Metric"]["Dimensions"].as_sequence().into_iter().flatten());
        }
        for dimension in dimensions {
            let value = &dimension["Value"];
            match dimension["Name"].as_str().unwrap() {
                "ApiId" => assert_eq!(ref_to(value), Some("HttpApi"), "{id}"),
                "FunctionName" => assert_eq!(kind(ref_to(value).unwrap()), "AWS::Serverless::Function", "{id}"),
                "TableName" => assert_eq!(kind(ref_to(value).unwrap()), "AWS::DynamoDB::Table", "{id}"),
                "StreamName" => assert_eq!(kind(ref_to(value).unwrap()), "AWS::Kinesis::Stream", "{id}"),
                "QueueName" => {
                    let (queue, attribute) = get_att(value).expect("!GetAtt queue.QueueName");
                    assert_eq!((kind(queue).as_str(), attribute), ("AWS::SQS::Queue", "QueueName"), "{id}");
                }
                "GlobalSecondaryIndexName" => assert_eq!(value.as_str(), Some("gsi1"), "{id}"),
                "Outcome" => assert!(value.as_str().is_some(), "{id}"),
                other => panic!("{id}: an alarm on dimension {other}"),
            }
        }
    }
}

#[test]
fn every_alarm_tells_the_alarm_topic_when_it_fires_and_when_it_clears() {
    let template = template();
    for (id, alarm) in alarms(&template) {
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<Option<&str>> = alarm["Properties"][actions]
                .as_sequence()
                .unwrap_or_else(|| panic!("{id} has no {actions}"))
                .iter()
                .map(ref_to)
                .collect();
            assert_eq!(targets, [Some("AlarmTopic")], "{id}'s {actions}");
        }
        assert_eq!(
            alarm["Properties"]["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{id}: no traffic is no alarm"
        );
    }
    let resources = &template["Resources"];
    assert_eq!(resources["AlarmTopic"]["Type"].as_str(), Some("AWS::SNS::Topic"));
    // Encrypted, with a key CloudWatch may use: with the AWS managed alias/aws/sns,
    // whose policy nobody can change, an alarm's publish fails.
    let key =
        ref_to(&resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]).expect("the topic's key is this stack's");
    let statements = resources[key]["Properties"]["KeyPolicy"]["Statement"].as_sequence().unwrap();
    assert!(
        statements.iter().any(|s| s["Principal"]["Service"].as_str() == Some("cloudwatch.amazonaws.com")
            && s["Action"].as_sequence().unwrap().iter().any(|a| a.as_str() == Some("kms:GenerateDataKey*"))),
        "the topic's key lets CloudWatch encrypt"
    );
    // An address only when AlarmEmail names one.
    let subscription = &resources["AlarmEmailSubscription"];
    assert_eq!(subscription["Condition"].as_str(), Some("HasAlarmEmail"));
    assert_eq!(ref_to(&subscription["Properties"]["Endpoint"]), Some("AlarmEmail"));
    assert_eq!(template["Parameters"]["AlarmEmail"]["Default"].as_str(), Some(""));
}

/// The days CloudWatch Logs accepts as a retention.
const LOG_RETENTION_DAYS: [u64; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

#[test]
fn every_function_is_traced_and_logs_json_to_a_group_of_its_own_kept_log_retention_days() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));
    let logging = &globals["LoggingConfig"];
    // What shared/src/telemetry.rs reads from AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL.
    assert_eq!(logging["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(ref_to(&logging["ApplicationLogLevel"]), Some("LogLevel"));
    assert!(!logging["SystemLogLevel"].is_null());
    let levels: Vec<&str> = template["Parameters"]["LogLevel"]["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(levels, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], "Lambda's application log levels");
    for level in &levels {
        let system = template["Mappings"]["SystemLogLevel"][*level]["Level"].as_str();
        assert!(matches!(system, Some("DEBUG" | "INFO" | "WARN")), "{level} → Lambda's system levels");
    }

    let retention = &template["Parameters"]["LogRetentionDays"];
    let allowed: Vec<u64> =
        retention["AllowedValues"].as_sequence().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(allowed, LOG_RETENTION_DAYS);
    assert!(LOG_RETENTION_DAYS.contains(&retention["Default"].as_u64().unwrap()));

    let resources = &template["Resources"];
    let mut groups = BTreeSet::new();
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        assert!(function["Properties"]["Tracing"].is_null(), "{id} keeps the global tracing");
        let group = ref_to(&function["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup is !Ref its group"));
        assert!(groups.insert(group), "{id} shares its log group {group}");
        let log_group = &resources[group];
        assert_eq!(log_group["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{group}");
        assert_eq!(ref_to(&log_group["Properties"]["RetentionInDays"]), Some("LogRetentionDays"), "{group}");
        assert_eq!(log_group["Condition"], function["Condition"], "{group} exists when {id} does");
        let name = untag(&log_group["Properties"]["LogGroupName"]).as_str().unwrap();
        assert_eq!(name, format!("/aws/lambda/${{AWS::StackName}}/{}", function_binary(function)));
    }
    // The API's access log too.
    let access = &template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"];
    let (group, _) = get_att(&access["DestinationArn"]).expect("!GetAtt group.Arn");
    assert_eq!(ref_to(&resources[group]["Properties"]["RetentionInDays"]), Some("LogRetentionDays"));
    // JSON, with the ids that tie a request's lines together and why it was refused.
    let format = untag(&access["Format"]).as_str().unwrap();
    for variable in [
        "$context.requestId",
        "$context.integration.requestId",
        "$context.routeKey",
        "$context.status",
        "$context.responseLatency",
        "$context.integrationLatency",
        "$context.identity.sourceIp",
        "$context.identity.userAgent",
        "$context.authorizer.error",
    ] {
        assert!(format.contains(&format!("\"{variable}\"")), "the access log has {variable}");
    }
    serde_json::from_str::<serde_json::Value>(format).expect("the access log format is a JSON object");
}

#[test]
fn every_route_is_throttled_by_the_parameters_and_coupon_issue_by_its_own() {
    let template = template();
    let api = &template["Resources"]["HttpApi"]["Properties"];
    let default = &api["DefaultRouteSettings"];
    assert_eq!(ref_to(&default["ThrottlingRateLimit"]), Some("ThrottleRate"));
    assert_eq!(ref_to(&default["ThrottlingBurstLimit"]), Some("ThrottleBurst"));

    let routes = api["RouteSettings"].as_mapping().expect("RouteSettings");
    let keys: Vec<&str> = routes.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(keys, ["POST /api/v1/coupons/{couponId}"]);
    let route = ROUTES.iter().find(|r| format!("{} {}", r.method, r.path) == keys[0]).expect("a route of the table");
    assert_eq!(route.function, "issue-coupon");
    let coupon = &routes[keys[0]];
    assert_eq!(ref_to(&coupon["ThrottlingRateLimit"]), Some("CouponIssueThrottleRate"));
    assert_eq!(ref_to(&coupon["ThrottlingBurstLimit"]), Some("CouponIssueThrottleBurst"));

    // The rush route takes what a coupon's shards take (tests/tests/throttle.rs), more
    // than any other route, and no more at once than a second's worth.
    let default_of = |name: &str| template["Parameters"][name]["Default"].as_u64().unwrap_or_else(|| panic!("{name}"));
    assert!(default_of("CouponIssueThrottleRate") > default_of("ThrottleRate"));
    assert!(default_of("CouponIssueThrottleBurst") <= default_of("CouponIssueThrottleRate"));
}

/// The dashboard's JSON, its `${…}` placeholders given dummy values (a number: some
/// stand where JSON takes a number).
fn dashboard(template: &Value) -> serde_json::Value {
    let body = &template["Resources"]["Dashboard"]["Properties"]["DashboardBody"];
    let Value::Tagged(tagged) = body else { panic!("the dashboard body is a !Sub") };
    assert_eq!(tagged.tag, "Sub");
    let mut text = tagged.value.as_str().unwrap().to_owned();
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').unwrap();
        let name = &text[start + 2..end];
        // An alarm's ARN must be of an alarm that always exists.
        if let Some(alarm) = name.strip_suffix(".Arn") {
            let resource = &template["Resources"][alarm];
            assert_eq!(resource["Type"].as_str(), Some("AWS::CloudWatch::Alarm"), "{name}");
            assert!(resource["Condition"].is_null(), "the dashboard shows {alarm}, which may not exist");
        }
        text.replace_range(start..=end, "1");
    }
    serde_json::from_str(&text).expect("the dashboard body is JSON")
}

/// Every metric a metric widget draws: `[namespace, name, dim, value, …, {options}]`
/// rows and SEARCH expressions.
fn widget_metrics(widget: &serde_json::Value) -> Vec<NamedMetric> {
    let mut metrics = Vec::new();
    for row in widget["properties"]["metrics"].as_array().expect("a metric widget's metrics") {
        let row = row.as_array().unwrap();
        if let Some(expression) = row[0]["expression"].as_str() {
            metrics.push(search_metric(expression).unwrap_or_else(|| panic!("{expression}: a SEARCH")));
            continue;
        }
        let strings: Vec<&str> = row.iter().filter_map(|v| v.as_str()).collect();
        assert!(!strings.contains(&"."), "spell each row out: {row:?}");
        assert!(
            strings.len() >= 2 && strings.len().is_multiple_of(2),
            "namespace, name, then dimension pairs: {row:?}"
        );
        let dimensions = strings[2..].chunks(2).map(|pair| pair[0]);
        metrics.push(NamedMetric::new(strings[0], strings[1], dimensions));
    }
    metrics
}

#[test]
fn the_dashboard_draws_every_catalogue_metric_as_emitted_beside_documented_aws_ones() {
    let template = template();
    let dashboard = dashboard(&template);
    let mut ours = BTreeSet::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        if widget["type"] != "metric" {
            continue;
        }
        let title = widget["properties"]["title"].as_str().unwrap();
        assert_eq!(widget["properties"]["region"], "1", "{title}: the stack's region");
        for metric in widget_metrics(widget) {
            if metric.namespace == rushcart::metrics::NAMESPACE {
                assert_in_catalogue(&metric, title);
                ours.insert(metric.name);
            } else {
                assert!(aws_metric_is_documented(&metric), "{title}: {metric:?} is not an AWS metric we know");
            }
        }
    }
    let catalogue: BTreeSet<String> = rushcart::metrics::CATALOGUE.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(ours, catalogue, "the dashboard shows everything the code emits");
}
