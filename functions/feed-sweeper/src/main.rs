//! Lambda `feed-sweeper`: on a schedule, republishes outbox events still unpublished
//! after the grace period (a relay that failed, a stream record that expired).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use rushcart::adapters::feed_aws::AwsPublisher;
use rushcart::feed::{sweep, SWEEP_GRACE};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let publisher = &AwsPublisher::from_env().await?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let (published, failed) = sweep(publisher, &deps.store, deps.clock.now(), SWEEP_GRACE).await?;
        Ok::<_, Error>(json!({"republished": published, "failed": failed}))
    }))
    .await
}
