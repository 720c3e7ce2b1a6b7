//! One Redis connection for a process, made by a background task and never inside a
//! request: a request's timeout must not cancel a half-made connection (under a burst,
//! that made every waiter start over). Until it exists, callers get an error at once
//! and step aside; once made, the connection manager reconnects by itself. Every call
//! runs under a short timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

pub struct RedisConnection {
    client: redis::Client,
    connection: Arc<OnceCell<ConnectionManager>>,
    connecting: AtomicBool,
    timeout: Duration,
}

/// How long one Redis call may take before the caller goes on without Redis
/// (`REDIS_TIMEOUT_MS`, default 250 ms): Redis is an accelerator, never worth a slow
/// answer.
pub fn call_timeout_from_env() -> anyhow::Result<Duration> {
    match std::env::var("REDIS_TIMEOUT_MS") {
        Err(_) => Ok(DEFAULT_CALL_TIMEOUT),
        Ok(text) => {
            let millis: u64 =
                text.parse().map_err(|_| anyhow::anyhow!("REDIS_TIMEOUT_MS must be milliseconds, not {text:?}"))?;
            Ok(Duration::from_millis(millis.max(1)))
        }
    }
}

pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(250);

impl RedisConnection {
    /// A connection to `url` whose calls each get `timeout`; nothing is connected until
    /// it is first needed.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<RedisConnection> {
        crate::install_crypto_provider();
        Ok(RedisConnection {
            client: redis::Client::open(url)?,
            connection: Arc::new(OnceCell::new()),
            connecting: AtomicBool::new(false),
            timeout,
        })
    }

    /// Starts connecting (once) and waits up to `within` for the connection.
    pub async fn ready(&self, within: Duration) -> bool {
        self.start_connecting();
        let deadline = tokio::time::Instant::now() + within;
        while self.connection.get().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.connection.get().is_some()
    }

    /// The connection, or an error at once while it is not made yet.
    pub fn connection(&self) -> anyhow::Result<ConnectionManager> {
        self.start_connecting();
        self.connection.get().cloned().ok_or_else(|| anyhow::anyhow!("not connected to Redis yet"))
    }

    /// Runs `call` with the timeout; `None` (logged as `what`) when Redis did not answer.
    pub async fn within<T>(&self, what: &str, call: impl std::future::Future<Output = anyhow::Result<T>>) -> Option<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "{what} failed; going on without Redis");
                None
            }
            Err(_) => {
                tracing::warn!("{what} timed out; going on without Redis");
                None
            }
        }
    }

    fn start_connecting(&self) {
        if self.connection.get().is_some() || self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.client.clone();
        let cell = self.connection.clone();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(50);
            loop {
                match client.get_connection_manager_with_config(config.clone()).await {
                    Ok(connection) => {
                        let _ = cell.set(connection);
                        tracing::info!("connected to Redis");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot reach Redis; retrying in {delay:?}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}
