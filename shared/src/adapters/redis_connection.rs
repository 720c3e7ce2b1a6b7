//! One Redis connection for a process, made by a background task and never inside a
//! request: a request's timeout must not cancel a half-made connection (under a burst,
//! that made every waiter start over). Until it exists, callers get an error at once
//! and step aside; once made, the connection manager reconnects by itself. Every call
//! runs under a short timeout.
//!
//! The connect task cannot die quietly: each attempt runs as a task of its own, so an
//! attempt that panics (as rustls did when it found two crypto providers) is a failed
//! attempt like a refused one. Every failure is logged with its cause and counted
//! (`RedisConnect`, `Outcome=Failed`), and the task backs off and tries again; should
//! the task itself end without a connection, the next caller starts another.
//!
//! [`RedisEndpoint`] says where Redis is and, for `rediss://` to a server whose
//! certificate a private CA signed, which CA to trust (`REDIS_CA_FILE`).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// Where Redis is: its URL (`redis://` or `rediss://` for TLS) and, if set, the only CA
/// certificates a `rediss://` server's certificate may chain to. Without them the
/// public web roots are trusted, which is what ElastiCache's certificates need.
#[derive(Clone)]
pub struct RedisEndpoint {
    url: String,
    root_cert: Option<Vec<u8>>,
}

impl RedisEndpoint {
    pub fn new(url: impl Into<String>) -> RedisEndpoint {
        RedisEndpoint { url: url.into(), root_cert: None }
    }

    /// Trusts the CA certificates of the PEM file at `path` instead of the public roots
    /// (`REDIS_CA_FILE`: a Redis of one's own, behind a private CA).
    pub fn trusting_ca_file(self, path: impl AsRef<Path>) -> anyhow::Result<RedisEndpoint> {
        let path = path.as_ref();
        let pem = std::fs::read(path).with_context(|| format!("read the Redis CA file {}", path.display()))?;
        self.trusting_ca(pem).with_context(|| format!("the Redis CA file {}", path.display()))
    }

    /// Trusts the CA certificates in `pem` instead of the public roots.
    pub fn trusting_ca(mut self, pem: Vec<u8>) -> anyhow::Result<RedisEndpoint> {
        use rustls::pki_types::pem::PemObject as _;
        let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .context("read the PEM certificates")?;
        // An empty trust store would refuse every server, quietly, forever.
        anyhow::ensure!(!certificates.is_empty(), "holds no PEM certificate");
        self.root_cert = Some(pem);
        // A CA for a plain `redis://` URL would be ignored; say so now, not at connect.
        self.client()?;
        Ok(self)
    }

    /// A client for the endpoint (nothing is connected yet).
    fn client(&self) -> anyhow::Result<redis::Client> {
        let client = match &self.root_cert {
            None => redis::Client::open(self.url.as_str()),
            Some(root_cert) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert.clone()) },
            ),
        };
        client.context("the Redis URL (REDIS_URL, and REDIS_CA_FILE for rediss://)")
    }
}

impl From<&str> for RedisEndpoint {
    fn from(url: &str) -> RedisEndpoint {
        RedisEndpoint::new(url)
    }
}

impl From<String> for RedisEndpoint {
    fn from(url: String) -> RedisEndpoint {
        RedisEndpoint::new(url)
    }
}

impl From<&String> for RedisEndpoint {
    fn from(url: &String) -> RedisEndpoint {
        RedisEndpoint::new(url.as_str())
    }
}

pub struct RedisConnection {
    client: redis::Client,
    connector: Connector<ConnectionManager>,
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

/// The connect task's first wait after a failed attempt, doubled after each failure up
/// to [`MAX_RETRY_DELAY`]: a Redis that comes back is found within seconds, and one
/// that stays away costs a log line and a metric every few seconds, not a busy loop.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The longest one connect attempt may take (the client's own connect timeout and
/// retries take a few seconds at most), so that no server holds the task forever.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);

impl RedisConnection {
    /// A connection to `endpoint` whose calls each get `timeout`; nothing is connected
    /// until it is first needed.
    pub fn new(endpoint: impl Into<RedisEndpoint>, timeout: Duration) -> anyhow::Result<RedisConnection> {
        crate::install_crypto_provider();
        Ok(RedisConnection {
            client: endpoint.into().client()?,
            connector: Connector::new(FIRST_RETRY_DELAY, MAX_RETRY_DELAY, ATTEMPT_LIMIT),
            timeout,
        })
    }

    /// Starts connecting (once) and waits up to `within` for the connection.
    pub async fn ready(&self, within: Duration) -> bool {
        self.start_connecting();
        let deadline = tokio::time::Instant::now() + within;
        while self.connector.get().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.connector.get().is_some()
    }

    /// The connection, or an error at once while it is not made yet.
    pub fn connection(&self) -> anyhow::Result<ConnectionManager> {
        self.start_connecting();
        self.connector.get().cloned().ok_or_else(|| anyhow::anyhow!("not connected to Redis yet"))
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
        let client = self.client.clone();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2);
        // The host and port only: the URL may carry a password.
        let address = self.client.get_connection_info().addr().to_string();
        self.connector.start(address, move || {
            let client = client.clone();
            let config = config.clone();
            async move { Ok(client.get_connection_manager_with_config(config).await?) }
        });
    }
}

/// Makes one `T` (a connection) in a background task that retries with backoff until
/// it has one, and that no failure ends quietly: see the module's doc.
struct Connector<T> {
    made: Arc<OnceCell<T>>,
    /// Whether a connect task is alive; cleared by the task however it ends.
    running: Arc<AtomicBool>,
    first_delay: Duration,
    max_delay: Duration,
    attempt_limit: Duration,
}

/// Clears [`Connector::running`] when the connect task ends, by return, panic or its
/// runtime shutting down, so the next caller starts a new one.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<T: Send + Sync + 'static> Connector<T> {
    fn new(first_delay: Duration, max_delay: Duration, attempt_limit: Duration) -> Connector<T> {
        Connector {
            made: Arc::new(OnceCell::new()),
            running: Arc::new(AtomicBool::new(false)),
            first_delay,
            max_delay,
            attempt_limit,
        }
    }

    fn get(&self) -> Option<&T> {
        self.made.get()
    }

    /// Starts the connect task to `address` unless it has connected or is at it.
    fn start<A, F>(&self, address: String, attempt: A)
    where
        A: Fn() -> F + Send + 'static,
        F: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        if self.made.get().is_some() || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(self.running.clone());
        let made = self.made.clone();
        let (first_delay, max_delay, limit) = (self.first_delay, self.max_delay, self.attempt_limit);
        tokio::spawn(async move {
            let _running = running;
            let mut delay = first_delay;
            let mut failures: u64 = 0;
            loop {
                // A task of its own, so that a panic inside the driver is this attempt's
                // failure, with its message, and not the end of connecting.
                let mut attempt = tokio::spawn(attempt());
                let outcome = tokio::time::timeout(limit, &mut attempt).await;
                let failure = match outcome {
                    Ok(Ok(Ok(connection))) => {
                        let _ = made.set(connection);
                        crate::metrics::count(crate::metrics::REDIS_CONNECT, &["Connected"], 1);
                        tracing::info!(redis = %address, failures, "connected to Redis");
                        return;
                    }
                    Ok(Ok(Err(err))) => format!("{err:#}"),
                    Ok(Err(err)) => format!("the connect attempt died: {err}"),
                    Err(_) => {
                        attempt.abort();
                        format!("no connection within {limit:?}")
                    }
                };
                failures += 1;
                crate::metrics::count(crate::metrics::REDIS_CONNECT, &["Failed"], 1);
                tracing::warn!(
                    redis = %address,
                    failures,
                    error = %failure,
                    "cannot connect to Redis; its callers step aside; retrying in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(max_delay);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// Waits up to 5 s for `done`.
    async fn eventually(done: impl Fn() -> bool) -> bool {
        for _ in 0..1000 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        done()
    }

    fn quick<T: Send + Sync + 'static>() -> Connector<T> {
        Connector::new(Duration::from_millis(1), Duration::from_millis(4), Duration::from_millis(100))
    }

    #[tokio::test]
    async fn an_attempt_that_panics_hangs_or_fails_is_retried_until_one_connects() {
        let connector = quick::<u32>();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        connector.start("127.0.0.1:1".to_owned(), move || {
            let attempt = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match attempt {
                    1 => panic!("two crypto providers, and no way to choose"),
                    2 => std::future::pending().await,
                    3 => anyhow::bail!("connection refused"),
                    n => Ok(n),
                }
            }
        });
        assert!(eventually(|| connector.get().is_some()).await, "still not connected");
        assert_eq!(connector.get(), Some(&4));
        assert_eq!(attempts.load(Ordering::SeqCst), 4, "one attempt after each failure, none after success");
        assert!(eventually(|| !connector.running.load(Ordering::Acquire)).await, "the task ends once connected");
    }

    #[test]
    fn a_connect_task_that_ends_without_a_connection_is_started_again() {
        let connector = quick::<u32>();
        let dying = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        dying.block_on(async {
            connector.start("127.0.0.1:1".to_owned(), || async { anyhow::bail!("connection refused") });
            tokio::time::sleep(Duration::from_millis(10)).await;
        });
        assert!(connector.running.load(Ordering::Acquire), "still trying");
        // The task's runtime goes away with it (a test's runtime; a Lambda's frozen one).
        drop(dying);
        assert!(!connector.running.load(Ordering::Acquire), "a task that ended says so");

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            connector.start("127.0.0.1:1".to_owned(), || async { Ok(7) });
            assert!(eventually(|| connector.get().is_some()).await, "the next caller started a new task");
        });
        assert_eq!(connector.get(), Some(&7));
    }

    #[tokio::test]
    async fn one_connect_task_at_a_time() {
        let connector = quick::<u32>();
        let first = Arc::new(AtomicU32::new(0));
        let second = Arc::new(AtomicU32::new(0));
        let (counted, also_counted) = (first.clone(), second.clone());
        connector.start("127.0.0.1:1".to_owned(), move || {
            let attempt = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if attempt < 3 {
                    anyhow::bail!("connection refused")
                }
                Ok(attempt)
            }
        });
        connector.start("127.0.0.1:1".to_owned(), move || {
            also_counted.fetch_add(1, Ordering::SeqCst);
            async { Ok(0) }
        });
        assert!(eventually(|| connector.get().is_some()).await);
        assert_eq!(connector.get(), Some(&3));
        assert_eq!(second.load(Ordering::SeqCst), 0, "a second caller waits for the first task");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let url = "rediss://127.0.0.1:6380";
        let empty = RedisEndpoint::new(url).trusting_ca(Vec::new()).err().expect("refused");
        assert!(format!("{empty:#}").contains("no PEM certificate"), "{empty:#}");
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec();
        let refused = RedisEndpoint::new(url).trusting_ca(key).err().expect("refused");
        assert!(format!("{refused:#}").contains("no PEM certificate"), "{refused:#}");
        let missing = RedisEndpoint::new(url).trusting_ca_file("/nonexistent/ca.pem").err().expect("refused");
        assert!(format!("{missing:#}").contains("/nonexistent/ca.pem"), "names the file: {missing:#}");
    }
}
