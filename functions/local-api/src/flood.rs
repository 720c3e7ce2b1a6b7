//! The edge's flood rules, as the local API applies them with `FLOOD=on`: what AWS WAF's
//! rate-based rules do on the CloudFront distribution `template.yaml` puts in front of
//! the API with `FloodProtection=on`.
//!
//! API Gateway's route throttle runs before its JWT authorizer, and WAF cannot attach to
//! an HTTP API: without a rule in front, a flood of requests without a token spends a
//! route's whole limit and the signed-in rush behind it gets 429s. Three rules, each
//! counting requests over a trailing window (WAF's evaluation window) and refusing a
//! source past its limit with 403 `{"message":"Forbidden"}` before anything behind them
//! runs:
//!
//! - **anonymous, per client address**: requests without an `Authorization` header,
//!   counted by the client's address (here the TCP peer's; on AWS the viewer's IP);
//! - **per token**: requests with one, counted by the header's value, so one token
//!   (even a stolen valid one) cannot flood either;
//! - **per client address**: every request, counted by address at a higher limit, so a
//!   flood that makes up a new token for each request is refused too (the authorizer
//!   would refuse those, but only after the route throttle has counted them).
//!
//! A refused request counts too, as WAF counts every request a rule sees: a source
//! stays refused while it keeps sending. The limits come from the template's parameters
//! (`FloodWindowSeconds`, `FloodAnonymousLimit`, `FloodTokenLimit`,
//! `FloodAddressLimit`), the one source for both; `FLOOD_WINDOW`,
//! `FLOOD_ANONYMOUS_LIMIT`, `FLOOD_TOKEN_LIMIT` and `FLOOD_ADDRESS_LIMIT` override them.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_norway::Value;

/// The client's address, as the local API accepted its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The rules' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// The trailing window requests are counted over (WAF: 60, 120, 300 or 600 s).
    pub window: Duration,
    /// Requests without a token one address may send in a window (WAF: at least 10).
    pub anonymous: u64,
    /// Requests one token may carry in a window.
    pub per_token: u64,
    /// Requests of any kind one address may send in a window.
    pub per_address: u64,
}

impl FloodLimits {
    /// The limits `template` (template.yaml's text) gives its rules, each overridden by
    /// the value `var` reads for its variable when there is one.
    pub fn from_template(template: &str, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<FloodLimits> {
        let template: Value = serde_norway::from_str(template).context("template.yaml is not YAML")?;
        let number = |parameter: &str, variable: &str| -> anyhow::Result<u64> {
            match var(variable) {
                Some(value) => value.parse().with_context(|| format!("{variable} must be a whole number")),
                None => template["Parameters"][parameter]["Default"]
                    .as_u64()
                    .with_context(|| format!("template.yaml's {parameter} has no numeric default")),
            }
        };
        let limits = FloodLimits {
            window: Duration::from_secs(number("FloodWindowSeconds", "FLOOD_WINDOW")?),
            anonymous: number("FloodAnonymousLimit", "FLOOD_ANONYMOUS_LIMIT")?,
            per_token: number("FloodTokenLimit", "FLOOD_TOKEN_LIMIT")?,
            per_address: number("FloodAddressLimit", "FLOOD_ADDRESS_LIMIT")?,
        };
        anyhow::ensure!(!limits.window.is_zero(), "the flood window must be at least a second");
        Ok(limits)
    }
}

/// Who a rule counts a request against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    /// Requests without a token from one address.
    Anonymous(IpAddr),
    /// The `Authorization` header's value, hashed.
    Token(u64),
    /// Every request from one address.
    Address(IpAddr),
}

/// The two rules and their counts.
#[derive(Debug)]
pub struct FloodRules {
    limits: FloodLimits,
    /// Per source, its requests in the window, one entry per second they came in.
    seen: Mutex<HashMap<Source, VecDeque<(Instant, u64)>>>,
}

/// How many sources the counts keep before the idle ones are dropped.
const SOURCES_KEPT: usize = 10_000;

impl FloodRules {
    pub fn new(limits: FloodLimits) -> FloodRules {
        FloodRules { limits, seen: Mutex::default() }
    }

    pub fn limits(&self) -> FloodLimits {
        self.limits
    }

    /// Counts a request from `address` (if known) carrying `authorization` (if any)
    /// at `now` under every rule it falls under: whether it may go on, or the first
    /// rule whose source is past its limit for the window (which names the refusal).
    pub fn admit(
        &self,
        address: Option<IpAddr>,
        authorization: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), &'static str> {
        let mut rules = Vec::with_capacity(2);
        match (authorization, address) {
            (Some(value), _) => {
                let mut hasher = std::hash::DefaultHasher::new();
                value.hash(&mut hasher);
                rules.push((Source::Token(hasher.finish()), self.limits.per_token, "per-token"));
            }
            (None, Some(address)) => {
                rules.push((Source::Anonymous(address), self.limits.anonymous, "anonymous-per-address"))
            }
            (None, None) => {}
        }
        if let Some(address) = address {
            rules.push((Source::Address(address), self.limits.per_address, "per-address"));
        }
        let window = self.limits.window;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > SOURCES_KEPT {
            seen.retain(|_, counts| counts.back().is_some_and(|(at, _)| now.duration_since(*at) < window));
        }
        let mut refused = None;
        for (source, limit, rule) in rules {
            let counts = seen.entry(source).or_default();
            while counts.front().is_some_and(|(at, _)| now.duration_since(*at) >= window) {
                counts.pop_front();
            }
            let before: u64 = counts.iter().map(|(_, n)| n).sum();
            match counts.back_mut() {
                Some((at, n)) if now.duration_since(*at) < Duration::from_secs(1) => *n += 1,
                _ => counts.push_back((now, 1)),
            }
            if before >= limit && refused.is_none() {
                refused = Some(rule);
            }
        }
        refused.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FloodLimits =
        FloodLimits { window: Duration::from_secs(60), anonymous: 10, per_token: 30, per_address: 1_000 };

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn an_address_without_a_token_gets_its_limit_in_a_window_and_no_more() {
        let rules = FloodRules::new(LIMITS);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        for i in 0..10 {
            assert_eq!(rules.admit(address(2), None, at(i * 100)), Ok(()), "request {i}");
        }
        assert_eq!(rules.admit(address(2), None, at(1_000)), Err("anonymous-per-address"));
        assert_eq!(rules.admit(address(3), None, at(1_000)), Ok(()), "another address counts apart");
        // Refused requests count: sending on keeps the address refused …
        for s in 2..60 {
            assert!(rules.admit(address(2), None, at(s * 1_000)).is_err(), "second {s}");
        }
        // … until a whole window has passed with fewer than the limit in it.
        assert!(rules.admit(address(2), None, at(120_000)).is_ok());
    }

    #[test]
    fn requests_with_a_token_count_by_the_token_not_the_address() {
        let rules = FloodRules::new(LIMITS);
        let now = Instant::now();
        for i in 0..30 {
            let from = address(1 + (i % 5) as u8);
            assert_eq!(rules.admit(from, Some(b"Bearer one"), now), Ok(()), "request {i}");
        }
        assert_eq!(rules.admit(address(9), Some(b"Bearer one"), now), Err("per-token"));
        assert_eq!(rules.admit(address(1), Some(b"Bearer two"), now), Ok(()), "another token counts apart");
        for _ in 0..10 {
            assert_eq!(rules.admit(address(1), None, now), Ok(()), "the address's own anonymous count is apart");
        }
    }

    #[test]
    fn a_flood_that_makes_up_a_token_for_each_request_is_refused_per_address() {
        let rules = FloodRules::new(FloodLimits { per_address: 50, ..LIMITS });
        let now = Instant::now();
        for i in 0..50 {
            let token = format!("Bearer made-up-{i}");
            assert_eq!(rules.admit(address(4), Some(token.as_bytes()), now), Ok(()), "request {i}");
        }
        assert_eq!(rules.admit(address(4), Some(b"Bearer made-up-50"), now), Err("per-address"));
        assert_eq!(rules.admit(address(5), Some(b"Bearer made-up-51"), now), Ok(()), "another address");
    }

    #[test]
    fn the_limits_come_from_the_templates_parameters_unless_a_variable_says() {
        let template = "Parameters:\n  FloodWindowSeconds: {Type: Number, Default: 60}\n  \
                        FloodAnonymousLimit: {Type: Number, Default: 300}\n  FloodTokenLimit: {Type: Number, Default: 1200}\n  \
                        FloodAddressLimit: {Type: Number, Default: 6000}\n";
        let limits = FloodLimits::from_template(template, |_| None).unwrap();
        let expected =
            FloodLimits { window: Duration::from_secs(60), anonymous: 300, per_token: 1200, per_address: 6000 };
        assert_eq!(limits, expected);
        let overridden =
            FloodLimits::from_template(template, |name| (name == "FLOOD_ANONYMOUS_LIMIT").then(|| "10".into()));
        assert_eq!(overridden.unwrap().anonymous, 10);
        assert!(FloodLimits::from_template(template, |name| (name == "FLOOD_WINDOW").then(|| "0".into())).is_err());
        assert!(FloodLimits::from_template("Parameters: {}", |_| None).is_err());
    }
}
