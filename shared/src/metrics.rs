//! The business and technical metrics rushcart emits, as CloudWatch Embedded Metric
//! Format (EMF) records in its log lines.
//!
//! [`CATALOGUE`] is the one list of what the code emits: every metric's name, unit and
//! dimension names, in the namespace [`NAMESPACE`]. The template's alarms and dashboard
//! name metrics from it (a test holds them to it), and `/_local/metrics` sums what the
//! functions wrote.
//!
//! [`count`] and [`duration`] write one EMF record each, a JSON line on stdout, where
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
            Delivered, Duplicate (delivered before) and DeliveryFailed (SQS retries it, then dead-letters it)",
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
    emit(name, dimensions, n as f64);
}

/// Records a duration of the metric `name`.
pub fn duration(name: &'static str, dimensions: &[&str], elapsed: std::time::Duration) {
    emit(name, dimensions, elapsed.as_secs_f64() * 1000.0);
}

fn emit(name: &'static str, dimensions: &[&str], value: f64) {
    let Some(spec) = spec(name) else {
        // A name outside the catalogue is a bug; it is caught by tests, never fatal.
        tracing::error!(metric = name, "a metric outside the catalogue");
        return;
    };
    if spec.dimensions.len() != dimensions.len() {
        tracing::error!(metric = name, "a metric with the wrong dimensions");
        return;
    }
    let sample = Sample { spec, dimensions, value };
    let record = emf(&sample, time::OffsetDateTime::now_utc());
    match SINK.get() {
        Some(sink) => sink.write(&record),
        None => println!("{record}"),
    }
}

/// The EMF record of one sample: the `_aws` metadata (namespace, the dimension set,
/// the metric and its unit) beside the dimension values and the value itself.
pub fn emf(sample: &Sample<'_>, at: time::OffsetDateTime) -> String {
    let mut record = serde_json::Map::new();
    let spec = sample.spec;
    record.insert(
        "_aws".to_owned(),
        serde_json::json!({
            "Timestamp": (at.unix_timestamp_nanos() / 1_000_000) as i64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [spec.dimensions],
                "Metrics": [{ "Name": spec.name, "Unit": spec.unit.as_str() }],
            }],
        }),
    );
    for (name, value) in spec.dimensions.iter().zip(sample.dimensions) {
        record.insert((*name).to_owned(), serde_json::Value::from(*value));
    }
    record.insert(spec.name.to_owned(), serde_json::json!(sample.value));
    serde_json::Value::Object(record).to_string()
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
            for call in ["metrics::count(\"", "metrics::duration(\""] {
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
