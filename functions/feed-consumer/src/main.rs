//! Lambda `feed-consumer`: SQS triggers it; each message is posted to the data platform
//! (`DATA_PLATFORM_URL`) once per order. A failed post fails only its own message
//! (partial batch response), which SQS retries and, past the queue's receive limit,
//! moves to the dead-letter queue.

use anyhow::Context as _;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::HttpPlatform;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let url = std::env::var("DATA_PLATFORM_URL").context("DATA_PLATFORM_URL must be the data platform's endpoint")?;
    let platform = &HttpPlatform::new(url)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(
            rushcart::triggers::consume_sqs_batch(&deps.store, platform, deps.clock.as_ref(), &event.payload).await,
        )
    }))
    .await
}
