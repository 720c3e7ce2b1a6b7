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

#[test]
fn every_http_function_runs_the_handler_of_its_own_route() {
    for route in ROUTES {
        let main = std::fs::read_to_string(root().join("functions").join(route.function).join("src/main.rs")).unwrap();
        let named = main
            .split("rushcart::http_lambda!(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("functions/{}/src/main.rs runs no route", route.function));
        // The route type's name is the function's name in CamelCase.
        let camel: String = route.function.split('-').map(|word| word[..1].to_uppercase() + &word[1..]).collect();
        assert_eq!(named, camel, "functions/{} runs the route {named}", route.function);
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
    let prefix = format!("p{}", ulid::Ulid::new().to_string().to_lowercase());
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
    use rushcart::adapters::feed_aws::{KINESIS_SHARDS, MAX_RECEIVES, VISIBILITY_TIMEOUT};
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
