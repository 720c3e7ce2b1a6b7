//! The recorded DynamoDB-stream and SQS events from `events/` deserialize into the
//! `aws_lambda_events` types the functions take, and those into what the relay and the
//! consumer act on.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use rushcart::feed::{events_from_stream_event, messages_from_sqs_event};

fn event(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `event` as the Lambda runtime hands it to the function: deserialized into `T`.
fn typed<T: serde::de::DeserializeOwned>(event: serde_json::Value) -> T {
    serde_json::from_value(event).expect("the event deserializes as the runtime does it")
}

#[test]
fn the_recorded_stream_event_yields_its_outbox_event_keyed_by_sequence_number() {
    let batch = events_from_stream_event(typed(event("feed-relay")));
    assert!(batch.unreadable.is_empty());
    let events = batch.records;
    assert_eq!(events.len(), 1);
    let (sequence, outbox) = &events[0];
    assert_eq!(sequence, "111");
    assert_eq!(outbox.order_id, "01JDQ3Z6Y0000000000000XYZ1");
    let payload: serde_json::Value = serde_json::from_str(&outbox.payload).unwrap();
    assert_eq!(payload["type"], "ORDER_PAID");
}

#[test]
fn the_recorded_sqs_event_yields_its_message_id_and_body() {
    let batch = messages_from_sqs_event(typed(event("feed-consumer")));
    assert!(batch.unreadable.is_empty());
    let messages = batch.records;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, "059f36b4-87a3-44ab-83d2-661975830a7d");
    let body: serde_json::Value = serde_json::from_str(&messages[0].1).unwrap();
    assert_eq!(body["orderId"], "01JDQ3Z6Y0000000000000XYZ1");
}

/// A record that cannot be read is a batch item failure, never silently dropped: the
/// stream retries it, SQS moves it to the dead-letter queue past its receive limit.
#[test]
fn unreadable_records_are_named_as_failed_and_the_rest_go_through() {
    let mut stream = event("feed-relay");
    let mut broken = stream["Records"][0].clone();
    broken["dynamodb"]["SequenceNumber"] = "112".into();
    broken["dynamodb"]["NewImage"]["payload"] = serde_json::json!({"N": "1"});
    let mut modify = stream["Records"][0].clone();
    modify["eventName"] = "MODIFY".into();
    modify["dynamodb"]["SequenceNumber"] = "113".into();
    stream["Records"].as_array_mut().unwrap().extend([broken, modify]);
    let batch = events_from_stream_event(typed::<StreamEvent>(stream));
    assert_eq!(batch.records.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["111"]);
    assert_eq!(batch.unreadable, ["112"], "a MODIFY is no event; a broken INSERT is a failure");

    let mut sqs = event("feed-consumer");
    let mut bodiless = sqs["Records"][0].clone();
    bodiless["messageId"] = "m-2".into();
    bodiless.as_object_mut().unwrap().remove("body");
    sqs["Records"].as_array_mut().unwrap().push(bodiless);
    let batch = messages_from_sqs_event(typed::<SqsEvent>(sqs));
    assert_eq!((batch.records.len(), batch.unreadable), (1, vec!["m-2".to_owned()]));
}
