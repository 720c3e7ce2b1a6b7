//! The feed in `make run`: what AWS's event sources and schedule do, as tasks — the
//! relay polls the outbox stream, the sweeper runs every minute, the consumer polls the
//! queue. Without `DATA_PLATFORM_URL`, a small receiver stands in for the platform and
//! logs what arrives with its delivery lag (paid → received).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rushcart::adapters::dynamodb::DynamoStore;
use rushcart::adapters::feed_aws::{clients_from_env, AwsPublisher, FeedChannels, HttpPlatform};
use rushcart::feed::{sweep, SWEEP_GRACE};
use rushcart::Deps;
use rushcart_testkit::channels::streams_client_from_env;
use rushcart_testkit::feed::{consume_once, relay_once, StreamReader};

/// Starts the relay, sweeper and consumer tasks (and the stand-in receiver when
/// `DATA_PLATFORM_URL` is unset), with clients and channels from the environment.
pub async fn start(deps: Arc<Deps<DynamoStore>>) -> anyhow::Result<()> {
    let channels = FeedChannels::from_env()?;
    let (sqs, kinesis) = clients_from_env().await;
    let url = match std::env::var("DATA_PLATFORM_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_receiver().await?,
    };
    let mut reader = StreamReader::new(deps.store.client(), streams_client_from_env().await, deps.store.outbox_table())
        .await
        .context("open the outbox stream")?;
    // FEED_CHECKPOINT: a file the relay keeps its place on the stream in, so that a feed
    // killed and started again (make soak) goes on where it was.
    if let Some(path) = std::env::var_os("FEED_CHECKPOINT").filter(|p| !p.is_empty()) {
        reader = reader.checkpointed(path.into())?;
    }
    let feed = Feed {
        publisher: Arc::new(AwsPublisher { sqs, kinesis, channels }),
        reader,
        platform: HttpPlatform::new(&url)?,
        retry_after: RETRY_AFTER,
    };
    tracing::info!(%url, "feed: delivering to the data platform");
    run(deps, feed);
    Ok(())
}

/// How long a message the consumer failed stays invisible before it is received again.
/// On AWS that is the queue's visibility timeout (60 s in template.yaml); locally it is
/// shorter so a run recovers sooner, but long enough that the queue's five receives
/// (75 s) outlast a delivery claim left by a consumer that died mid-delivery (its lease
/// is 30 s: until then every receive finds the event "being delivered") and an outage
/// of a dependency of a minute. At 2 s, five receives came within 10 s and the soak
/// found events of a killed consumer in the dead-letter queue.
pub const RETRY_AFTER: Duration = Duration::from_secs(15);

/// What the feed's tasks work with.
pub struct Feed {
    /// SQS and Kinesis, and the channels on them; the consumer receives from its queue.
    pub publisher: Arc<AwsPublisher>,
    pub reader: StreamReader,
    pub platform: HttpPlatform,
    /// How long a message the consumer failed stays invisible before it is tried again.
    pub retry_after: Duration,
}

/// Runs what AWS's event sources and schedule do for the feed: the relay over the
/// outbox stream, the sweeper every minute, the consumer over the queue. The tasks run
/// until aborted.
pub fn run(deps: Arc<Deps<DynamoStore>>, feed: Feed) -> Vec<tokio::task::JoinHandle<()>> {
    let Feed { publisher, mut reader, platform, retry_after } = feed;
    let (relay_deps, relay_publisher) = (deps.clone(), publisher.clone());
    let relaying = tokio::spawn(async move {
        loop {
            match relay_once(&mut reader, relay_publisher.as_ref(), &relay_deps.store, relay_deps.clock.as_ref()).await
            {
                Ok(0) => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "feed relay: reading the stream failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let (sweep_deps, sweep_publisher) = (deps.clone(), publisher.clone());
    let sweeping = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticks.tick().await;
            let now = sweep_deps.clock.now();
            if let Err(err) = sweep(sweep_publisher.as_ref(), &sweep_deps.store, now, SWEEP_GRACE).await {
                tracing::warn!(error = %format!("{err:#}"), "feed sweeper failed");
            }
        }
    });
    let consuming = tokio::spawn(async move {
        loop {
            let consumed = consume_once(
                &publisher.sqs,
                &publisher.channels.queue_url,
                &deps.store,
                &platform,
                deps.clock.as_ref(),
                retry_after,
            )
            .await;
            if let Err(err) = consumed {
                tracing::warn!(error = %format!("{err:#}"), "feed consumer: receiving failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    vec![relaying, sweeping, consuming]
}

/// A stand-in data platform on a free port: logs each event and its lag.
async fn start_receiver() -> anyhow::Result<String> {
    let port: u16 = std::env::var("RECEIVER_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    // Lag from the change the event reports: its refund, or else its payment.
                    let changed = event["refundedAt"].as_str().or_else(|| event["paidAt"].as_str()).and_then(|t| {
                        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                    });
                    let lag_ms = changed.map(|at| (time::OffsetDateTime::now_utc() - at).whole_milliseconds());
                    tracing::info!(
                        event = event["type"].as_str().unwrap_or("?"),
                        order = event["orderId"].as_str().unwrap_or("?"),
                        lag_ms,
                        "data platform received an event"
                    );
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(url)
}
