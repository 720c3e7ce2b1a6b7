//! Lambda `refresh-top-products`: on each EventBridge schedule event, recomputes the
//! top 5 from DynamoDB and overwrites the Redis cache.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let cache = deps.top_cache.as_deref().ok_or("the refresher needs the top-5 cache: set REDIS_URL")?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let value = rushcart::top::refresh(&deps.store, cache, deps.clock.as_ref()).await?;
        tracing::info!(items = value.items.len(), "top 5 refreshed");
        Ok::<_, Error>(json!({"items": value.items.len(), "generatedAt": value.generated_at}))
    }))
    .await
}
