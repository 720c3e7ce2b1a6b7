//! The coupon admission gate on Redis: one Lua script, atomic on the server, keeps per
//! coupon the set of users holding or being issued a copy and a sold-out flag.
//!
//! Keys (the `{c<id>}` hash tag keeps a coupon's keys on one cluster slot):
//! - `<namespace>:gate:{c<id>}:holders` — set of user ids, expires a day after the end
//! - `<namespace>:gate:{c<id>}:soldout` — set once DynamoDB has said sold out
//!
//! Every call has a short timeout; a gate that cannot answer steps aside
//! ([`Admission::Bypassed`]) and DynamoDB alone decides. Bypasses are counted and
//! logged. The connection comes from [`RedisConnection`]: until it exists, requests
//! bypass the gate at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::redis_connection::{RedisConnection, RedisEndpoint, DEFAULT_CALL_TIMEOUT};

use crate::coupons::{Admission, AdmissionGate, Coupon, GateFuture};
use crate::ids::UserId;

/// KEYS[1] holders, KEYS[2] sold-out flag; ARGV[1] user, ARGV[2] total, ARGV[3] TTL (s).
const ADMIT: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'HOLDS' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'SOLD_OUT' end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 'SOLD_OUT' end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 'ADMITTED'
";

pub struct RedisGate {
    redis: RedisConnection,
    namespace: String,
    script: redis::Script,
    bypassed: AtomicU64,
}

impl RedisGate {
    /// A gate on `endpoint` whose Redis calls each get [`DEFAULT_CALL_TIMEOUT`] (no
    /// connection is made until the first request, so a Redis that is down at start-up
    /// never stops the function from starting).
    pub fn new(endpoint: impl Into<RedisEndpoint>, namespace: impl Into<String>) -> anyhow::Result<RedisGate> {
        RedisGate::with_call_timeout(endpoint, namespace, DEFAULT_CALL_TIMEOUT)
    }

    /// A gate whose Redis calls each get `timeout` before it steps aside.
    pub fn with_call_timeout(
        endpoint: impl Into<RedisEndpoint>,
        namespace: impl Into<String>,
        timeout: Duration,
    ) -> anyhow::Result<RedisGate> {
        Ok(RedisGate {
            redis: RedisConnection::new(endpoint, timeout)?,
            namespace: namespace.into(),
            script: redis::Script::new(ADMIT),
            bypassed: AtomicU64::new(0),
        })
    }

    /// Starts connecting and waits up to `within`; true when the gate can answer.
    pub async fn ready(&self, within: Duration) -> bool {
        self.redis.ready(within).await
    }

    /// How many requests the gate could not answer.
    pub fn bypassed(&self) -> u64 {
        self.bypassed.load(Ordering::Relaxed)
    }

    fn keys(&self, coupon: &Coupon) -> (String, String) {
        let base = format!("{}:gate:{{c{}}}", self.namespace, coupon.id);
        (format!("{base}:holders"), format!("{base}:soldout"))
    }

    async fn within<T>(&self, what: &str, call: impl std::future::Future<Output = anyhow::Result<T>>) -> Option<T> {
        self.redis.within(&format!("coupon gate: {what}"), call).await
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        self.redis.connection()
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
