//! The data-platform feed: the payment transaction writes an ORDER_PAID event to the
//! outbox table, a refund an ORDER_REFUNDED one; the relay publishes each new event to
//! SQS and Kinesis (partition key: order id, so one order's events keep their order)
//! and marks it published; the sweeper republishes events still unpublished after a
//! grace period; the consumer forwards SQS messages to the data platform over HTTP,
//! once in effect per event. Payment and refund never wait for any of it.
//!
//! Delivery is at least once everywhere (a relay that dies between publishing and
//! marking publishes again), so the consumer dedups by event id (`<orderId>:<TYPE>`):
//! it claims the event in a delivery log (a lease), posts, and marks it delivered; a
//! duplicate of a delivered event is acknowledged without posting. Each post also
//! carries the event id as `Idempotency-Key`, so a platform that honours it stays exact
//! even when a consumer dies after posting and before marking.

pub mod events;

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::Value;
use time::OffsetDateTime;

use crate::metrics;

/// One outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub order_id: String,
    /// `<orderId>:<TYPE>`, unique per event.
    pub event_id: String,
    /// The event's JSON (docs/events.md).
    pub payload: String,
}

/// What happened to an order, as the data platform hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    OrderPaid,
    OrderRefunded,
}

impl EventType {
    /// Every type, in the order one order's events happen.
    pub const IN_ORDER: [EventType; 2] = [EventType::OrderPaid, EventType::OrderRefunded];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPaid => "ORDER_PAID",
            EventType::OrderRefunded => "ORDER_REFUNDED",
        }
    }

    /// The id of this event of `order`: an order has at most one of each type.
    pub fn event_id(self, order: impl std::fmt::Display) -> String {
        format!("{order}:{}", self.as_str())
    }

    /// The type an event id names.
    pub fn of_event(event_id: &str) -> Option<EventType> {
        let (_, kind) = event_id.rsplit_once(':')?;
        EventType::IN_ORDER.into_iter().find(|t| t.as_str() == kind)
    }

    /// The types an order's event of this type comes after.
    pub fn earlier(self) -> &'static [EventType] {
        let position = EventType::IN_ORDER.iter().position(|t| *t == self).unwrap_or(0);
        &EventType::IN_ORDER[..position]
    }
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

    /// Publishes events of *different* orders together (as few requests as the channels
    /// allow), each with its own outcome, in the order given. Events of one order must
    /// not share a batch: a batch keeps no order among its entries.
    fn publish_batch(&self, events: &[OutboxEvent]) -> impl Future<Output = Vec<anyhow::Result<()>>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                outcomes.push(self.publish(event).await);
            }
            outcomes
        }
    }
}

/// The outbox's publication state.
pub trait Outbox: Send + Sync {
    fn mark_published(
        &self,
        event: &OutboxEvent,
        at: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The same order's earlier events (an ORDER_REFUNDED's ORDER_PAID) still
    /// unpublished, in order: published first, so the stream keeps the order's order
    /// even when the relay gave up on an earlier one and left it to the sweeper.
    fn unpublished_earlier(&self, event: &OutboxEvent)
        -> impl Future<Output = anyhow::Result<Vec<OutboxEvent>>> + Send;
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

/// Which events reached the platform, by event id.
pub trait DeliveryLog: Send + Sync {
    fn claim(&self, event_id: &str, now: OffsetDateTime) -> impl Future<Output = anyhow::Result<Claim>> + Send;
    fn delivered(&self, event_id: &str, now: OffsetDateTime) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn release(&self, event_id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The external data platform.
pub trait DataPlatform: Send + Sync {
    fn deliver(&self, event_id: &str, body: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Publishes `events` and marks each published; returns the ids (`(id, event)` as given)
/// of those that failed, for a partial batch response.
///
/// The events go out in rounds: the first event of every order in the batch, then the
/// second, and so on, so one order's events leave one after another in the order given
/// (the stream's) while each round goes to the channels in batches
/// ([`EventPublisher::publish_batch`]). An event first publishes any earlier event of
/// its order still unpublished; after one of an order's events fails, the order's later
/// events are not tried but failed with it. So no consumer sees a refund before its
/// payment.
pub async fn relay<P: EventPublisher, O: Outbox>(
    publisher: &P,
    outbox: &O,
    events: Vec<(String, OutboxEvent)>,
    now: OffsetDateTime,
) -> Vec<String> {
    use futures::StreamExt as _;
    let mut by_order: Vec<std::collections::VecDeque<(String, OutboxEvent)>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (id, event) in events {
        let slot = *index.entry(event.order_id.clone()).or_insert_with(|| {
            by_order.push(std::collections::VecDeque::new());
            by_order.len() - 1
        });
        by_order[slot].push_back((id, event));
    }
    let mut failed = Vec::new();
    loop {
        let round: Vec<(usize, String, OutboxEvent)> = by_order
            .iter_mut()
            .enumerate()
            .filter_map(|(order, queue)| queue.pop_front().map(|(id, event)| (order, id, event)))
            .collect();
        if round.is_empty() {
            break;
        }
        // An earlier event left unpublished (a refund's payment, given up on by a relay
        // and left to the sweeper) goes first, one by one: it is rare.
        // (Indices, not references, into the stream: a borrowed item's closure trips
        // the compiler's check that the spawned relay task is Send.)
        let round_ref = &round;
        let ready: Vec<Option<anyhow::Error>> = futures::stream::iter(0..round.len())
            .map(|i| async move { publish_earlier(publisher, outbox, &round_ref[i].2, now).await.err() })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let (go, held): (Vec<_>, Vec<_>) = round.into_iter().zip(ready).partition(|(_, err)| err.is_none());
        let go: Vec<(usize, String, OutboxEvent)> = go.into_iter().map(|(event, _)| event).collect();
        let batch: Vec<OutboxEvent> = go.iter().map(|(_, _, event)| event.clone()).collect();
        let published = publisher.publish_batch(&batch).await;
        let go_ref = &go;
        let marked: Vec<anyhow::Result<()>> = futures::stream::iter(published.into_iter().enumerate())
            .map(|(i, published)| async move {
                published?;
                outbox.mark_published(&go_ref[i].2, now).await
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let outcomes = go.into_iter().zip(marked).chain(held.into_iter().map(|(event, err)| {
            (event, Err(err.unwrap_or_else(|| anyhow::anyhow!("an earlier event of the order was not published"))))
        }));
        for ((order, id, event), outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    metrics::count(metrics::FEED_EVENTS, &["Relayed"], 1);
                    if let Some(lag) = committed_at(&event).map(|at| now - at) {
                        metrics::duration(metrics::FEED_LAG, &[], lag.try_into().unwrap_or_default());
                    }
                }
                Err(err) => {
                    tracing::warn!(event = %event.event_id, error = %format!("{err:#}"), "relaying an event failed; it will be retried");
                    metrics::count(metrics::FEED_EVENTS, &["Retried"], 1);
                    failed.push(id);
                    // The order's later events wait for this one: failed with it.
                    failed.extend(by_order[order].drain(..).map(|(id, _)| id));
                }
            }
        }
    }
    failed
}

/// Publishes and marks the earlier events of `event`'s order still unpublished.
async fn publish_earlier<P: EventPublisher, O: Outbox>(
    publisher: &P,
    outbox: &O,
    event: &OutboxEvent,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    for earlier in outbox.unpublished_earlier(event).await? {
        publisher.publish(&earlier).await?;
        outbox.mark_published(&earlier, now).await?;
    }
    Ok(())
}

/// When the event's change committed: its refund, or else its payment.
fn committed_at(event: &OutboxEvent) -> Option<OffsetDateTime> {
    let payload: Value = serde_json::from_str(&event.payload).ok()?;
    let at = payload["refundedAt"].as_str().or_else(|| payload["paidAt"].as_str())?;
    OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
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
                Ok(delivered) => {
                    metrics::count(metrics::FEED_EVENTS, &[delivered], 1);
                    None
                }
                Err(err) => {
                    tracing::warn!(message = %message_id, error = %format!("{err:#}"), "delivery failed; SQS will retry it");
                    metrics::count(metrics::FEED_EVENTS, &["DeliveryFailed"], 1);
                    Some(message_id)
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|retry| async move { retry })
        .collect()
        .await
}

/// Delivers one message: `Delivered`, or `Duplicate` when it was delivered before.
async fn deliver_one<L: DeliveryLog, D: DataPlatform>(
    log: &L,
    platform: &D,
    body: &str,
    now: OffsetDateTime,
) -> anyhow::Result<&'static str> {
    let event: Value = serde_json::from_str(body)?;
    let event_id = event["eventId"].as_str().ok_or_else(|| anyhow::anyhow!("event without eventId"))?;
    match log.claim(event_id, now).await? {
        Claim::Delivered => {
            tracing::info!(event = event_id, "duplicate event acknowledged without posting");
            return Ok("Duplicate");
        }
        Claim::Busy => anyhow::bail!("event {event_id} is being delivered by another consumer"),
        Claim::Claimed => {}
    }
    match platform.deliver(event_id, body).await {
        Ok(()) => match log.delivered(event_id, now).await {
            Ok(()) => Ok("Delivered"),
            // The platform has it, but the log does not say so: once the claim's lease
            // runs out, a retry of the message claims and posts it again. That second
            // post carries the same `Idempotency-Key` (the event id), by which the
            // platform dedups; this is the one window where it has to.
            Err(err) => {
                tracing::warn!(event = event_id, error = %format!("{err:#}"), "delivered, but recording the delivery failed: a retry may post it again");
                metrics::count(metrics::FEED_EVENTS, &["DeliveredUnrecorded"], 1);
                Err(err)
            }
        },
        Err(err) => {
            if let Err(release) = log.release(event_id).await {
                tracing::warn!(event = event_id, error = %release, "releasing a delivery claim failed; its lease will expire");
            }
            Err(err)
        }
    }
}

/// What a trigger's batch holds: the records to act on, by their batch item
/// identifiers, and the identifiers of those that could not be read (reported as batch
/// item failures, never dropped: a stream retries them, SQS dead-letters them past its
/// receive limit).
#[derive(Debug, PartialEq, Eq)]
pub struct Batch<T> {
    pub records: Vec<(String, T)>,
    pub unreadable: Vec<String>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch { records: Vec::new(), unreadable: Vec::new() }
    }
}

/// The attributes of an outbox item the relay reads from a stream record's new image
/// (adapters/dynamodb/feed.rs writes them).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutboxImage {
    order_id: String,
    event_id: String,
    payload: String,
}

/// Reads an outbox event from a stream record's new image; the error names the
/// attribute that is missing or not a string.
fn outbox_event(image: serde_dynamo::Item) -> Result<OutboxEvent, serde_path_to_error::Error<serde_dynamo::Error>> {
    let deserializer = serde_dynamo::Deserializer::from_attribute_value(serde_dynamo::AttributeValue::M(image.into()));
    let OutboxImage { order_id, event_id, payload } = serde_path_to_error::deserialize(deserializer)?;
    Ok(OutboxEvent { order_id, event_id, payload })
}

/// The new outbox events of a DynamoDB stream Lambda event, by sequence number (the
/// batch item identifier). Other changes (an event marked published) are not events.
pub fn events_from_stream_event(event: StreamEvent) -> Batch<OutboxEvent> {
    let mut batch = Batch::default();
    for record in event.records {
        let Some(sequence) = record.change.sequence_number else {
            // Nothing names it to Lambda: it can only be logged.
            tracing::error!(record = %record.event_id, "a stream record without a sequence number");
            continue;
        };
        if record.event_name != "INSERT" {
            continue;
        }
        match outbox_event(record.change.new_image) {
            Ok(event) => batch.records.push((sequence, event)),
            Err(err) => {
                tracing::error!(%sequence, error = %err, "an outbox record that is no outbox event; reported as failed");
                batch.unreadable.push(sequence);
            }
        }
    }
    batch
}

/// `(message id, body)` of each message of an SQS Lambda event. A body that is not an
/// event is the consumer's to report ([`consume`]), with the message it came in.
pub fn messages_from_sqs_event(event: SqsEvent) -> Batch<String> {
    let mut batch = Batch::default();
    for record in event.records {
        let Some(message_id) = record.message_id else {
            tracing::error!(source = ?record.event_source_arn, "an SQS record without a message id");
            continue;
        };
        match record.body {
            Some(body) => batch.records.push((message_id, body)),
            None => {
                tracing::error!(message = %message_id, "an SQS message without a body; reported as failed");
                batch.unreadable.push(message_id);
            }
        }
    }
    batch
}

/// The partial batch response Lambda reads from a stream trigger: the failed records by
/// sequence number.
pub fn stream_batch_response(failed: Vec<String>) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    response
}

/// The partial batch response Lambda reads from an SQS trigger: the failed messages by
/// message id.
pub fn sqs_batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DynamoDB stream record as Lambda sends it, with `image` as its new image.
    fn stream_record(name: &str, sequence: &str, image: Value) -> Value {
        serde_json::json!({"eventID": format!("e{sequence}"), "eventName": name, "awsRegion": "us-east-1",
            "dynamodb": {"SequenceNumber": sequence, "SizeBytes": 100, "NewImage": image}})
    }

    #[test]
    fn only_inserted_outbox_events_are_relayed_and_a_broken_one_is_reported_failed() {
        let image =
            serde_json::json!({"orderId": {"S": "o1"}, "eventId": {"S": "o1:ORDER_PAID"}, "payload": {"S": "{}"}});
        let event: StreamEvent = serde_json::from_value(serde_json::json!({"Records": [
            stream_record("INSERT", "100", image.clone()),
            stream_record("MODIFY", "101", image),
            stream_record("INSERT", "102", serde_json::json!({"orderId": {"S": "broken"}})),
            stream_record("INSERT", "103", serde_json::json!({
                "orderId": {"S": "o3"}, "eventId": {"S": "o3:ORDER_PAID"}, "payload": {"N": "1"}})),
        ]}))
        .expect("a stream event");
        let batch = events_from_stream_event(event);
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.records[0].0, "100");
        assert_eq!(batch.records[0].1.order_id, "o1");
        assert_eq!(batch.unreadable, ["102", "103"], "a missing attribute and a number for a string");
    }

    #[test]
    fn a_broken_outbox_image_is_named_by_its_attribute() {
        let image: serde_dynamo::Item = serde_json::from_value(serde_json::json!({
            "orderId": {"S": "o3"}, "eventId": {"S": "o3:ORDER_PAID"}, "payload": {"N": "1"}}))
        .expect("an item");
        let err = outbox_event(image).expect_err("a number is no payload");
        assert_eq!(err.path().to_string(), "payload", "{err}");
    }

    #[test]
    fn the_batch_responses_name_each_failed_item_as_lambda_reads_them() {
        assert_eq!(
            serde_json::to_value(stream_batch_response(vec!["1".into(), "2".into()])).expect("JSON"),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "1"}, {"itemIdentifier": "2"}]})
        );
        assert_eq!(
            serde_json::to_value(sqs_batch_response(vec!["a".into()])).expect("JSON"),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "a"}]})
        );
        assert_eq!(
            serde_json::to_value(sqs_batch_response(Vec::new())).expect("JSON"),
            serde_json::json!({"batchItemFailures": []})
        );
    }

    /// Publishes into a log, refusing the event ids in `refuse`; `unpublished` are
    /// outbox events not yet published.
    #[derive(Default)]
    struct Recorder {
        refuse: Vec<&'static str>,
        unpublished: std::sync::Mutex<Vec<OutboxEvent>>,
        published: std::sync::Mutex<Vec<String>>,
    }

    impl EventPublisher for Recorder {
        async fn publish(&self, event: &OutboxEvent) -> anyhow::Result<()> {
            // Let the other orders' publishes interleave with this one.
            tokio::task::yield_now().await;
            if self.refuse.contains(&event.event_id.as_str()) {
                anyhow::bail!("refused {}", event.event_id);
            }
            self.published.lock().unwrap().push(event.event_id.clone());
            Ok(())
        }
    }

    impl Outbox for Recorder {
        async fn mark_published(&self, event: &OutboxEvent, _: OffsetDateTime) -> anyhow::Result<()> {
            self.unpublished.lock().unwrap().retain(|e| e.event_id != event.event_id);
            Ok(())
        }

        async fn unpublished_earlier(&self, event: &OutboxEvent) -> anyhow::Result<Vec<OutboxEvent>> {
            let kind = EventType::of_event(&event.event_id).expect("a known type");
            let earlier: Vec<String> = kind.earlier().iter().map(|t| t.event_id(&event.order_id)).collect();
            Ok(self.unpublished.lock().unwrap().iter().filter(|e| earlier.contains(&e.event_id)).cloned().collect())
        }

        async fn unpublished_before(&self, _: OffsetDateTime, _: u32) -> anyhow::Result<Vec<OutboxEvent>> {
            Ok(Vec::new())
        }
    }

    fn event(order: &str, kind: EventType) -> (String, OutboxEvent) {
        let event_id = kind.event_id(order);
        (event_id.clone(), OutboxEvent { order_id: order.to_owned(), event_id, payload: "{}".to_owned() })
    }

    #[tokio::test]
    async fn one_orders_events_go_out_in_order_and_stop_at_its_first_failure() {
        let recorder = Recorder { refuse: vec!["b:ORDER_PAID"], ..Recorder::default() };
        let events = vec![
            event("a", EventType::OrderPaid),
            event("b", EventType::OrderPaid),
            event("c", EventType::OrderPaid),
            event("a", EventType::OrderRefunded),
            event("b", EventType::OrderRefunded),
        ];
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        let failed = relay(&recorder, &recorder, events, now).await;
        assert_eq!(failed, ["b:ORDER_PAID", "b:ORDER_REFUNDED"], "b's refund waits for its payment");
        let published = recorder.published.lock().unwrap().clone();
        let position = |id: &str| published.iter().position(|p| p == id);
        assert!(position("a:ORDER_PAID") < position("a:ORDER_REFUNDED"), "{published:?}");
        assert_eq!((published.len(), position("b:ORDER_REFUNDED")), (3, None), "{published:?}");
    }

    /// Publishes batches into a log of batches, refusing the event ids in `refuse`.
    #[derive(Default)]
    struct Batches {
        refuse: Vec<&'static str>,
        batches: std::sync::Mutex<Vec<Vec<String>>>,
        marked: std::sync::Mutex<Vec<String>>,
    }

    impl EventPublisher for Batches {
        async fn publish(&self, event: &OutboxEvent) -> anyhow::Result<()> {
            self.publish_batch(std::slice::from_ref(event)).await.remove(0)
        }

        async fn publish_batch(&self, events: &[OutboxEvent]) -> Vec<anyhow::Result<()>> {
            self.batches.lock().unwrap().push(events.iter().map(|e| e.event_id.clone()).collect());
            events
                .iter()
                .map(|e| match self.refuse.contains(&e.event_id.as_str()) {
                    true => Err(anyhow::anyhow!("refused {}", e.event_id)),
                    false => Ok(()),
                })
                .collect()
        }
    }

    impl Outbox for Batches {
        async fn mark_published(&self, event: &OutboxEvent, _: OffsetDateTime) -> anyhow::Result<()> {
            self.marked.lock().unwrap().push(event.event_id.clone());
            Ok(())
        }

        async fn unpublished_earlier(&self, _: &OutboxEvent) -> anyhow::Result<Vec<OutboxEvent>> {
            Ok(Vec::new())
        }

        async fn unpublished_before(&self, _: OffsetDateTime, _: u32) -> anyhow::Result<Vec<OutboxEvent>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_batch_goes_out_in_rounds_of_one_event_per_order_and_only_what_was_taken_is_marked() {
        let publisher = Batches { refuse: vec!["b:ORDER_PAID", "c:ORDER_REFUNDED"], ..Batches::default() };
        let events = vec![
            event("a", EventType::OrderPaid),
            event("b", EventType::OrderPaid),
            event("a", EventType::OrderRefunded),
            event("c", EventType::OrderPaid),
            event("b", EventType::OrderRefunded),
            event("c", EventType::OrderRefunded),
        ];
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        let failed = relay(&publisher, &publisher, events, now).await;
        assert_eq!(
            *publisher.batches.lock().unwrap(),
            [vec!["a:ORDER_PAID", "b:ORDER_PAID", "c:ORDER_PAID"], vec!["a:ORDER_REFUNDED", "c:ORDER_REFUNDED"]],
            "two requests for six events; b's refund is not tried after its payment failed"
        );
        assert_eq!(failed, ["b:ORDER_PAID", "b:ORDER_REFUNDED", "c:ORDER_REFUNDED"]);
        let mut marked = publisher.marked.lock().unwrap().clone();
        marked.sort();
        assert_eq!(marked, ["a:ORDER_PAID", "a:ORDER_REFUNDED", "c:ORDER_PAID"]);
    }

    #[tokio::test]
    async fn a_refund_goes_out_after_its_payment_even_when_the_payment_was_left_to_the_sweeper() {
        let (_, paid) = event("a", EventType::OrderPaid);
        let recorder = Recorder { unpublished: std::sync::Mutex::new(vec![paid]), ..Recorder::default() };
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        let failed = relay(&recorder, &recorder, vec![event("a", EventType::OrderRefunded)], now).await;
        assert!(failed.is_empty());
        assert_eq!(*recorder.published.lock().unwrap(), ["a:ORDER_PAID", "a:ORDER_REFUNDED"]);
        assert!(recorder.unpublished.lock().unwrap().is_empty(), "the payment's event is marked published too");
    }

    #[test]
    fn an_event_id_names_its_type_and_a_refund_comes_after_a_payment() {
        assert_eq!(EventType::of_event("01J:ORDER_REFUNDED"), Some(EventType::OrderRefunded));
        assert_eq!(EventType::of_event("01J:SHIPPED"), None);
        assert_eq!(EventType::OrderRefunded.earlier(), [EventType::OrderPaid]);
        assert!(EventType::OrderPaid.earlier().is_empty());
    }
}
