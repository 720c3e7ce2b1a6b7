//! The top-5 cache on Redis.
//!
//! Keys: `<namespace>:top5:v1` holds the answer as JSON, with a TTL longer than the
//! refresher's period; `<namespace>:top5:v1:lock` is the single-flight lock
//! (`SET NX PX`, released by its holder, expiring by itself if the holder dies).

use std::time::Duration;

use super::redis_connection::{RedisConnection, RedisEndpoint, DEFAULT_CALL_TIMEOUT};
use crate::coupons::GateFuture;
use crate::top::{Cached, TopProducts, TopProductsCache};

pub struct RedisTopCache {
    redis: RedisConnection,
    key: String,
    lock: String,
    ttl: Duration,
    lock_ttl: Duration,
    patience: Duration,
    stand_in: crate::top::StandIn,
}

impl RedisTopCache {
    /// A cache whose entries live `ttl` (make it longer than the refresh period) and
    /// whose calls each get [`DEFAULT_CALL_TIMEOUT`].
    pub fn new(endpoint: impl Into<RedisEndpoint>, namespace: &str, ttl: Duration) -> anyhow::Result<RedisTopCache> {
        RedisTopCache::with_call_timeout(endpoint, namespace, ttl, DEFAULT_CALL_TIMEOUT)
    }

    /// A cache whose calls each get `timeout` before the caller answers from DynamoDB.
    pub fn with_call_timeout(
        endpoint: impl Into<RedisEndpoint>,
        namespace: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> anyhow::Result<RedisTopCache> {
        Ok(RedisTopCache {
            redis: RedisConnection::new(endpoint, timeout)?,
            key: format!("{namespace}:top5:v1"),
            lock: format!("{namespace}:top5:v1:lock"),
            ttl,
            lock_ttl: Duration::from_secs(5),
            patience: crate::top::WAIT_FOR_OTHERS,
            stand_in: crate::top::StandIn::default(),
        })
    }

    /// How long a caller that missed waits for the one recomputing (at most the lock's
    /// own life, after which it is gone anyway).
    pub fn with_patience(mut self, patience: Duration) -> RedisTopCache {
        self.patience = patience.min(self.lock_ttl);
        self
    }

    pub async fn ready(&self, within: Duration) -> bool {
        self.redis.ready(within).await
    }
}

impl TopProductsCache for RedisTopCache {
    fn stand_in(&self) -> &crate::top::StandIn {
        &self.stand_in
    }

    fn get(&self) -> GateFuture<'_, Cached> {
        Box::pin(async move {
            let found = self
                .redis
                .within("top-5 cache: get", async {
                    let mut connection = self.redis.connection()?;
                    let text: Option<String> = redis::cmd("GET").arg(&self.key).query_async(&mut connection).await?;
                    Ok(text)
                })
                .await;
            match found {
                None => Cached::Unavailable,
                Some(None) => Cached::Miss,
                Some(Some(text)) => match serde_json::from_str(&text) {
                    Ok(value) => Cached::Hit(value),
                    Err(err) => {
                        tracing::warn!(error = %err, "top-5 cache holds an unreadable value; recomputing");
                        Cached::Miss
                    }
                },
            }
        })
    }

    fn put<'a>(&'a self, value: &'a TopProducts) -> GateFuture<'a, ()> {
        Box::pin(async move {
            let Ok(text) = serde_json::to_string(value) else { return };
            self.redis
                .within("top-5 cache: put", async {
                    let mut connection = self.redis.connection()?;
                    let _: () = redis::cmd("SET")
                        .arg(&self.key)
                        .arg(text)
                        .arg("PX")
                        .arg(self.ttl.as_millis() as u64)
                        .query_async(&mut connection)
                        .await?;
                    Ok(())
                })
                .await;
        })
    }

    fn try_lock(&self) -> GateFuture<'_, bool> {
        Box::pin(async move {
            self.redis
                .within("top-5 cache: lock", async {
                    let mut connection = self.redis.connection()?;
                    let taken: Option<String> = redis::cmd("SET")
                        .arg(&self.lock)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(self.lock_ttl.as_millis() as u64)
                        .query_async(&mut connection)
                        .await?;
                    Ok(taken.is_some())
                })
                .await
                .unwrap_or(false)
        })
    }

    fn patience(&self) -> Duration {
        self.patience
    }

    fn unlock(&self) -> GateFuture<'_, ()> {
        Box::pin(async move {
            self.redis
                .within("top-5 cache: unlock", async {
                    let mut connection = self.redis.connection()?;
                    let _: i64 = redis::cmd("DEL").arg(&self.lock).query_async(&mut connection).await?;
                    Ok(())
                })
                .await;
        })
    }
}
