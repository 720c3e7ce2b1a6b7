//! The coupon admission gate on Redis: one Lua script, atomic on the server, keeps per
//! coupon the set of users holding or being issued a copy and a sold-out flag.
//!
//! Keys (the `{c<id>}` hash tag keeps a coupon's keys on one cluster slot):
//! - `<namespace>:gate:{c<id>}:holders` — set of user ids, expires a day after the end
//! - `<namespace>:gate:{c<id>}:soldout` — set once DynamoDB has said sold out
//!
//! Every call has a short timeout; a gate that cannot answer steps aside
//! ([`Admission::Bypassed`]) and DynamoDB alone decides. Bypasses are counted and
//! logged. The connection is made by a background task, never inside a request: a
//! request's timeout must not cancel a half-made connection (under a burst that made
//! every waiter start over). Until it exists, requests bypass the gate at once; once
//! made, the connection manager reconnects by itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::coupons::{Admission, AdmissionGate, Coupon, GateFuture};
use crate::ids::UserId;

/// KEYS[1] holders, KEYS[2] sold-out flag; ARGV[1] user, ARGV[2] total, ARGV[3] TTL (s).
const ADMIT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 'SOLD_OUT' end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'HOLDS' end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 'SOLD_OUT' end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 'ADMITTED'
";

pub struct RedisGate {
    client: redis::Client,
    connection: Arc<OnceCell<ConnectionManager>>,
    connecting: AtomicBool,
    namespace: String,
    timeout: Duration,
    script: redis::Script,
    bypassed: AtomicU64,
}

impl RedisGate {
    /// A gate on `url` (no connection is made until the first request, so a Redis that
    /// is down at start-up never stops the function from starting).
    pub fn new(url: &str, namespace: impl Into<String>) -> anyhow::Result<RedisGate> {
        Ok(RedisGate {
            client: redis::Client::open(url)?,
            connection: Arc::new(OnceCell::new()),
            connecting: AtomicBool::new(false),
            namespace: namespace.into(),
            timeout: Duration::from_millis(250),
            script: redis::Script::new(ADMIT),
            bypassed: AtomicU64::new(0),
        })
    }

    /// How many requests the gate could not answer.
    pub fn bypassed(&self) -> u64 {
        self.bypassed.load(Ordering::Relaxed)
    }

    fn keys(&self, coupon: &Coupon) -> (String, String) {
        let base = format!("{}:gate:{{c{}}}", self.namespace, coupon.id);
        (format!("{base}:holders"), format!("{base}:soldout"))
    }

    /// Starts connecting (once) and waits up to `within` for the connection; true when
    /// the gate can answer. Functions call it at start-up so the first rush finds the
    /// connection made.
    pub async fn ready(&self, within: Duration) -> bool {
        self.start_connecting();
        let deadline = tokio::time::Instant::now() + within;
        while self.connection.get().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.connection.get().is_some()
    }

    /// Spawns the task that connects, retrying with backoff until it succeeds.
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
                        tracing::info!("coupon gate connected to Redis");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "coupon gate cannot reach Redis; retrying in {delay:?}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        self.start_connecting();
        self.connection.get().cloned().ok_or_else(|| anyhow::anyhow!("not connected to Redis yet"))
    }

    /// Runs `call` with the timeout; `None` (logged) when Redis did not answer.
    async fn within<T>(&self, what: &str, call: impl std::future::Future<Output = anyhow::Result<T>>) -> Option<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "coupon gate: {what} failed; DynamoDB decides alone");
                None
            }
            Err(_) => {
                tracing::warn!("coupon gate: {what} timed out; DynamoDB decides alone");
                None
            }
        }
    }
}

impl AdmissionGate for RedisGate {
    fn admit<'a>(&'a self, coupon: &'a Coupon, user: UserId) -> GateFuture<'a, Admission> {
        Box::pin(async move {
            let (holders, sold_out) = self.keys(coupon);
            let ttl = (coupon.ends_at - time::OffsetDateTime::now_utc()).whole_seconds().max(0) + 86_400;
            let answer = self
                .within("admit", async {
                    let mut connection = self.connection().await?;
                    let answer: String = self
                        .script
                        .key(&holders)
                        .key(&sold_out)
                        .arg(user.get())
                        .arg(coupon.total)
                        .arg(ttl)
                        .invoke_async(&mut connection)
                        .await?;
                    Ok(answer)
                })
                .await;
            match answer.as_deref() {
                Some("ADMITTED") => Admission::Admitted,
                Some("SOLD_OUT") => Admission::SoldOut,
                Some("HOLDS") => Admission::AlreadyHolds,
                other => {
                    if let Some(unexpected) = other {
                        tracing::warn!(answer = unexpected, "coupon gate: unexpected answer");
                    }
                    self.bypassed.fetch_add(1, Ordering::Relaxed);
                    Admission::Bypassed
                }
            }
        })
    }

    fn release<'a>(&'a self, coupon: &'a Coupon, user: UserId) -> GateFuture<'a, ()> {
        Box::pin(async move {
            let (holders, _) = self.keys(coupon);
            self.within("release", async {
                let mut connection = self.connection().await?;
                let _: i64 = redis::cmd("SREM").arg(&holders).arg(user.get()).query_async(&mut connection).await?;
                Ok(())
            })
            .await;
        })
    }

    fn mark_sold_out<'a>(&'a self, coupon: &'a Coupon) -> GateFuture<'a, ()> {
        Box::pin(async move {
            let (_, sold_out) = self.keys(coupon);
            let ttl = (coupon.ends_at - time::OffsetDateTime::now_utc()).whole_seconds().max(0) + 86_400;
            self.within("mark sold out", async {
                let mut connection = self.connection().await?;
                let _: () =
                    redis::cmd("SET").arg(&sold_out).arg(1).arg("EX").arg(ttl).query_async(&mut connection).await?;
                Ok(())
            })
            .await;
        })
    }
}
