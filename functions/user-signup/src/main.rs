//! Lambda `user-signup`: Cognito's post-confirmation trigger: a confirmed user gets the next shop user id
//! and an empty balance.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(rushcart::triggers::sign_up_confirmed(&deps.store, deps.clock.as_ref(), event.payload).await?)
    }))
    .await
}
