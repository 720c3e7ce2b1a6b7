//! Lambda `balance-history`: builds its clients once, then serves each API Gateway request
//! with `rushcart::http::balance::history`.

use lambda_http::{service_fn, Error, Request};
use rushcart::http::{balance, instrumented};

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(instrumented("balance-history", request, |request| balance::history(request, deps)).await)
    }))
    .await
}
