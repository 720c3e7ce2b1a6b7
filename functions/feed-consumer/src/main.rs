//! Lambda `feed-consumer`: SQS triggers it; each message is posted to the data platform
//! (`DATA_PLATFORM_URL`) once per order. A failed post fails only its own message
//! (partial batch response), which SQS retries and, past the queue's receive limit,
//! moves to the dead-letter queue.

use anyhow::Context as _;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::HttpPlatform;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let url = std::env::var("DATA_PLATFORM_URL").context("DATA_PLATFORM_URL must be the data platform's endpoint")?;
    let platform = &HttpPlatform::new(url)?;
    // An SQS event that does not deserialize fails the invocation before this runs, and
    // every message of the batch goes back to the queue. Acceptable: Lambda writes the
    // event, and every field of a record is optional in `SqsEvent`, so a message's
    // content (its body is a string whatever it holds) cannot do it; only a change of
    // Lambda's format could, and then the messages reach the dead-letter queue past the
    // receive limit (alarmed), to be redriven once the function reads the new format.
    // A body that is no event fails its own message (`triggers::consume_sqs_batch`).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            rushcart::triggers::consume_sqs_batch(&deps.store, platform, deps.clock.as_ref(), event.payload).await,
        )
    }))
    .await
}
