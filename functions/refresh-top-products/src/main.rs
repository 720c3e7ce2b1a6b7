//! Lambda `refresh-top-products`: on each EventBridge schedule event, recomputes the
//! top 5 from DynamoDB and overwrites the Redis cache.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let cache = deps.top_cache.as_deref().ok_or("the refresher needs the top-5 cache: set REDIS_URL")?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(rushcart::triggers::refresh_top_on_schedule(&deps.store, cache, deps.clock.as_ref()).await?)
    }))
    .await
}
