//! Lambda `feed-sweeper`: on a schedule, republishes outbox events still unpublished
//! after the grace period (a relay that failed, a stream record that expired).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::AwsPublisher;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let publisher = &AwsPublisher::from_env().await?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(rushcart::triggers::sweep_on_schedule(publisher, &deps.store, deps.clock.as_ref()).await?)
    }))
    .await
}
