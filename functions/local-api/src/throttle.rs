//! API Gateway's route throttling, as `template.yaml` configures it: every route has a
//! token bucket of `DefaultRouteSettings` (rate per second, burst), a route named in
//! `RouteSettings` its own; a request that finds its route's bucket empty is answered
//! 429 `{"message":"Too Many Requests"}` before the authorizer or any function.
//!
//! The limits are read from the template (the parameters' defaults behind its `!Ref`s),
//! the one source for both. For a drill, `THROTTLE_RATE` and `THROTTLE_BURST` override
//! the default route's limits; `THROTTLE=off` lifts every limit (`make bench` runs so,
//! to measure the shop rather than the limit).
//!
//! An operator changes a route's limits at run time, with no redeploy, as
//! `aws apigatewayv2 update-stage --route-settings` does on AWS (docs/runbook.md):
//! here `PUT /_local/throttles` `{"route": "GET /api/v1/products/top", "rate": 0,
//! "burst": 0}` — a limit of 0 sheds the route, answering 429 before any function runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use serde_norway::Value;

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate: f64,
    /// The most tokens the bucket holds (and starts with).
    pub burst: f64,
}

/// The route throttles of the whole API.
#[derive(Debug)]
pub struct Throttles {
    default: Limit,
    /// By route key (`POST /api/v1/coupons/{couponId}`).
    routes: Mutex<HashMap<String, Limit>>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Throttles {
    pub fn new(default: Limit, routes: HashMap<String, Limit>) -> Throttles {
        Throttles { default, routes: Mutex::new(routes), buckets: Mutex::default() }
    }

    /// The throttles `template` (template.yaml's text) configures, the default route's
    /// overridden by `rate` and `burst` when given.
    pub fn from_template(template: &str, rate: Option<f64>, burst: Option<f64>) -> anyhow::Result<Throttles> {
        let template: Value = serde_norway::from_str(template).context("template.yaml is not YAML")?;
        let api = template["Resources"]
            .as_mapping()
            .into_iter()
            .flatten()
            .map(|(_, resource)| resource)
            .find(|resource| resource["Type"].as_str() == Some("AWS::Serverless::HttpApi"))
            .ok_or_else(|| anyhow!("template.yaml has no AWS::Serverless::HttpApi"))?;
        let properties = &api["Properties"];
        let mut default = limit(&template, &properties["DefaultRouteSettings"]).context("DefaultRouteSettings")?;
        default.rate = rate.unwrap_or(default.rate);
        default.burst = burst.unwrap_or(default.burst);
        let mut routes = HashMap::new();
        for (key, settings) in properties["RouteSettings"].as_mapping().into_iter().flatten() {
            let key = key.as_str().ok_or_else(|| anyhow!("a RouteSettings key that is not a route"))?;
            routes.insert(key.to_owned(), limit(&template, settings).with_context(|| format!("RouteSettings {key}"))?);
        }
        Ok(Throttles::new(default, routes))
    }

    /// The limit of a route the template names no limit of.
    pub fn default_limit(&self) -> Limit {
        self.default
    }

    /// The limit of the route `key`.
    pub fn limit_of(&self, key: &str) -> Limit {
        lock(&self.routes).get(key).copied().unwrap_or(self.default)
    }

    /// Sets the route `key`'s limit from now on (its bucket starts full again).
    pub fn set(&self, key: &str, limit: Limit) {
        lock(&self.routes).insert(key.to_owned(), limit);
        lock(&self.buckets).remove(key);
    }

    /// The routes with limits of their own.
    pub fn routes(&self) -> Vec<(String, Limit)> {
        let mut routes: Vec<(String, Limit)> = lock(&self.routes).iter().map(|(k, l)| (k.clone(), *l)).collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        routes
    }

    /// Takes a token from the route's bucket: `false` when it is empty (429).
    pub fn admit(&self, key: &str) -> bool {
        let limit = self.limit_of(key);
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(key) {
            // A route's first request: its bucket starts full (the key is copied once).
            buckets.insert(key.to_owned(), Bucket { tokens: limit.burst, at: now });
        }
        let Some(bucket) = buckets.get_mut(key) else { return true };
        let refilled = bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * limit.rate;
        bucket.tokens = refilled.min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `{ThrottlingRateLimit, ThrottlingBurstLimit}`, each a number or a `!Ref` to a
/// parameter with a default.
fn limit(template: &Value, settings: &Value) -> anyhow::Result<Limit> {
    let number = |name: &str| -> anyhow::Result<f64> {
        let value = &settings[name];
        let value = match value {
            Value::Tagged(tagged) if tagged.tag == "Ref" => {
                let parameter = tagged.value.as_str().ok_or_else(|| anyhow!("{name}: !Ref to what?"))?;
                template["Parameters"][parameter]["Default"].clone()
            }
            other => other.clone(),
        };
        value
            .as_f64()
            .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
            .ok_or_else(|| anyhow!("{name} is not a number or a parameter with a numeric default"))
    };
    Ok(Limit { rate: number("ThrottlingRateLimit")?, burst: number("ThrottlingBurstLimit")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  ThrottleRate: {Type: Number, Default: 100}
  ThrottleBurst: {Type: Number, Default: 50}
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      DefaultRouteSettings:
        ThrottlingRateLimit: !Ref ThrottleRate
        ThrottlingBurstLimit: !Ref ThrottleBurst
      RouteSettings:
        "POST /api/v1/coupons/{couponId}":
          ThrottlingRateLimit: 5
          ThrottlingBurstLimit: 2
"#;

    #[test]
    fn limits_come_from_the_template_and_its_parameters_defaults() {
        let throttles = Throttles::from_template(TEMPLATE, None, None).unwrap();
        assert_eq!(throttles.limit_of("GET /api/v1/products"), Limit { rate: 100.0, burst: 50.0 });
        assert_eq!(throttles.limit_of("POST /api/v1/coupons/{couponId}"), Limit { rate: 5.0, burst: 2.0 });
        let drill = Throttles::from_template(TEMPLATE, Some(3.0), Some(1.0)).unwrap();
        assert_eq!(drill.limit_of("GET /api/v1/products"), Limit { rate: 3.0, burst: 1.0 });
        assert_eq!(drill.limit_of("POST /api/v1/coupons/{couponId}"), Limit { rate: 5.0, burst: 2.0 });
    }

    #[test]
    fn a_bucket_lets_its_burst_through_then_refuses_until_it_refills() {
        // A rate so low that no token comes back during the test.
        let limit = Limit { rate: 0.001, burst: 3.0 };
        let throttles = Throttles::new(limit, HashMap::new());
        let admitted: Vec<bool> = (0..5).map(|_| throttles.admit("GET /a")).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert!(throttles.admit("GET /b"), "each route has its own bucket");
    }

    #[test]
    fn a_route_set_to_zero_is_shed_and_set_back_it_serves_again() {
        let throttles = Throttles::new(Limit { rate: 1000.0, burst: 1000.0 }, HashMap::new());
        assert!(throttles.admit("GET /api/v1/products/top"));
        throttles.set("GET /api/v1/products/top", Limit { rate: 0.0, burst: 0.0 });
        assert!(!throttles.admit("GET /api/v1/products/top"));
        assert!(throttles.admit("GET /api/v1/products"), "only that route");
        throttles.set("GET /api/v1/products/top", Limit { rate: 10.0, burst: 5.0 });
        assert!(throttles.admit("GET /api/v1/products/top"));
        assert_eq!(throttles.routes().len(), 1);
    }
}
