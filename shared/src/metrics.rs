//! The business and technical metrics rushcart emits, as CloudWatch Embedded Metric
//! Format (EMF) records in its log lines.
//!
//! [`CATALOGUE`] is the one list of what the code emits: every metric's name, unit and
//! dimension names, in the namespace [`NAMESPACE`]. The template's alarms and dashboard
//! name metrics from it (a test holds them to it), and `/_local/metrics` sums what the
//! functions wrote.
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

/// Every metric the code emits.
pub const CATALOGUE: &[MetricSpec] = &[
    MetricSpec {
        name: "Requests",
        unit: Unit::Count,
        dimensions: &["Route", "StatusClass"],
        description: "Answered requests, by route and status class (2xx, 4xx, 5xx)",
    },
    MetricSpec {
        name: "Latency",
        unit: Unit::Milliseconds,
        dimensions: &["Route"],
        description: "Time from a function receiving a request to its answer",
    },
    MetricSpec {
        name: "CouponIssues",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "Coupon issue attempts: Issued, SoldOut, AlreadyIssued, Expired",
    },
    MetricSpec {
        name: "CouponGate",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "The Redis admission gate: Admitted, Refused (sold out or held), Bypassed (Redis unavailable)",
    },
    MetricSpec {
        name: "CouponBudget",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description:
            "Each user's budget of coupon issue requests: Within, Exceeded (429), Bypassed (Redis unavailable)",
    },
    MetricSpec {
        name: "Payments",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "Payment attempts: Succeeded, Failed",
    },
    MetricSpec {
        name: "PaymentFailures",
        unit: Unit::Count,
        dimensions: &["Reason"],
        description: "Refused payments by reason: INSUFFICIENT_BALANCE, OUT_OF_STOCK, …",
    },
    MetricSpec {
        name: "Cancellations",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "Cancels that changed an order: Cancelled (unpaid), Refunded (paid)",
    },
    MetricSpec {
        name: "TopCache",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "Top-5 reads: Hit, Miss (recomputed), Fallback (Redis down, answered from DynamoDB)",
    },
    MetricSpec {
        name: "FeedEvents",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "Feed events: Relayed and Retried (the relay's publish failed; the sweeper republishes), \
            Delivered, Duplicate (delivered before), DeliveryFailed (SQS retries it, then dead-letters it) and \
            DeliveredUnrecorded (posted, but recording it failed: a retry may post it again, with the same \
            Idempotency-Key)",
    },
    MetricSpec {
        name: "FeedLag",
        unit: Unit::Milliseconds,
        dimensions: &[],
        description: "From an event's commit to its publication",
    },
    MetricSpec {
        name: "RedisConnect",
        unit: Unit::Count,
        dimensions: &["Outcome"],
        description: "Connect attempts to Redis: Connected, Failed (down, refused, TLS refused; retried with \
            backoff while the gate, the budget and the cache step aside)",
    },
    MetricSpec {
        name: "TransactionConflictsRetried",
        unit: Unit::Count,
        dimensions: &["Operation"],
        description:
            "DynamoDB TransactionConflict cancellations retried, by the operation's verb (pay, issue, refund …)",
    },
];

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

/// Counts `n` of the metric `name` with `dimensions` (values in the spec's order).
pub fn count(name: &'static str, dimensions: &[&str], n: u64) {
    record(&[sample(name, dimensions, n as f64)]);
}

/// Records a duration of the metric `name`.
pub fn duration(name: &'static str, dimensions: &[&str], elapsed: std::time::Duration) {
    record(&[sample(name, dimensions, millis(elapsed))]);
}

/// A duration in milliseconds, as EMF values of [`Unit::Milliseconds`] are.
pub fn millis(elapsed: std::time::Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// One value of the metric `name`, for [`record`]; `None` (and an error logged: a bug,
/// caught by tests, never fatal) for a name outside the catalogue or the wrong number
/// of dimension values.
pub fn sample<'a>(name: &'static str, dimensions: &'a [&'a str], value: f64) -> Option<Sample<'a>> {
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
        let samples = [sample("Requests", &class, 1.0), sample("Latency", &class[..1], 12.5)];
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
            sample("CouponIssues", &["Issued"], 1.0),
            sample("CouponGate", &["Admitted"], 1.0),
            sample("Payments", &["Succeeded"], 1.0),
            sample("Payments", &["Failed"], 1.0),
        ];
        let groups: Vec<Vec<&str>> = records_of(samples.iter().flatten())
            .iter()
            .map(|group| group.iter().map(|s| s.spec.name).collect())
            .collect();
        assert_eq!(groups, [vec!["CouponIssues"], vec!["CouponGate"], vec!["Payments"], vec!["Payments"]]);
        let fits = [sample("FeedLag", &[], 3.0), sample("FeedEvents", &["Relayed"], 1.0)];
        assert_eq!(records_of(fits.iter().flatten()).len(), 1);
    }

    #[test]
    fn a_sample_outside_the_catalogue_or_with_the_wrong_dimensions_is_dropped() {
        assert!(sample("NoSuchMetric", &[], 1.0).is_none());
        assert!(sample("Requests", &["pay-order"], 1.0).is_none());
        assert!(sample("Requests", &["pay-order", "2xx"], 1.0).is_some());
    }

    /// The catalogue is the truth both ways: the code emits only its metrics, and every
    /// one of them is emitted somewhere (so an alarm on it can fire).
    #[test]
    fn the_code_emits_exactly_the_catalogue() {
        let sources = [
            include_str!("http/mod.rs"),
            include_str!("http/orders.rs"),
            include_str!("coupons/use_cases.rs"),
            include_str!("orders/use_cases.rs"),
            include_str!("top.rs"),
            include_str!("feed/mod.rs"),
            include_str!("adapters/dynamodb/transaction.rs"),
            include_str!("adapters/redis_connection.rs"),
        ];
        let mut emitted = std::collections::BTreeSet::new();
        for source in sources {
            for call in ["metrics::count(\"", "metrics::duration(\"", "metrics::sample(\""] {
                for (at, _) in source.match_indices(call) {
                    let rest = &source[at + call.len()..];
                    emitted.insert(&rest[..rest.find('"').unwrap_or(0)]);
                }
            }
        }
        let catalogue: std::collections::BTreeSet<&str> = CATALOGUE.iter().map(|spec| spec.name).collect();
        assert_eq!(emitted, catalogue);
    }

    #[test]
    fn names_are_unique_and_dimension_sets_within_emfs_limits() {
        for (i, spec) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[i + 1..].iter().all(|other| other.name != spec.name), "{} twice", spec.name);
            assert!(spec.dimensions.len() <= 30, "{}", spec.name);
        }
    }
}
