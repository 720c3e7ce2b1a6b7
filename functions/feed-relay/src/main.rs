//! Lambda `feed-relay`: the outbox table's DynamoDB stream triggers it; each new event
//! goes to SQS and Kinesis and is marked published. Failed records are reported as
//! batch item failures (the stream retries them, bisecting); the sweeper catches any
//! that expire.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::AwsPublisher;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let publisher = &AwsPublisher::from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(
            rushcart::triggers::relay_stream_batch(publisher, &deps.store, deps.clock.as_ref(), &event.payload).await,
        )
    }))
    .await
}
