//! Lambda `token-claims`: Cognito's pre-token-generation trigger (V2): puts the shop's user id into the
//! access and ID tokens.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    let claim = &rushcart::identity::ClaimNames::from_env().user;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(rushcart::triggers::token_claims(&deps.store, deps.clock.as_ref(), claim, event.payload).await?)
    }))
    .await
}
