//! The data-platform feed: the payment transaction writes one ORDER_PAID event to the
//! outbox table; the relay publishes each new event to SQS and Kinesis (partition key:
//! order id) and marks it published; the sweeper republishes events still unpublished
//! after a grace period; the consumer forwards SQS messages to the data platform over
//! HTTP, once in effect per order. Payment never waits for any of it.
//!
//! Delivery is at least once everywhere (a relay that dies between publishing and
//! marking publishes again), so the consumer dedups by order id: it claims the order in
//! a delivery log (a lease), posts, and marks the order delivered; a duplicate of a
//! delivered order is acknowledged without posting. Each post also carries the event id
//! as `Idempotency-Key`, so a platform that honours it stays exact even when a consumer
//! dies after posting and before marking.

pub mod local;

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

/// One outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub order_id: String,
    pub event_id: String,
    /// The ORDER_PAID JSON (docs/events.md).
    pub payload: String,
}

/// How long an event may stay unpublished before the sweeper takes it over from the
/// relay.
pub const SWEEP_GRACE: Duration = Duration::from_secs(30);
/// How many events of one batch are relayed or delivered at once.
const CONCURRENCY: usize = 16;

/// How long a consumer's claim on an order lasts before another may retry it.
pub const DELIVERY_LEASE: Duration = Duration::from_secs(30);

/// Publishes an event to every feed channel (SQS and Kinesis); an error means at least
/// one channel did not take it, and it must be published again.
pub trait EventPublisher: Send + Sync {
    fn publish(&self, event: &OutboxEvent) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The outbox's publication state.
pub trait Outbox: Send + Sync {
    fn mark_published(&self, order_id: &str, at: OffsetDateTime) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Events written before `cutoff` and not published yet, oldest first.
    fn unpublished_before(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = anyhow::Result<Vec<OutboxEvent>>> + Send;
}

/// A consumer's claim on delivering one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to deliver.
    Claimed,
    /// Already delivered: acknowledge without posting.
    Delivered,
    /// Another consumer holds an unexpired claim: retry later.
    Busy,
}

/// Which orders reached the platform.
pub trait DeliveryLog: Send + Sync {
    fn claim(&self, order_id: &str, now: OffsetDateTime) -> impl Future<Output = anyhow::Result<Claim>> + Send;
    fn delivered(&self, order_id: &str, now: OffsetDateTime) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn release(&self, order_id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The external data platform.
pub trait DataPlatform: Send + Sync {
    fn deliver(&self, event_id: &str, body: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Publishes `events` and marks each published; returns the ids (`(id, event)` as given)
/// of those that failed, for a partial batch response.
pub async fn relay<P: EventPublisher, O: Outbox>(
    publisher: &P,
    outbox: &O,
    events: Vec<(String, OutboxEvent)>,
    now: OffsetDateTime,
) -> Vec<String> {
    use futures::StreamExt as _;
    // Events are independent (no ordering is promised), so a batch goes out concurrently.
    futures::stream::iter(events)
        .map(|(id, event)| async move {
            let outcome = async {
                publisher.publish(&event).await?;
                outbox.mark_published(&event.order_id, now).await
            };
            match outcome.await {
                Ok(()) => None,
                Err(err) => {
                    tracing::warn!(order = %event.order_id, error = %format!("{err:#}"), "relaying an event failed; it will be retried");
                    Some(id)
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .collect()
        .await
}

/// Republishes events left unpublished past the grace period. Returns how many it
/// published and how many still failed.
pub async fn sweep<P: EventPublisher, O: Outbox>(
    publisher: &P,
    outbox: &O,
    now: OffsetDateTime,
    grace: Duration,
) -> anyhow::Result<(usize, usize)> {
    let cutoff = now - grace;
    let events = outbox.unpublished_before(cutoff, 100).await?;
    let total = events.len();
    let failed = relay(publisher, outbox, events.into_iter().map(|e| (e.order_id.clone(), e)).collect(), now).await;
    if total > 0 {
        tracing::info!(republished = total - failed.len(), failed = failed.len(), "sweeper ran");
    }
    Ok((total - failed.len(), failed.len()))
}

/// Delivers SQS messages (`(message id, body)`) to the platform, once in effect per
/// order; returns the ids of messages to retry.
pub async fn consume<L: DeliveryLog, D: DataPlatform>(
    log: &L,
    platform: &D,
    messages: Vec<(String, String)>,
    now: OffsetDateTime,
) -> Vec<String> {
    use futures::StreamExt as _;
    futures::stream::iter(messages)
        .map(|(message_id, body)| async move {
            match deliver_one(log, platform, &body, now).await {
                Ok(()) => None,
                Err(err) => {
                    tracing::warn!(message = %message_id, error = %format!("{err:#}"), "delivery failed; SQS will retry it");
                    Some(message_id)
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|retry| async move { retry })
        .collect()
        .await
}

async fn deliver_one<L: DeliveryLog, D: DataPlatform>(
    log: &L,
    platform: &D,
    body: &str,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let event: Value = serde_json::from_str(body)?;
    let order_id = event["orderId"].as_str().ok_or_else(|| anyhow::anyhow!("event without orderId"))?;
    let event_id = event["eventId"].as_str().unwrap_or(order_id);
    match log.claim(order_id, now).await? {
        Claim::Delivered => {
            tracing::info!(order = order_id, "duplicate event acknowledged without posting");
            return Ok(());
        }
        Claim::Busy => anyhow::bail!("order {order_id} is being delivered by another consumer"),
        Claim::Claimed => {}
    }
    match platform.deliver(event_id, body).await {
        Ok(()) => log.delivered(order_id, now).await,
        Err(err) => {
            if let Err(release) = log.release(order_id).await {
                tracing::warn!(order = order_id, error = %release, "releasing a delivery claim failed; its lease will expire");
            }
            Err(err)
        }
    }
}

/// The new outbox events of a DynamoDB stream Lambda event, with their sequence
/// numbers (the batch item identifiers).
pub fn events_from_stream_event(event: &Value) -> Vec<(String, OutboxEvent)> {
    let records = event["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
    records
        .iter()
        .filter(|r| r["eventName"] == "INSERT")
        .filter_map(|r| {
            let image = &r["dynamodb"]["NewImage"];
            let text = |name: &str| image[name]["S"].as_str().map(str::to_owned);
            let sequence = r["dynamodb"]["SequenceNumber"].as_str()?.to_owned();
            Some((
                sequence,
                OutboxEvent { order_id: text("orderId")?, event_id: text("eventId")?, payload: text("payload")? },
            ))
        })
        .collect()
}

/// `(message id, body)` of an SQS Lambda event.
pub fn messages_from_sqs_event(event: &Value) -> Vec<(String, String)> {
    let records = event["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
    records.iter().filter_map(|r| Some((r["messageId"].as_str()?.to_owned(), r["body"].as_str()?.to_owned()))).collect()
}

/// The partial batch response Lambda reads: `{"batchItemFailures": [{"itemIdentifier"}]}`.
pub fn batch_response(failed: &[String]) -> Value {
    let failures: Vec<Value> = failed.iter().map(|id| serde_json::json!({"itemIdentifier": id})).collect();
    serde_json::json!({ "batchItemFailures": failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inserted_outbox_events_are_relayed_with_their_sequence_numbers() {
        let event = serde_json::json!({"Records": [
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "100", "NewImage": {
                "orderId": {"S": "o1"}, "eventId": {"S": "o1:ORDER_PAID"}, "payload": {"S": "{}"}}}},
            {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "101", "NewImage": {
                "orderId": {"S": "o1"}, "eventId": {"S": "o1:ORDER_PAID"}, "payload": {"S": "{}"}}}},
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "102", "NewImage": {"orderId": {"S": "broken"}}}}
        ]});
        let events = events_from_stream_event(&event);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "100");
        assert_eq!(events[0].1.order_id, "o1");
    }

    #[test]
    fn the_batch_response_names_each_failed_item() {
        assert_eq!(
            batch_response(&["a".into(), "b".into()]),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]})
        );
        assert_eq!(batch_response(&[]), serde_json::json!({"batchItemFailures": []}));
    }
}
