//! The feed in the local run (and the tests): pollers that do what AWS's event source
//! mappings do — read the outbox's DynamoDB stream for the relay, and receive SQS
//! messages for the consumer — and call the same code as the Lambdas.
//!
//! The queue's receive limit needs nothing of the poller: the queue's redrive policy
//! moves a message received `maxReceiveCount` times to the dead-letter queue on the
//! next receive, on AWS and in moto alike (moto's `receive_message` checks each
//! visible message's receive count against the policy before handing it out).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use rushcart::clock::Clock;
use rushcart::feed::{relay, DataPlatform, DeliveryLog, EventPublisher, Outbox, OutboxEvent};
use rushcart::triggers::consume_sqs_batch;

/// Reads every shard of a table's stream from its start, remembering where it got to;
/// with a checkpoint file, also across restarts, as an event source mapping keeps its
/// place for a function that was stopped.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    iterators: HashMap<String, Option<String>>,
    /// The last sequence number read per shard, to reopen a shard where it was left.
    last_read: HashMap<String, String>,
    /// Where `last_read` is kept between runs ([`StreamReader::checkpointed`]).
    checkpoint: Option<std::path::PathBuf>,
}

impl StreamReader {
    pub async fn new(
        dynamodb: &aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
    ) -> anyhow::Result<StreamReader> {
        let described =
            dynamodb.describe_table().table_name(table).send().await.context("describe the outbox table")?;
        let stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| anyhow!("table {table} has no stream"))?
            .to_owned();
        Ok(StreamReader {
            client: streams,
            stream_arn,
            iterators: HashMap::new(),
            last_read: HashMap::new(),
            checkpoint: None,
        })
    }

    /// Keeps its place in `path` (JSON: shard → last sequence number read), and starts
    /// after the place kept there, if any. Without one, a relay started again would read
    /// the stream from its start and publish every event again (delivered once all the
    /// same, but a backlog the consumer needs minutes to work through).
    pub fn checkpointed(mut self, path: std::path::PathBuf) -> anyhow::Result<StreamReader> {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.last_read =
                    serde_json::from_str(&text).with_context(|| format!("the stream checkpoint {}", path.display()))?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("read the stream checkpoint {}", path.display())),
        }
        self.checkpoint = Some(path);
        Ok(self)
    }

    /// Writes its place to the checkpoint file, if it has one (a whole file each time:
    /// written beside it, then renamed over it).
    fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.checkpoint else { return Ok(()) };
        let written = path.with_extension("writing");
        std::fs::write(&written, serde_json::to_vec(&self.last_read)?)?;
        std::fs::rename(&written, path).with_context(|| format!("write the stream checkpoint {}", path.display()))
    }

    /// An iterator for `shard`: after the last record read, or from its start.
    async fn open(&self, shard: &str) -> anyhow::Result<String> {
        let request = self.client.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(shard);
        let request = match self.last_read.get(shard) {
            Some(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let output =
            request.send().await.map_err(|e| anyhow!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
        Ok(output.shard_iterator().ok_or_else(|| anyhow!("no shard iterator"))?.to_owned())
    }

    /// The new outbox events since the last call.
    pub async fn next_events(&mut self) -> anyhow::Result<Vec<(String, OutboxEvent)>> {
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
        let shards: Vec<String> = described
            .stream_description()
            .map(|d| d.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut events = Vec::new();
        for shard in shards {
            let iterator = match self.iterators.get(&shard) {
                Some(None) => continue, // closed and read to its end
                Some(Some(iterator)) => iterator.clone(),
                None => self.open(&shard).await?,
            };
            let page = match self.client.get_records().shard_iterator(&iterator).send().await {
                Ok(page) => page,
                Err(err) => {
                    let code = err.as_service_error().and_then(|e| e.meta().code()).unwrap_or_default().to_owned();
                    if code == "TrimmedDataAccessException" || code == "ExpiredIteratorException" {
                        // Reopen the shard after the last record read, on the next pass.
                        tracing::debug!(%shard, %code, "reopening a stream shard");
                        self.iterators.remove(&shard);
                        continue;
                    }
                    return Err(anyhow!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err)));
                }
            };
            for record in page.records() {
                let inserted = record.event_name().is_some_and(|n| n.as_str() == "INSERT");
                let Some(change) = record.dynamodb() else { continue };
                let Some(image) = change.new_image() else { continue };
                let text = |name: &str| match image.get(name) {
                    Some(AttributeValue::S(value)) => Some(value.clone()),
                    _ => None,
                };
                if let Some(sequence) = change.sequence_number() {
                    self.last_read.insert(shard.clone(), sequence.to_owned());
                }
                if let (true, Some(order_id), Some(event_id), Some(payload)) =
                    (inserted, text("orderId"), text("eventId"), text("payload"))
                {
                    let sequence = change.sequence_number().unwrap_or_default().to_owned();
                    events.push((sequence, OutboxEvent { order_id, event_id, payload }));
                }
            }
            self.iterators.insert(shard, page.next_shard_iterator().map(str::to_owned));
        }
        Ok(events)
    }
}

/// One relay pass over the stream: what the Lambda does for one batch.
pub async fn relay_once<P: EventPublisher, O: Outbox>(
    reader: &mut StreamReader,
    publisher: &P,
    outbox: &O,
    clock: &dyn Clock,
) -> anyhow::Result<usize> {
    let events = reader.next_events().await?;
    let count = events.len();
    // A failed event stays unpublished in the outbox; the sweeper republishes it.
    relay(publisher, outbox, events, clock.now()).await;
    // The batch is relayed (or left to the sweeper): as an event source mapping
    // checkpoints once its function returns.
    if count > 0 {
        reader.save()?;
    }
    Ok(count)
}

/// One consumer pass: receive up to 10 messages, hand them to the consumer as Lambda
/// does (an SQS event, through [`consume_sqs_batch`]), delete those not named in its
/// batch item failures, and make the failed ones visible again after `retry_after`
/// (SQS counts each receive towards the dead-letter queue's limit).
pub async fn consume_once<L: DeliveryLog, D: DataPlatform>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    log: &L,
    platform: &D,
    clock: &dyn Clock,
    retry_after: Duration,
) -> anyhow::Result<usize> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let messages = received.messages();
    if messages.is_empty() {
        return Ok(0);
    }
    let handles: HashMap<String, String> =
        messages.iter().filter_map(|m| Some((m.message_id()?.to_owned(), m.receipt_handle()?.to_owned()))).collect();
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(lambda_record).collect();
    let response = consume_sqs_batch(log, platform, clock, event).await;
    let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    let mut done = Vec::new();
    for (id, handle) in &handles {
        if failed.contains(id) {
            let _ = sqs
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(retry_after.as_secs() as i32)
                .send()
                .await;
        } else {
            done.push(DeleteMessageBatchRequestEntry::builder().id(id).receipt_handle(handle).build()?);
        }
    }
    if !done.is_empty() {
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(done))
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    }
    Ok(handles.len())
}

/// A received message as a record of Lambda's SQS event.
fn lambda_record(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.md5_of_body = message.md5_of_body().map(str::to_owned);
    record.attributes = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    record.event_source = Some("aws:sqs".to_owned());
    record
}
