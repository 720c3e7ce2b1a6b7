//! The recorded DynamoDB-stream and SQS events from `events/` parse into what the relay
//! and the consumer act on.

use rushcart::feed::{events_from_stream_event, messages_from_sqs_event};

fn event(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn the_recorded_stream_event_yields_its_outbox_event_keyed_by_sequence_number() {
    let events = events_from_stream_event(&event("feed-relay"));
    assert_eq!(events.len(), 1);
    let (sequence, outbox) = &events[0];
    assert_eq!(sequence, "111");
    assert_eq!(outbox.order_id, "01JDQ3Z6Y0000000000000XYZ1");
    let payload: serde_json::Value = serde_json::from_str(&outbox.payload).unwrap();
    assert_eq!(payload["type"], "ORDER_PAID");
}

#[test]
fn the_recorded_sqs_event_yields_its_message_id_and_body() {
    let messages = messages_from_sqs_event(&event("feed-consumer"));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, "059f36b4-87a3-44ab-83d2-661975830a7d");
    let body: serde_json::Value = serde_json::from_str(&messages[0].1).unwrap();
    assert_eq!(body["orderId"], "01JDQ3Z6Y0000000000000XYZ1");
}
