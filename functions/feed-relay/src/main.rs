//! Lambda `feed-relay`: the outbox table's DynamoDB stream triggers it; each new event
//! goes to SQS and Kinesis and is marked published. Failed records are reported as
//! batch item failures (the stream retries them, bisecting); the sweeper catches any
//! that expire.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::AwsPublisher;
use rushcart::feed::{batch_response, events_from_stream_event, relay};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let publisher = &AwsPublisher::from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let events = events_from_stream_event(&event.payload);
        let failed = relay(publisher, &deps.store, events, deps.clock.now()).await;
        Ok::<_, Error>(batch_response(&failed))
    }))
    .await
}
