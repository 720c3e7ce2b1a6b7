//! `rushcart-local-api`: serves every HTTP route on 127.0.0.1:$PORT (default 3000)
//! against the tables named in the environment, until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use rushcart::adapters::dynamodb::DynamoStore;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rushcart::telemetry::init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .map(|p| p.parse())
        .transpose()
        .context("PORT must be a port number")?
        .unwrap_or(3000);
    // The same client the functions build, plus the per-route DynamoDB call counter.
    let config = aws_sdk_dynamodb::config::Builder::from(rushcart::adapters::aws_sdk_config().await)
        .interceptor(rushcart_local_api::calls::CallCounter)
        .build();
    let store = DynamoStore::from_env_with(aws_sdk_dynamodb::Client::from_conf(config))?;
    let deps = Arc::new(rushcart::Deps::from_store(store).await?);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("bind 127.0.0.1:{port}"))?;
    tracing::info!("rushcart local API ready on http://127.0.0.1:{port}");
    println!("rushcart local API ready on http://127.0.0.1:{port}");
    tokio::spawn(rushcart_local_api::run_refresher(deps.clone(), rushcart::top_refresh_period()));
    // The feed runs where its queue is configured (make run provisions it); FEED=off
    // serves the API alone.
    if std::env::var("FEED").as_deref() != Ok("off") && std::env::var_os("FEED_QUEUE_URL").is_some() {
        rushcart_local_api::feed::start(deps.clone()).await?;
    }
    rushcart_local_api::serve(listener, deps, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
