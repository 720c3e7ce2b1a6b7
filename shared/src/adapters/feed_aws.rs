//! The feed's channels: SQS (with a dead-letter queue) and Kinesis, and the data
//! platform's HTTP endpoint. Also their provisioning for the local stack, mirroring
//! `template.yaml` (a test holds the two together), and the operator's look at the
//! dead-letter queue and its redrive (`rushcart-admin redrive`).

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

    /// SQS first, in `SendMessageBatch` requests of up to 10 (a few at once), then
    /// one `PutRecords` per 500 of the events SQS took: two to three requests for a
    /// relay's batch of 25 instead of 50. Each channel can take some entries of a request
    /// and refuse others (with HTTP 200), so every entry's own result is read. An event
    /// SQS took and Kinesis refused fails, and goes to SQS again with its retry: the
    /// consumer's dedup makes that harmless.
    async fn publish_batch(&self, events: &[OutboxEvent]) -> Vec<anyhow::Result<()>> {
        use futures::StreamExt as _;
        let mut outcomes: Vec<anyhow::Result<()>> = events.iter().map(|_| Ok(())).collect();
        let sizes: Vec<usize> = events.iter().map(|e| e.payload.len()).collect();
        let sent: Vec<_> = futures::stream::iter(chunks(&sizes, SQS_BATCH_ENTRIES, SQS_BATCH_BYTES))
            .map(|range| self.send_to_sqs(events, range))
            .buffered(SQS_BATCHES_AT_ONCE)
            .collect()
            .await;
        for (range, refused) in sent {
            for (i, refusal) in range.zip(refused) {
                if let Some(err) = refusal {
                    outcomes[i] = Err(err);
                }
            }
        }
        let taken: Vec<usize> = (0..events.len()).filter(|&i| outcomes[i].is_ok()).collect();
        let taken_sizes: Vec<usize> = taken.iter().map(|&i| sizes[i] + events[i].order_id.len()).collect();
        for range in chunks(&taken_sizes, KINESIS_BATCH_RECORDS, KINESIS_BATCH_BYTES) {
            let indices = &taken[range];
            for (&i, refusal) in indices.iter().zip(self.put_on_kinesis(events, indices).await) {
                if let Some(err) = refusal {
                    outcomes[i] = Err(err);
                }
            }
        }
        outcomes
    }
}

/// How many `SendMessageBatch` requests one publish has in flight: a relay's batch of
/// 25 is three, and a local poller's page of hundreds must not become a burst of dozens
/// (measured: moto's SQS then timed requests out and the rest of the machine slowed).
const SQS_BATCHES_AT_ONCE: usize = 4;
/// SQS takes at most 10 entries and 256 KiB in one `SendMessageBatch`.
const SQS_BATCH_ENTRIES: usize = 10;
const SQS_BATCH_BYTES: usize = 256 * 1024;
/// Kinesis takes at most 500 records and 5 MiB (data and partition keys) in one
/// `PutRecords`.
const KINESIS_BATCH_RECORDS: usize = 500;
const KINESIS_BATCH_BYTES: usize = 5 * 1024 * 1024;

/// Consecutive ranges of `sizes` of at most `entries` items and `bytes` bytes each (an
/// item larger than `bytes` alone in its range: the channel refuses it by itself).
fn chunks(sizes: &[usize], entries: usize, bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == entries || total + size > bytes) {
            ranges.push(start..i);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

/// Each entry's refusal, by the entries' ids (their positions in the request, as
/// strings), from a batch answer's failed entries.
fn refusals<'a>(count: usize, failed: impl IntoIterator<Item = (&'a str, String)>) -> Vec<Option<String>> {
    let mut refused = vec![None; count];
    for (id, why) in failed {
        match id.parse::<usize>().ok().filter(|&i| i < count) {
            Some(i) => refused[i] = Some(why),
            // An answer naming no entry of ours: nothing it says can be trusted.
            None => refused.iter_mut().for_each(|r| *r = Some(format!("an answer for an unknown entry {id}: {why}"))),
        }
    }
    refused
}

impl AwsPublisher {
    /// One `SendMessageBatch` of `events[range]`; the refusal of each, if any.
    async fn send_to_sqs(
        &self,
        events: &[OutboxEvent],
        range: std::ops::Range<usize>,
    ) -> (std::ops::Range<usize>, Vec<Option<anyhow::Error>>) {
        let slice = &events[range.clone()];
        let entries: Result<Vec<_>, _> = slice
            .iter()
            .enumerate()
            .map(|(i, event)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&event.payload)
                    .build()
            })
            .collect();
        let sent = match entries {
            Ok(entries) => self
                .sqs
                .send_message_batch()
                .queue_url(&self.channels.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sdk),
            Err(err) => Err(anyhow!(err)),
        };
        let refused = match sent {
            Ok(answer) => refusals(
                slice.len(),
                answer.failed().iter().map(|f| {
                    let why = format!("{} ({})", f.code(), f.message().unwrap_or("no message"));
                    (f.id(), why)
                }),
            )
            .into_iter()
            .zip(slice)
            .map(|(why, event)| why.map(|why| anyhow!("SQS refused the event of order {}: {why}", event.order_id)))
            .collect(),
            Err(err) => {
                let err = format!("{err:#}");
                slice.iter().map(|e| Some(anyhow!("send the event of order {} to SQS: {err}", e.order_id))).collect()
            }
        };
        (range, refused)
    }

    /// One `PutRecords` of `events[i]` for each of `indices`; the refusal of each, if any.
    async fn put_on_kinesis(&self, events: &[OutboxEvent], indices: &[usize]) -> Vec<Option<anyhow::Error>> {
        let records: Result<Vec<_>, _> = indices
            .iter()
            .map(|&i| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key(&events[i].order_id)
                    .data(aws_sdk_kinesis::primitives::Blob::new(events[i].payload.as_bytes()))
                    .build()
            })
            .collect();
        let put = match records {
            Ok(records) => self
                .kinesis
                .put_records()
                .stream_name(&self.channels.stream_name)
                .set_records(Some(records))
                .send()
                .await
                .map_err(|e| anyhow!("{}", aws_sdk_kinesis::error::DisplayErrorContext(&e))),
            Err(err) => Err(anyhow!(err)),
        };
        match put {
            // The answer's records are the request's, in its order.
            Ok(answer) if answer.records().len() == indices.len() => answer
                .records()
                .iter()
                .zip(indices)
                .map(|(record, &i)| {
                    record.error_code().map(|code| {
                        let why = record.error_message().unwrap_or("no message");
                        anyhow!("Kinesis refused the event of order {}: {code} ({why})", events[i].order_id)
                    })
                })
                .collect(),
            Ok(answer) => indices
                .iter()
                .map(|&i| {
                    Some(anyhow!(
                        "Kinesis answered {} records for {} (order {}): not trusted",
                        answer.records().len(),
                        indices.len(),
                        events[i].order_id
                    ))
                })
                .collect(),
            Err(err) => {
                let err = format!("{err:#}");
                indices
                    .iter()
                    .map(|&i| Some(anyhow!("put the event of order {} on Kinesis: {err}", events[i].order_id)))
                    .collect()
            }
        }
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
/// (`AWS_ENDPOINT_URL_DYNAMODB_STREAMS` locally, which may differ from the table
/// endpoint; the local engine serves both on one port).
pub async fn streams_client_from_env() -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(crate::adapters::aws_sdk_config().await)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stop_at_the_entry_count_or_the_byte_limit_whichever_comes_first() {
        assert_eq!(chunks(&[1; 25], 10, 1000), [0..10, 10..20, 20..25]);
        assert_eq!(chunks(&[400, 400, 400, 100], 10, 1000), [0..2, 2..4]);
        assert_eq!(chunks(&[1500, 10, 10], 10, 1000), [0..1, 1..3], "an oversized entry goes alone");
        assert_eq!(chunks(&[], 10, 1000), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(chunks(&[1000, 1], 10, 1000), [0..1, 1..2], "the limit is inclusive");
    }

    #[test]
    fn a_refused_entry_is_told_apart_from_those_taken_by_its_id() {
        let refused = refusals(4, [("2", "InternalError".to_owned())]);
        assert_eq!(refused, [None, None, Some("InternalError".to_owned()), None]);
        assert_eq!(refusals(3, []), [None, None, None]);
    }

    #[test]
    fn an_answer_naming_an_entry_not_sent_fails_the_whole_batch() {
        let refused = refusals(2, [("7", "Throttled".to_owned())]);
        assert!(refused.iter().all(|r| r.as_deref().is_some_and(|why| why.contains("unknown entry 7"))), "{refused:?}");
    }
}
