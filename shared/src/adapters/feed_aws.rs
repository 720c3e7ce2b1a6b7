//! The feed's channels as the functions use them: publishing to SQS and Kinesis, and
//! posting to the data platform's HTTP endpoint. Their provisioning for the local stack
//! and the operator's redrive are the testkit's (`rushcart-testkit::channels`).

use std::time::Duration;

use anyhow::{anyhow, Context as _};

use crate::feed::{DataPlatform, EventPublisher, OutboxEvent};

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
