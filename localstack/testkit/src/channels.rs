//! The feed's channels for the local stack and the operator: their provisioning,
//! mirroring `template.yaml` (a test holds the two together), and the look at the
//! dead-letter queue and its redrive (`rushcart-admin redrive`).

use anyhow::{anyhow, Context as _};
use aws_sdk_sqs::types::QueueAttributeName;
use rushcart::adapters::feed_aws::FeedChannels;

/// SQS moves a message to the dead-letter queue after this many receives.
pub const MAX_RECEIVES: u32 = 5;
/// The queue's visibility timeout (seconds): longer than the consumer's run time.
pub const VISIBILITY_TIMEOUT: u32 = 60;
pub const KINESIS_SHARDS: i32 = 1;

fn sdk<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    err: aws_sdk_sqs::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&err))
}

/// The feed queue and its dead-letter queue, as an operator's command finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQueues {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
}

impl FeedQueues {
    /// `FEED_QUEUE_URL` and `FEED_DLQ_URL` when both are set (as the functions and
    /// `provision --feed-env` name them; on AWS, the stack's `FeedQueueUrl` and
    /// `FeedDeadLetterQueueUrl` outputs), else the queues [`provision`] creates for
    /// `prefix`, looked up by name.
    pub async fn locate(sqs: &aws_sdk_sqs::Client, prefix: &str) -> anyhow::Result<FeedQueues> {
        let named = |name: &str| std::env::var(name).ok().filter(|url| !url.is_empty());
        match (named("FEED_QUEUE_URL"), named("FEED_DLQ_URL")) {
            (Some(queue_url), Some(dead_letter_queue_url)) => Ok(FeedQueues { queue_url, dead_letter_queue_url }),
            _ => FeedQueues::by_name(sqs, prefix).await,
        }
    }

    /// The queues [`provision`] creates for `prefix`: `<prefix>-feed` and
    /// `<prefix>-feed-dlq`.
    pub async fn by_name(sqs: &aws_sdk_sqs::Client, prefix: &str) -> anyhow::Result<FeedQueues> {
        let url_of = |name: String| async move {
            let found = sqs.get_queue_url().queue_name(&name).send().await.map_err(sdk);
            let found =
                found.with_context(|| format!("find the queue {name} (or set FEED_QUEUE_URL and FEED_DLQ_URL)"))?;
            found.queue_url().map(str::to_owned).ok_or_else(|| anyhow!("no URL for the queue {name}"))
        };
        Ok(FeedQueues {
            queue_url: url_of(format!("{prefix}-feed")).await?,
            dead_letter_queue_url: url_of(format!("{prefix}-feed-dlq")).await?,
        })
    }
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

/// A DynamoDB Streams client from the shared SDK configuration
/// (`AWS_ENDPOINT_URL_DYNAMODB_STREAMS` locally, which may differ from the table
/// endpoint; the local engine serves both on one port).
pub async fn streams_client_from_env() -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(rushcart::adapters::aws_sdk_config().await)
}

/// How long a redrive or a listing hides the dead letters it received: long enough to
/// send one back and delete it, short enough that one left behind (a failed send)
/// is soon there to redrive again.
const REDRIVE_VISIBILITY_SECS: i32 = 30;

/// A message waiting in the dead-letter queue, as `redrive --dry-run` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    /// The feed event it carries (`eventId`), when its body is one.
    pub event_id: Option<String>,
    /// How often it was received before this listing, the feed queue's receives
    /// included (SQS keeps the count when it dead-letters a message).
    pub receives: u32,
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// How many were sent back to the feed queue.
    pub moved: usize,
    /// Those not sent, still in the dead-letter queue: `<message id>: <cause>`.
    pub failed: Vec<String>,
    /// Those sent but not deleted from the dead-letter queue (`<message id>: <cause>`):
    /// the next redrive sends them again, which the consumer's dedup makes harmless.
    pub not_deleted: Vec<String>,
}

/// Receives every visible message of `queue`, each once, hiding it for
/// [`REDRIVE_VISIBILITY_SECS`], and hands each batch to `each` until a receive finds
/// none.
async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    mut each: impl AsyncFnMut(Vec<aws_sdk_sqs::types::Message>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            // Long polling asks every server of the queue, so an empty answer means empty.
            .wait_time_seconds(1)
            .visibility_timeout(REDRIVE_VISIBILITY_SECS)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(sdk)
            .with_context(|| format!("receive from {queue}"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(());
        }
        each(messages).await?;
    }
}

/// Lists the messages in the dead-letter queue without moving them: each is received
/// once and at once made visible again (which adds one to its receive count, and
/// nothing else: the dead-letter queue has no receive limit).
pub async fn dead_letters(sqs: &aws_sdk_sqs::Client, dead_letter_queue: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let mut letters = Vec::new();
    let mut handles = Vec::new();
    receive_all(sqs, dead_letter_queue, async |messages| {
        for message in messages {
            let event_id = message
                .body()
                .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
                .and_then(|event| event["eventId"].as_str().map(str::to_owned));
            let receives = message
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|count| count.parse::<u32>().ok())
                .map_or(0, |count| count.saturating_sub(1));
            letters.push(DeadLetter {
                message_id: message.message_id().unwrap_or_default().to_owned(),
                event_id,
                receives,
            });
            handles.extend(message.receipt_handle);
        }
        Ok(())
    })
    .await?;
    for handle in handles {
        sqs.change_message_visibility()
            .queue_url(dead_letter_queue)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(sdk)
            .context("make a listed dead letter visible again (else it is hidden for 30 s)")?;
    }
    Ok(letters)
}

/// Moves every message of the dead-letter queue back to the feed queue, keeping its
/// body and message attributes: each is sent to `queue` and deleted from
/// `dead_letter_queue` only after the send succeeded, so a redrive that dies midway
/// loses nothing (a message it sent but did not delete is sent again by the next one,
/// and the consumer dedups by event id).
///
/// A receive / send / delete loop rather than SQS's `StartMessageMoveTask`: that task
/// is AWS's own and asynchronous (it needs polling `ListMessageMoveTasks` for its end),
/// and moto, the local stack's SQS, does not implement it; the loop runs the same on
/// both, and says at once what it moved. A message redriven while its cause is not
/// fixed comes back to the dead-letter queue after the receive limit, as a new message.
pub async fn redrive(sqs: &aws_sdk_sqs::Client, dead_letter_queue: &str, queue: &str) -> anyhow::Result<Redriven> {
    let mut report = Redriven::default();
    receive_all(sqs, dead_letter_queue, async |messages| {
        for message in messages {
            let id = message.message_id().unwrap_or("(no message id)");
            let (Some(body), Some(handle)) = (message.body(), message.receipt_handle()) else {
                report.failed.push(format!("{id}: received without a body or receipt handle"));
                continue;
            };
            let sent = sqs
                .send_message()
                .queue_url(queue)
                .message_body(body)
                .set_message_attributes(message.message_attributes().cloned())
                .send()
                .await
                .map_err(sdk);
            if let Err(err) = sent {
                report.failed.push(format!("{id}: {err:#}"));
                continue;
            }
            report.moved += 1;
            let deleted =
                sqs.delete_message().queue_url(dead_letter_queue).receipt_handle(handle).send().await.map_err(sdk);
            if let Err(err) = deleted {
                report.not_deleted.push(format!("{id}: {err:#}"));
            }
        }
        Ok(())
    })
    .await?;
    Ok(report)
}
