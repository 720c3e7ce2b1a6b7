//! `rushcart-local-api`: serves every HTTP route on 127.0.0.1:$PORT (default 3000)
//! against the tables named in the environment, until SIGINT or SIGTERM.
//!
//! Every route that is not public needs a token from the local issuer (as API Gateway's
//! authorizer requires one from Cognito), unless `AUTH=off`: the baseline's
//! trust-the-client mode, where the client names the user.
//!
//! `rushcart-local-api feed` runs the data-platform feed alone (the relay, the sweeper
//! and the consumer, as `make run` runs them inside the API), so that it can be killed
//! and started again apart from the API (`make soak`; the API then runs with `FEED=off`).

use std::sync::Arc;

use anyhow::Context as _;
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::identity::{ClaimNames, Identity};
use rushcart::ids::UserId;
use rushcart_local_api::issuer::LocalIssuer;
use rushcart_local_api::Settings;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rushcart::telemetry::init();
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("feed") => return feed_alone().await,
        Some(other) => anyhow::bail!("rushcart-local-api [feed]: unknown argument {other:?}"),
    }
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
    let mut deps = rushcart::Deps::from_store(store).await?;
    let issuer = match std::env::var("AUTH").as_deref() {
        Ok("off") => {
            deps.identity = Identity::TrustClient;
            None
        }
        Ok("on") | Ok("") | Err(_) => {
            // LOCAL_ISSUER_KEY: a PEM file the key is kept in, so that a local API
            // killed and started again (make soak) still verifies the tokens it minted.
            let name = format!("http://127.0.0.1:{port}/_local");
            let issuer = match std::env::var_os("LOCAL_ISSUER_KEY").filter(|path| !path.is_empty()) {
                Some(path) => LocalIssuer::from_file(name, std::path::Path::new(&path))?,
                None => LocalIssuer::generate(name)?,
            };
            deps.identity = Identity::Claims(ClaimNames::default());
            Some(Arc::new(issuer))
        }
        Ok(other) => anyhow::bail!("AUTH must be on or off, not {other:?}"),
    };
    let deps = Arc::new(deps);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("bind 127.0.0.1:{port}"))?;
    tracing::info!("rushcart local API ready on http://127.0.0.1:{port}");
    println!("rushcart local API ready on http://127.0.0.1:{port}");
    match &issuer {
        Some(issuer) => {
            let token = issuer.mint(UserId::new(1)?, false)?;
            println!("sign-in is on: every route but the catalogue, the top 5 and coupon terms needs a token");
            println!("  a token for user 1 (an hour): {token}");
            println!("  more: POST /_local/token {{\"userId\": 42}} (add \"admin\": true for an operator)");
        }
        None => {
            println!("!!! AUTH=off: NO SIGN-IN. The client names the user; anyone may act as anyone. !!!");
            println!("!!! This is the baseline's trust-the-client mode, for its load client only.       !!!");
            tracing::warn!("AUTH=off: requests are not authenticated");
        }
    }
    tokio::spawn(rushcart_local_api::run_refresher(deps.clone(), rushcart::top_refresh_period()));
    // The feed runs where its queue is configured (make run provisions it); FEED=off
    // serves the API alone.
    if std::env::var("FEED").as_deref() != Ok("off") && std::env::var_os("FEED_QUEUE_URL").is_some() {
        rushcart_local_api::feed::start(deps.clone()).await?;
    }
    let swagger_ui = std::env::var_os("SWAGGER_UI_DIR").map(std::path::PathBuf::from);
    println!("the API described: http://127.0.0.1:{port}/docs (Swagger UI), http://127.0.0.1:{port}/openapi.json");
    let cors = rushcart_local_api::cors::Cors::from_env().context("CORS_ALLOWED_ORIGINS")?;
    let throttles = throttles_from_env()?;
    let capacity_metrics = std::env::var("CAPACITY_METRICS_URL").ok().filter(|url| !url.is_empty());
    let flood = flood_from_env()?;
    let cors = Arc::new(cors);
    let settings = Settings { issuer, swagger_ui, cors, throttles, capacity_metrics, flood, ..Settings::default() };
    rushcart_local_api::serve(listener, deps, settings, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// The feed's tasks alone, with the tables, queues and stream of the environment, until
/// SIGINT or SIGTERM.
async fn feed_alone() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("FEED_QUEUE_URL").is_some(),
        "the feed needs FEED_QUEUE_URL (rushcart-admin provision --feed-env)"
    );
    let deps = Arc::new(rushcart::Deps::from_store(DynamoStore::from_env().await?).await?);
    rushcart_local_api::feed::start(deps).await?;
    tracing::info!("rushcart feed running: relay, sweeper, consumer");
    println!("rushcart feed running: relay, sweeper, consumer");
    shutdown_signal().await;
    tracing::info!("feed stopped");
    Ok(())
}

/// The edge's flood rules with `FLOOD=on` (off by default, as `FloodProtection` is in
/// the template), their limits from template.yaml's parameters.
fn flood_from_env() -> anyhow::Result<Option<Arc<rushcart_local_api::flood::FloodRules>>> {
    use rushcart_local_api::flood::{FloodLimits, FloodRules};
    match std::env::var("FLOOD").as_deref() {
        Ok("off") | Ok("") | Err(_) => return Ok(None),
        Ok("on") => {}
        Ok(other) => anyhow::bail!("FLOOD must be on or off, not {other:?}"),
    }
    let path = std::env::var("RUSHCART_TEMPLATE").unwrap_or_else(|_| "template.yaml".to_owned());
    let template = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let limits = FloodLimits::from_template(&template, |name| std::env::var(name).ok())?;
    println!(
        "FLOOD=on: per {} s, {} requests without a token per client address, {} per token, {} of any kind per address; then 403",
        limits.window.as_secs(),
        limits.anonymous,
        limits.per_token,
        limits.per_address
    );
    Ok(Some(Arc::new(FloodRules::new(limits))))
}

/// The route throttles of template.yaml (`RUSHCART_TEMPLATE`, default ./template.yaml),
/// the default route's limits overridden by `THROTTLE_RATE` and `THROTTLE_BURST`;
/// none with `THROTTLE=off`.
fn throttles_from_env() -> anyhow::Result<Option<Arc<rushcart_local_api::throttle::Throttles>>> {
    match std::env::var("THROTTLE").as_deref() {
        Ok("off") => {
            println!("THROTTLE=off: no route throttles (API Gateway's 429s will not happen here)");
            return Ok(None);
        }
        Ok("on") | Ok("") | Err(_) => {}
        Ok(other) => anyhow::bail!("THROTTLE must be on or off, not {other:?}"),
    }
    let number = |name: &str| -> anyhow::Result<Option<f64>> {
        std::env::var(name).ok().map(|v| v.parse().with_context(|| format!("{name} must be a number"))).transpose()
    };
    let path = std::env::var("RUSHCART_TEMPLATE").unwrap_or_else(|_| "template.yaml".to_owned());
    let template = std::fs::read_to_string(&path).with_context(|| format!("read {path} for its route throttles"))?;
    let throttles = rushcart_local_api::throttle::Throttles::from_template(
        &template,
        number("THROTTLE_RATE")?,
        number("THROTTLE_BURST")?,
    )?;
    let default = throttles.default_limit();
    println!(
        "route throttles from {path}: {}/s, burst {} per route (THROTTLE=off lifts them)",
        default.rate, default.burst
    );
    Ok(Some(Arc::new(throttles)))
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
