//! The business and technical metrics rushcart emits, as CloudWatch Embedded Metric
//! Format (EMF) records in its log lines.
//!
//! [`CATALOGUE`] is the one list of what the code emits: every metric's name, unit and
//! dimension names, in the namespace [`NAMESPACE`]. The template's alarms and dashboard
//! name metrics from it (a test holds them to it), and `/_local/metrics` sums what the
//! functions wrote. The code emits a metric only through its handle (`PAYMENTS`,
//! `FEED_LAG` …), which the catalogue makes, crate-private: the compiler holds the code to
//! the catalogue both ways (a metric outside it cannot be named, and one never emitted
//! is an unused handle, an error in `make lint`).
//!
//! [`count`] and [`duration`] write one EMF record each, and [`record`] the samples of
//! one unit of work together (a request's count and latency), a JSON line on stdout, where
//! CloudWatch Logs turns it into a metric with no API call on the request's path; a
//! process may [`install`] another sink (the local API sums them). Why not a crate:
//! AWS's `metrique` (with its EMF writer) is the well-kept one, built for wide
//! unit-of-work records; it would bring about forty crates (`metrics`, `metrics-util`,
//! `quanta`, `crossbeam`, a DDSketch …) into every function for what is, here, thirteen
//! counters and timers whose record is one small `serde_json` object, as the EMF
//! specification gives it. Revisit if records grow wide (many values per request).

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "rushcart";

/// How a metric's values are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    /// The unit as EMF and CloudWatch spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric the code emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: Unit,
    /// The dimension names it is emitted with (one dimension set).
    pub dimensions: &'static [&'static str],
    pub description: &'static str,
}

macro_rules! catalogue {
    ($($handle:ident = $name:literal, $unit:ident, [$($dimension:literal),*], $description:literal;)*) => {
        /// Every metric the code emits.
        pub const CATALOGUE: &[MetricSpec] = &[
            $(MetricSpec { name: $name, unit: Unit::$unit, dimensions: &[$($dimension),*], description: $description },)*
        ];

        // One handle per metric, the only way to emit it. Each is crate-private, so a
        // metric the code never emits is a handle never used, which the compiler
        // reports (`dead_code`, an error in `make lint`); and nothing can emit a metric
        // outside the catalogue, since a `Metric` is made only here.
        $(
            #[doc = concat!("`", $name, "`: ", $description)]
            pub(crate) const $handle: Metric = Metric($name);
        )*
    };
}

catalogue! {
    REQUESTS = "Requests", Count, ["Route", "StatusClass"],
        "Answered requests, by route and status class (2xx, 4xx, 5xx)";
    LATENCY = "Latency", Milliseconds, ["Route"],
        "Time from a function receiving a request to its answer";
    COUPON_ISSUES = "CouponIssues", Count, ["Outcome"],
        "Coupon issue attempts: Issued, Replayed (a keyed retry answered its first copy), SoldOut, AlreadyIssued, Expired";
    COUPON_GATE = "CouponGate", Count, ["Outcome"],
        "The Redis admission gate: Admitted, Refused (sold out or held), Bypassed (Redis unavailable)";
    COUPON_BUDGET = "CouponBudget", Count, ["Outcome"],
        "Each user's budget of coupon issue requests: Within, Exceeded (429), Bypassed (Redis unavailable)";
    PAYMENTS = "Payments", Count, ["Outcome"],
        "Payment attempts: Succeeded, Failed";
    PAYMENT_FAILURES = "PaymentFailures", Count, ["Reason"],
        "Refused payments by reason: INSUFFICIENT_BALANCE, OUT_OF_STOCK, …";
    CANCELLATIONS = "Cancellations", Count, ["Outcome"],
        "Cancels that changed an order: Cancelled (unpaid), Refunded (paid)";
    TOP_CACHE = "TopCache", Count, ["Outcome"],
        "Top-5 reads: Hit, Miss (recomputed), Fallback (Redis down, answered from DynamoDB)";
    FEED_EVENTS = "FeedEvents", Count, ["Outcome"],
        "Feed events: Relayed and Retried (the relay's publish failed; the sweeper republishes), \
            Delivered, Duplicate (delivered before), DeliveryFailed (SQS retries it, then dead-letters it) and \
            DeliveredUnrecorded (posted, but recording it failed: a retry may post it again, with the same \
            Idempotency-Key)";
    FEED_LAG = "FeedLag", Milliseconds, [],
        "From an event's commit to its publication";
    REDIS_CONNECT = "RedisConnect", Count, ["Outcome"],
        "Connect attempts to Redis: Connected, Failed (down, refused, TLS refused; retried with \
            backoff while the gate, the budget and the cache step aside)";
    TRANSACTION_CONFLICTS_RETRIED = "TransactionConflictsRetried", Count, ["Operation"],
        "DynamoDB TransactionConflict cancellations retried, by the operation's verb (pay, issue, refund …)";
}

/// A metric of the [`CATALOGUE`], to emit: one of the handles the catalogue makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric(&'static str);

/// The spec of the metric named `name`.
pub fn spec(name: &str) -> Option<&'static MetricSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

// --- Emitting ------------------------------------------------------------------------

/// One value of one metric, with its dimensions' values (in the order of the spec's
/// dimension names).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub spec: &'static MetricSpec,
    pub dimensions: &'a [&'a str],
    pub value: f64,
}

/// Where EMF records go: stdout (a Lambda's log, where CloudWatch reads them), unless
/// the process installed another sink (the local API also sums them).
pub trait Sink: Send + Sync {
    /// One EMF record, a JSON object on one line.
    fn write(&self, record: &str);
}

static SINK: std::sync::OnceLock<Box<dyn Sink>> = std::sync::OnceLock::new();

/// Sends every record of this process to `sink` (once, before the first record);
/// `false` if a sink was already set.
pub fn install(sink: Box<dyn Sink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Counts `n` of `metric` with `dimensions` (values in the spec's order).
pub fn count(metric: Metric, dimensions: &[&str], n: u64) {
    record(&[sample(metric, dimensions, n as f64)]);
}

/// Records a duration of `metric`.
pub fn duration(metric: Metric, dimensions: &[&str], elapsed: std::time::Duration) {
    record(&[sample(metric, dimensions, millis(elapsed))]);
}

/// A duration in milliseconds, as EMF values of [`Unit::Milliseconds`] are.
pub fn millis(elapsed: std::time::Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// One value of `metric`, for [`record`]; `None` (and an error logged: a bug, caught by
/// tests, never fatal) for the wrong number of dimension values.
pub fn sample<'a>(metric: Metric, dimensions: &'a [&'a str], value: f64) -> Option<Sample<'a>> {
    let name = metric.0;
    let Some(spec) = spec(name) else {
        tracing::error!(metric = name, "a metric outside the catalogue");
        return None;
    };
    if spec.dimensions.len() != dimensions.len() {
        tracing::error!(metric = name, "a metric with the wrong dimensions");
        return None;
    }
    Some(Sample { spec, dimensions, value })
}

/// Writes several samples of one unit of work (a request's count and latency) in as
/// few EMF records as they fit: one, unless two of them name the same metric or give
/// the same dimension different values (an EMF record has one value per key).
pub fn record(samples: &[Option<Sample<'_>>]) {
    let at = time::OffsetDateTime::now_utc();
    for group in records_of(samples.iter().flatten()) {
        let record = emf_of(&group, at);
        match SINK.get() {
            Some(sink) => sink.write(&record),
            None => println!("{record}"),
        }
    }
}

/// `samples` in order, split into the fewest consecutive groups that can each be one
/// EMF record.
fn records_of<'s, 'a: 's>(samples: impl Iterator<Item = &'s Sample<'a>>) -> Vec<Vec<&'s Sample<'a>>> {
    let mut groups: Vec<Vec<&Sample<'a>>> = Vec::new();
    for sample in samples {
        let fits = groups.last().is_some_and(|group| group.iter().all(|other| compatible(other, sample)));
        match groups.last_mut() {
            Some(group) if fits => group.push(sample),
            _ => groups.push(vec![sample]),
        }
    }
    groups
}

/// Whether two samples can share a record: different metrics, and every dimension they
/// both name has the same value in each.
fn compatible(a: &Sample<'_>, b: &Sample<'_>) -> bool {
    a.spec.name != b.spec.name
        && a.dimensions_named().all(|(name, value)| b.dimensions_named().all(|(n, v)| n != name || v == value))
}

impl Sample<'_> {
    /// (dimension name, its value), in the spec's order.
    fn dimensions_named(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.spec.dimensions.iter().copied().zip(self.dimensions.iter().copied())
    }
}

/// The EMF record of one sample: the `_aws` metadata (namespace, the dimension set,
/// the metric and its unit) beside the dimension values and the value itself.
pub fn emf(sample: &Sample<'_>, at: time::OffsetDateTime) -> String {
    emf_of(&[sample], at)
}

/// One EMF record of several samples that [`compatible`] allows together: a metric
/// directive each (its dimension set, its name and unit), and the dimension values and
/// the values beside the metadata. Written straight from the samples (no JSON tree in
/// between): this runs on every request.
fn emf_of(samples: &[&Sample<'_>], at: time::OffsetDateTime) -> String {
    use serde::ser::{SerializeMap as _, Serializer as _};
    struct Directive<'s>(&'s MetricSpec);
    impl serde::Serialize for Directive<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(serde::Serialize)]
            struct Metric {
                #[serde(rename = "Name")]
                name: &'static str,
                #[serde(rename = "Unit")]
                unit: &'static str,
            }
            let mut map = serializer.serialize_map(Some(3))?;
            map.serialize_entry("Namespace", NAMESPACE)?;
            map.serialize_entry("Dimensions", &[self.0.dimensions])?;
            map.serialize_entry("Metrics", &[Metric { name: self.0.name, unit: self.0.unit.as_str() }])?;
            map.end()
        }
    }
    struct Metadata<'s> {
        timestamp: i64,
        directives: Vec<Directive<'s>>,
    }
    impl serde::Serialize for Metadata<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("Timestamp", &self.timestamp)?;
            map.serialize_entry("CloudWatchMetrics", &self.directives)?;
            map.end()
        }
    }
    let metadata = Metadata {
        timestamp: (at.unix_timestamp_nanos() / 1_000_000) as i64,
        directives: samples.iter().map(|sample| Directive(sample.spec)).collect(),
    };
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut out);
    let written = (|| {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("_aws", &metadata)?;
        let mut named: Vec<&str> = Vec::new();
        for sample in samples {
            for (name, value) in sample.dimensions_named() {
                if !named.contains(&name) {
                    named.push(name);
                    map.serialize_entry(name, value)?;
                }
            }
        }
        for sample in samples {
            map.serialize_entry(sample.spec.name, &sample.value)?;
        }
        map.end()
    })();
    // Strings and finite numbers always serialise; a NaN or infinite value becomes
    // `null`, which CloudWatch skips, as it should.
    debug_assert!(written.is_ok(), "an EMF record serialises");
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_emf_with_its_dimensions_and_value_beside_the_metadata() {
        let sample = Sample { spec: spec("Requests").unwrap(), dimensions: &["pay-order", "2xx"], value: 1.0 };
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let record: serde_json::Value = serde_json::from_str(&emf(&sample, at)).unwrap();
        assert_eq!(
            record,
            serde_json::json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "rushcart",
                        "Dimensions": [["Route", "StatusClass"]],
                        "Metrics": [{"Name": "Requests", "Unit": "Count"}],
                    }],
                },
                "Route": "pay-order",
                "StatusClass": "2xx",
                "Requests": 1.0,
            })
        );
    }

    #[test]
    fn a_requests_count_and_latency_are_one_record_with_a_directive_each() {
        let class = ["pay-order", "2xx"];
        let samples = [sample(REQUESTS, &class, 1.0), sample(LATENCY, &class[..1], 12.5)];
        let groups = records_of(samples.iter().flatten());
        assert_eq!(groups.len(), 1);
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let record: serde_json::Value = serde_json::from_str(&emf_of(&groups[0], at)).unwrap();
        assert_eq!(
            record,
            serde_json::json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000_i64,
                    "CloudWatchMetrics": [
                        {"Namespace": "rushcart", "Dimensions": [["Route", "StatusClass"]],
                         "Metrics": [{"Name": "Requests", "Unit": "Count"}]},
                        {"Namespace": "rushcart", "Dimensions": [["Route"]],
                         "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}]},
                    ],
                },
                "Route": "pay-order",
                "StatusClass": "2xx",
                "Requests": 1.0,
                "Latency": 12.5,
            })
        );
    }

    #[test]
    fn samples_that_cannot_share_a_record_get_their_own() {
        // The same dimension with two values, and the same metric twice.
        let samples = [
            sample(COUPON_ISSUES, &["Issued"], 1.0),
            sample(COUPON_GATE, &["Admitted"], 1.0),
            sample(PAYMENTS, &["Succeeded"], 1.0),
            sample(PAYMENTS, &["Failed"], 1.0),
        ];
        let groups: Vec<Vec<&str>> = records_of(samples.iter().flatten())
            .iter()
            .map(|group| group.iter().map(|s| s.spec.name).collect())
            .collect();
        assert_eq!(groups, [vec!["CouponIssues"], vec!["CouponGate"], vec!["Payments"], vec!["Payments"]]);
        let fits = [sample(FEED_LAG, &[], 3.0), sample(FEED_EVENTS, &["Relayed"], 1.0)];
        assert_eq!(records_of(fits.iter().flatten()).len(), 1);
    }

    #[test]
    fn a_sample_outside_the_catalogue_or_with_the_wrong_dimensions_is_dropped() {
        assert!(sample(Metric("NoSuchMetric"), &[], 1.0).is_none());
        assert!(sample(REQUESTS, &["pay-order"], 1.0).is_none());
        assert!(sample(REQUESTS, &["pay-order", "2xx"], 1.0).is_some());
    }

    #[test]
    fn names_are_unique_and_dimension_sets_within_emfs_limits() {
        for (i, spec) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[i + 1..].iter().all(|other| other.name != spec.name), "{} twice", spec.name);
            assert!(spec.dimensions.len() <= 30, "{}", spec.name);
        }
    }
}
