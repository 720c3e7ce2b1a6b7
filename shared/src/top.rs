//! The top 5 products by quantity sold in paid orders over the last 3 days.
//!
//! The window is the 3 UTC calendar days ending today: at 10:00 on the 24th it holds
//! the 22nd, 23rd and 24th (so it covers between 48 and 72 hours, and the oldest day
//! drops out at midnight UTC). Ties are broken by product id, smallest first. Payment
//! adds each paid line to a per-product, per-day figure, so computing reads at most 3
//! days × products, never every order.
//!
//! The answer is cached (Redis) look-aside: a scheduled refresher recomputes it and
//! writes it with a TTL longer than its period; a caller that misses recomputes under
//! a single-flight lock while the others wait briefly for its result; a cache that is
//! down or slow is stepped around — the caller answers from DynamoDB, never with a 500.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use time::{Date, OffsetDateTime};

use crate::catalog::{CatalogError, ProductCatalog};
use crate::clock::Clock;
use crate::coupons::GateFuture;
use crate::ids::ProductId;
use crate::metrics;

pub const WINDOW_DAYS: u8 = 3;
pub const TOP_N: usize = 5;

/// The UTC days the window holds at `now`, oldest first.
pub fn window(now: OffsetDateTime) -> Vec<Date> {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    (0..i64::from(WINDOW_DAYS)).rev().map(|back| today - time::Duration::days(back)).collect()
}

/// The top `TOP_N` (product, quantity) by quantity, ties by product id.
pub fn rank(sold: HashMap<ProductId, u64>) -> Vec<(ProductId, u64)> {
    let mut ranked: Vec<(ProductId, u64)> = sold.into_iter().filter(|(_, q)| *q > 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(TOP_N);
    ranked
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopItem {
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    pub rank: u32,
    #[schema(value_type = crate::ids::ProductId)]
    pub product_id: u64,
    pub name: String,
    #[schema(value_type = crate::money::Money)]
    pub price: String,
    pub stock: u64,
    pub sold_quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopProducts {
    pub window_days: u8,
    /// When the answer was computed (the cache may serve it for a refresh interval).
    #[schema(format = DateTime)]
    pub generated_at: String,
    pub items: Vec<TopItem>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<CatalogError> for TopError {
    fn from(err: CatalogError) -> TopError {
        match err {
            CatalogError::Unavailable(e) => TopError::Unavailable(e),
            other => TopError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// Reads the per-day sales figures.
pub trait SalesReader: Send + Sync {
    /// Quantity sold per product over `days`.
    fn sales(&self, days: &[Date]) -> impl Future<Output = Result<HashMap<ProductId, u64>, TopError>> + Send;
}

/// What the cache answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Hit(TopProducts),
    Miss,
    /// The cache could not answer (down, slow): compute without it.
    Unavailable,
}

/// The top-5 cache. Every call is bounded by a short timeout inside the adapter.
pub trait TopProductsCache: Send + Sync {
    fn get(&self) -> GateFuture<'_, Cached>;
    fn put<'a>(&'a self, value: &'a TopProducts) -> GateFuture<'a, ()>;
    /// Takes the single-flight lock (`SET NX PX`); false when another caller holds it
    /// or the cache is unavailable.
    fn try_lock(&self) -> GateFuture<'_, bool>;
    fn unlock(&self) -> GateFuture<'_, ()>;
    /// How long a caller that missed waits for the one holding the lock.
    fn patience(&self) -> Duration {
        WAIT_FOR_OTHERS
    }
    /// Where this process keeps its own recent answer for when the cache is out of
    /// reach.
    fn stand_in(&self) -> &StandIn;
}

/// How long a process answers with the top 5 it computed itself while the cache is out
/// of reach.
pub const STAND_IN_FOR: Duration = Duration::from_secs(5);
/// How old an answer may still stand in while a fresh one is being computed: the
/// refresh period, the staleness invariant 7 allows.
pub const STAND_IN_AT_MOST: Duration = Duration::from_secs(60);
/// After a computation failed, how long callers get that failure rather than each
/// trying again against a DynamoDB that is failing.
pub const FAILURE_HELD_FOR: Duration = Duration::from_secs(1);

/// A process's own recent answer, for while the cache is down or slow. Without it, a
/// Redis outage sends every request to DynamoDB to recompute — the stampede the cache
/// exists to prevent, and its reads land on the hottest items there are, the stock and
/// per-day sales every payment writes (the fault suite saw payments time out behind
/// it). One caller computes; meanwhile the others take the previous answer if there is
/// one young enough, or wait for the new one; a failure is shared for a moment too.
#[derive(Default)]
pub struct StandIn {
    last: std::sync::Mutex<Last>,
    computing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Last {
    value: Option<(tokio::time::Instant, TopProducts)>,
    failed_at: Option<tokio::time::Instant>,
}

impl StandIn {
    /// The answer computed here in the last [`STAND_IN_FOR`], or `compute`'s (kept).
    pub async fn get_or_compute(
        &self,
        compute: impl Future<Output = Result<TopProducts, TopError>>,
    ) -> Result<TopProducts, TopError> {
        if let Some(answer) = self.recent() {
            return answer;
        }
        let _computing = match self.computing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(value) = self.young_enough() {
                    return Ok(value);
                }
                let guard = self.computing.lock().await;
                if let Some(answer) = self.recent() {
                    return answer;
                }
                guard
            }
        };
        tracing::warn!(metric = "top5_cache_unavailable", "top-5 cache unavailable; answering from DynamoDB");
        let computed = compute.await;
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &computed {
            Ok(value) => *last = Last { value: Some((tokio::time::Instant::now(), value.clone())), failed_at: None },
            Err(_) => last.failed_at = Some(tokio::time::Instant::now()),
        }
        computed
    }

    /// An answer from the last few seconds: a value, or a failure.
    fn recent(&self) -> Option<Result<TopProducts, TopError>> {
        let last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((at, value)) = &last.value {
            if at.elapsed() < STAND_IN_FOR {
                return Some(Ok(value.clone()));
            }
        }
        let failed = last.failed_at.is_some_and(|at| at.elapsed() < FAILURE_HELD_FOR);
        failed.then(|| Err(TopError::Unavailable(anyhow::anyhow!("the top 5 could not be computed a moment ago"))))
    }

    fn young_enough(&self) -> Option<TopProducts> {
        let last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        last.value.as_ref().filter(|(at, _)| at.elapsed() < STAND_IN_AT_MOST).map(|(_, value)| value.clone())
    }
}

/// Computes the answer from DynamoDB.
pub async fn compute<S: SalesReader + ProductCatalog>(store: &S, now: OffsetDateTime) -> Result<TopProducts, TopError> {
    let ranked = rank(store.sales(&window(now)).await?);
    let ids: Vec<ProductId> = ranked.iter().map(|(id, _)| *id).collect();
    let products = store.products_by_id(&ids).await?;
    let mut items = Vec::with_capacity(ranked.len());
    for (position, ((id, sold), product)) in ranked.into_iter().zip(products).enumerate() {
        items.push(TopItem {
            rank: position as u32 + 1,
            product_id: id.get(),
            name: product.name,
            price: product.price.to_string(),
            stock: product.stock,
            sold_quantity: sold,
        });
    }
    Ok(TopProducts { window_days: WINDOW_DAYS, generated_at: crate::clock::rfc3339(now), items })
}

/// How long callers that miss wait for the one recomputing before doing it themselves.
pub const WAIT_FOR_OTHERS: Duration = Duration::from_millis(1000);

/// The answer for a request: from the cache, or computed once for everyone who missed.
pub async fn top_products<S: SalesReader + ProductCatalog>(
    store: &S,
    cache: Option<&dyn TopProductsCache>,
    clock: &dyn Clock,
) -> Result<TopProducts, TopError> {
    let Some(cache) = cache else { return compute(store, clock.now()).await };
    match cache.get().await {
        Cached::Hit(value) => {
            metrics::count(metrics::TOP_CACHE, &["Hit"], 1);
            return Ok(value);
        }
        Cached::Unavailable => {
            metrics::count(metrics::TOP_CACHE, &["Fallback"], 1);
            return cache.stand_in().get_or_compute(compute(store, clock.now())).await;
        }
        Cached::Miss => metrics::count(metrics::TOP_CACHE, &["Miss"], 1),
    }
    if cache.try_lock().await {
        // The lock may be free because the caller before has just computed, stored and
        // let it go since this one missed: then its answer is there to take.
        if let Cached::Hit(value) = cache.get().await {
            cache.unlock().await;
            return Ok(value);
        }
        let result = compute(store, clock.now()).await;
        if let Ok(value) = &result {
            cache.put(value).await;
        }
        cache.unlock().await;
        return result;
    }
    let deadline = tokio::time::Instant::now() + cache.patience();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match cache.get().await {
            Cached::Hit(value) => return Ok(value),
            Cached::Miss => {}
            Cached::Unavailable => break,
        }
    }
    tracing::warn!(metric = "top5_wait_gave_up", "no top-5 result from the cache in time; computing");
    compute(store, clock.now()).await
}

/// The scheduled refresh: recompute and overwrite the cache.
pub async fn refresh<S: SalesReader + ProductCatalog>(
    store: &S,
    cache: &dyn TopProductsCache,
    clock: &dyn Clock,
) -> Result<TopProducts, TopError> {
    let value = compute(store, clock.now()).await?;
    cache.put(&value).await;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn with_the_cache_out_of_reach_one_caller_computes_and_the_others_take_its_answer() {
        let stand_in = StandIn::default();
        let computed = std::sync::atomic::AtomicU32::new(0);
        let compute = || async {
            computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(TopProducts { window_days: WINDOW_DAYS, generated_at: "2026-11-26T00:00:00Z".into(), items: vec![] })
        };
        let answers = futures::future::join_all((0..20).map(|_| stand_in.get_or_compute(compute()))).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|v| v.generated_at == "2026-11-26T00:00:00Z")));
        assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1, "one computation for twenty callers");
        stand_in.get_or_compute(compute()).await.unwrap();
        assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1, "a recent answer is reused");
    }

    fn answer(generated_at: &str) -> TopProducts {
        TopProducts { window_days: WINDOW_DAYS, generated_at: generated_at.into(), items: vec![] }
    }

    #[tokio::test]
    async fn a_failure_is_shared_for_a_moment_then_tried_again() {
        let stand_in = StandIn::default();
        let failed = stand_in.get_or_compute(async { Err(TopError::Unavailable(anyhow::anyhow!("down"))) }).await;
        assert!(failed.is_err());
        let again = stand_in.get_or_compute(async { panic!("computed again right after a failure") }).await;
        assert!(again.is_err(), "the failure is shared");
        tokio::time::sleep(FAILURE_HELD_FOR + Duration::from_millis(100)).await;
        let answer = stand_in.get_or_compute(async { Ok(answer("later")) }).await.unwrap();
        assert_eq!(answer.generated_at, "later", "then a caller computes afresh");
    }

    #[tokio::test]
    async fn while_one_caller_computes_an_older_answer_stands_in() {
        let stand_in = StandIn::default();
        let older = tokio::time::Instant::now().checked_sub(STAND_IN_FOR * 2).unwrap();
        stand_in.last.lock().unwrap().value = Some((older, answer("older")));
        let _computing = stand_in.computing.lock().await;
        let meanwhile = stand_in.get_or_compute(async { panic!("a second computation") }).await.unwrap();
        assert_eq!(meanwhile.generated_at, "older");
    }

    fn p(id: u64) -> ProductId {
        ProductId::new(id).unwrap()
    }

    #[test]
    fn the_window_is_today_and_the_two_days_before_in_utc() {
        let days = window(datetime!(2026-11-24 00:00:00 UTC));
        assert_eq!(
            days,
            [
                time::macros::date!(2026 - 11 - 22),
                time::macros::date!(2026 - 11 - 23),
                time::macros::date!(2026 - 11 - 24)
            ]
        );
        let days = window(datetime!(2026-11-24 23:30:00 -02:00));
        assert_eq!(days[2], time::macros::date!(2026 - 11 - 25), "23:30 at -02:00 is the 25th in UTC");
        let days = window(datetime!(2026-03-01 10:00 UTC));
        assert_eq!(days[0], time::macros::date!(2026 - 02 - 27));
    }

    #[test]
    fn ranking_is_by_quantity_then_smallest_id_and_keeps_five() {
        let sold =
            HashMap::from([(p(7), 10), (p(3), 10), (p(1), 2), (p(9), 30), (p(4), 10), (p(5), 1), (p(6), 0), (p(2), 2)]);
        assert_eq!(rank(sold), [(p(9), 30), (p(3), 10), (p(4), 10), (p(7), 10), (p(1), 2)]);
        assert!(rank(HashMap::from([(p(1), 0)])).is_empty());
    }
}
