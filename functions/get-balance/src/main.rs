//! Lambda `get-balance`: builds its clients once, then serves each API Gateway request
//! with `rushcart::http::balance::get_balance`.

use lambda_http::{service_fn, Error, Request};
use rushcart::http::{balance, instrumented};

#[tokio::main]
async fn main() -> Result<(), Error> {
    rushcart::telemetry::init();
    let deps = &rushcart::Deps::from_env().await?;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(instrumented("get-balance", request, |request| balance::get_balance(request, deps)).await)
    }))
    .await
}
