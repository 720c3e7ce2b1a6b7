//! The feed's channels: SQS (with a dead-letter queue) and Kinesis, and the data
//! platform's HTTP endpoint. Also their provisioning for the local stack, mirroring
//! `template.yaml` (a test holds the two together).

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::feed::{DataPlatform, EventPublisher, OutboxEvent};

/// SQS moves a message to the dead-letter queue after this many receives.
pub const MAX_RECEIVES: u32 = 5;
/// The queue's visibility timeout (seconds): longer than the consumer's run time.
pub const VISIBILITY_TIMEOUT: u32 = 60;
pub const KINESIS_SHARDS: i32 = 1;

/// Where the feed publishes.
#[derive(Debug, Clone)]
pub struct FeedChannels {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub stream_name: String,
}

impl FeedChannels {
    /// `FEED_QUEUE_URL`, `FEED_DLQ_URL` (optional) and `FEED_STREAM_NAME`.
    pub fn from_env() -> anyhow::Result<FeedChannels> {
        Ok(FeedChannels {
            queue_url: std::env::var("FEED_QUEUE_URL").context("FEED_QUEUE_URL must name the feed queue")?,
            dead_letter_queue_url: std::env::var("FEED_DLQ_URL").unwrap_or_default(),
            stream_name: std::env::var("FEED_STREAM_NAME").context("FEED_STREAM_NAME must name the feed stream")?,
        })
    }
}

fn sdk<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    err: aws_sdk_sqs::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&err))
}

/// Creates `<prefix>-feed` (with `<prefix>-feed-dlq` behind it) and the Kinesis stream
/// `<prefix>-feed` if missing. Idempotent.
pub async fn provision(
    sqs: &aws_sdk_sqs::Client,
    kinesis: &aws_sdk_kinesis::Client,
    prefix: &str,
    visibility_timeout: u32,
) -> anyhow::Result<FeedChannels> {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{prefix}-feed-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(sdk)
        .context("create the dead-letter queue")?;
    let dlq_url = dlq.queue_url().ok_or_else(|| anyhow!("no dead-letter queue URL"))?.to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk)
        .context("read the dead-letter queue's ARN")?;
    let dlq_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("no dead-letter queue ARN"))?
        .clone();
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{prefix}-feed"))
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(sdk)
        .context("create the feed queue")?;
    let queue_url = queue.queue_url().ok_or_else(|| anyhow!("no feed queue URL"))?.to_owned();

    let stream_name = format!("{prefix}-feed");
    let exists = kinesis.describe_stream_summary().stream_name(&stream_name).send().await.is_ok();
    if !exists {
        kinesis
            .create_stream()
            .stream_name(&stream_name)
            .shard_count(KINESIS_SHARDS)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))
            .context("create the feed stream")?;
    }
    Ok(FeedChannels { queue_url, dead_letter_queue_url: dlq_url, stream_name })
}

/// Publishes to SQS and to Kinesis (partition key: the order id).
#[derive(Debug, Clone)]
pub struct AwsPublisher {
    pub sqs: aws_sdk_sqs::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub channels: FeedChannels,
}

impl AwsPublisher {
    /// The publisher the relay and the sweeper use: clients and channels from the
    /// environment.
    pub async fn from_env() -> anyhow::Result<AwsPublisher> {
        let (sqs, kinesis) = clients_from_env().await;
        Ok(AwsPublisher { sqs, kinesis, channels: FeedChannels::from_env()? })
    }
}

impl EventPublisher for AwsPublisher {
    async fn publish(&self, event: &OutboxEvent) -> anyhow::Result<()> {
        self.sqs
            .send_message()
            .queue_url(&self.channels.queue_url)
            .message_body(&event.payload)
            .send()
            .await
            .map_err(sdk)
            .with_context(|| format!("send the event of order {} to SQS", event.order_id))?;
        self.kinesis
            .put_record()
            .stream_name(&self.channels.stream_name)
            .partition_key(&event.order_id)
            .data(aws_sdk_kinesis::primitives::Blob::new(event.payload.as_bytes()))
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))
            .with_context(|| format!("put the event of order {} on Kinesis", event.order_id))?;
        Ok(())
    }
}

/// The data platform's HTTP endpoint (`DATA_PLATFORM_URL`).
#[derive(Debug, Clone)]
pub struct HttpPlatform {
    client: reqwest::Client,
    url: String,
}

impl HttpPlatform {
    pub fn new(url: impl Into<String>) -> anyhow::Result<HttpPlatform> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(HttpPlatform { client, url: url.into() })
    }
}

impl DataPlatform for HttpPlatform {
    async fn deliver(&self, event_id: &str, body: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", event_id)
            .body(body.to_owned())
            .send()
            .await
            .with_context(|| format!("post event {event_id} to the data platform"))?;
        if !response.status().is_success() {
            anyhow::bail!("the data platform answered {} to event {event_id}", response.status());
        }
        Ok(())
    }
}

/// SQS and Kinesis clients from the process's shared SDK configuration
/// (`AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_KINESIS` locally).
pub async fn clients_from_env() -> (aws_sdk_sqs::Client, aws_sdk_kinesis::Client) {
    let config = crate::adapters::aws_sdk_config().await;
    (aws_sdk_sqs::Client::new(config), aws_sdk_kinesis::Client::new(config))
}

/// A DynamoDB Streams client from the shared SDK configuration
/// (`AWS_ENDPOINT_URL_DYNAMODB_STREAMS` locally: DynamoDB Local serves streams on its
/// own port).
pub async fn streams_client_from_env() -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(crate::adapters::aws_sdk_config().await)
}
