//! The table definitions. Provisioning creates tables from these, and a test compares
//! them with `template.yaml`, so the local stack and AWS cannot drift apart.

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The resource's logical id in `template.yaml`.
    pub logical_id: &'static str,
    /// The name's suffix: `<stack>-<suffix>` on AWS, `<prefix>-<suffix>` locally.
    pub suffix: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    /// Every key attribute (table and indexes); all are strings.
    pub string_attributes: &'static [&'static str],
    pub indexes: &'static [IndexSpec],
    pub ttl_attribute: Option<&'static str>,
    /// `StreamViewType`, when the table has a stream.
    pub stream: Option<&'static str>,
    /// The env var that carries the table's name to the functions.
    pub env_var: &'static str,
}

pub const MAIN_TABLE: TableSpec = TableSpec {
    logical_id: "MainTable",
    suffix: "main",
    hash_key: "pk",
    range_key: "sk",
    string_attributes: &["pk", "sk", "gsi1pk", "gsi1sk"],
    indexes: &[IndexSpec { name: "gsi1", hash_key: "gsi1pk", range_key: "gsi1sk" }],
    ttl_attribute: Some("expiresAt"),
    stream: None,
    env_var: "TABLE_NAME",
};

/// The transactional outbox: one event per paid order, written in the payment
/// transaction; its stream feeds the data-platform relay. `gsi1` lists the events not
/// yet published (`gsi1pk = PENDING`, `gsi1sk = created at`; removed once published)
/// for the sweeper.
pub const OUTBOX_TABLE: TableSpec = TableSpec {
    logical_id: "OutboxTable",
    suffix: "outbox",
    hash_key: "pk",
    range_key: "sk",
    string_attributes: &["pk", "sk", "gsi1pk", "gsi1sk"],
    indexes: &[IndexSpec { name: "gsi1", hash_key: "gsi1pk", range_key: "gsi1sk" }],
    ttl_attribute: Some("expiresAt"),
    stream: Some("NEW_AND_OLD_IMAGES"),
    env_var: "OUTBOX_TABLE_NAME",
};

pub const ALL_TABLES: &[TableSpec] = &[MAIN_TABLE, OUTBOX_TABLE];

impl TableSpec {
    pub fn local_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.suffix)
    }

    /// Creates the table if it is missing and waits until it is active. Idempotent.
    pub async fn provision(&self, client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
        if client.describe_table().table_name(name).send().await.is_err() {
            self.create(client, name).await?;
        }
        client
            .wait_until_table_exists()
            .table_name(name)
            .wait(Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
            .with_context(|| format!("wait for table {name} to become active"))?;
        Ok(())
    }

    async fn create(&self, client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
        let key = |attribute: &str, kind: KeyType| {
            KeySchemaElement::builder().attribute_name(attribute).key_type(kind).build()
        };
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(self.hash_key, KeyType::Hash)?)
            .key_schema(key(self.range_key, KeyType::Range)?);
        for attribute in self.string_attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            );
        }
        for index in self.indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .key_schema(key(index.hash_key, KeyType::Hash)?)
                    .key_schema(key(index.range_key, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()?,
            );
        }
        if let Some(view) = self.stream {
            request = request.stream_specification(
                aws_sdk_dynamodb::types::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(view.into())
                    .build()?,
            );
        }
        match request.send().await {
            Ok(_) => {}
            // Two provisioners racing: the other one won, which is fine.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => {
                return Err(anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err)))
                    .with_context(|| format!("create table {name}"))
            }
        }
        if let Some(attribute) = self.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder().enabled(true).attribute_name(attribute).build()?,
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
                .with_context(|| format!("enable TTL on {name}"))?;
        }
        Ok(())
    }
}
