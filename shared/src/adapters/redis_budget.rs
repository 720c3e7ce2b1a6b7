//! The per-user budget on coupon issue, on Redis: one counter per user per second,
//! incremented atomically (a Lua script) and expiring with its second.
//!
//! API Gateway throttles a route for everyone at once; in a rush one client firing
//! thousands of requests would spend the route's whole budget and starve the rest.
//! Counting each user's requests turns that client away with 429 before DynamoDB.
//!
//! Keys: `<namespace>:budget:issue:u<user>:<unix second>`, expiring after 2 s.
//! A budget that cannot answer (Redis down or slow) steps aside: the request goes on
//! and is counted as bypassed, as the coupon gate does.

use std::time::Duration;

use super::redis_connection::{RedisConnection, RedisEndpoint};
use crate::coupons::{Budget, GateFuture, IssueBudget};
use crate::ids::UserId;

/// KEYS[1] the user's counter for this second; ARGV[1] its lifetime (s).
const SPEND: &str = r"
local spent = redis.call('INCR', KEYS[1])
if spent == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return spent
";

pub struct RedisBudget {
    redis: RedisConnection,
    namespace: String,
    per_second: u32,
    script: redis::Script,
}

impl RedisBudget {
    /// `per_second` issue requests per user per second, each Redis call bounded by
    /// `timeout`.
    pub fn new(
        endpoint: impl Into<RedisEndpoint>,
        namespace: impl Into<String>,
        per_second: u32,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(RedisBudget {
            redis: RedisConnection::new(endpoint, timeout)?,
            namespace: namespace.into(),
            per_second,
            script: redis::Script::new(SPEND),
        })
    }

    /// Starts connecting and waits up to `within`; true when the budget can answer.
    pub async fn ready(&self, within: Duration) -> bool {
        self.redis.ready(within).await
    }
}

impl IssueBudget for RedisBudget {
    fn spend(&self, user: UserId) -> GateFuture<'_, Budget> {
        Box::pin(async move {
            let second = time::OffsetDateTime::now_utc().unix_timestamp();
            let key = format!("{}:budget:issue:u{}:{second}", self.namespace, user.get());
            let spent = self
                .redis
                .within("issue budget: spend", async {
                    let mut connection = self.redis.connection()?;
                    let spent: i64 = self.script.key(&key).arg(2).invoke_async(&mut connection).await?;
                    Ok(spent)
                })
                .await;
            match spent {
                Some(spent) if spent > i64::from(self.per_second) => Budget::Exceeded,
                Some(_) => Budget::Within,
                None => Budget::Unavailable,
            }
        })
    }
}
