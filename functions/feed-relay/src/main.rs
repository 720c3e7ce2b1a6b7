//! Lambda `feed-relay`: the outbox table's DynamoDB stream triggers it; each new event
//! goes to SQS and Kinesis and is marked published. Failed records are reported as
//! batch item failures (the stream retries them, bisecting); the sweeper catches any
//! that expire.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::AwsPublisher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let publisher = &AwsPublisher::from_env().await?;
    // A stream event that does not deserialize fails the invocation before this runs,
    // and the mapping retries the whole batch. Acceptable: Lambda writes the event, not
    // a client, so only a change of its format could do it; the mapping then bisects
    // the batch down to the offending record and, past MaximumRetryAttempts, skips it,
    // leaving its outbox event unpublished for the sweeper. Nothing is lost, and the
    // function's errors alarm. A readable event with a record the relay cannot use
    // fails that record alone (`triggers::relay_stream_batch`).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, Error>(
            rushcart::triggers::relay_stream_batch(publisher, &deps.store, deps.clock.as_ref(), event.payload).await,
        )
    }))
    .await
}
