//! The business and technical metrics rushcart emits, as CloudWatch Embedded Metric
//! Format (EMF) records in its log lines.
//!
//! [`CATALOGUE`] is the one list of what the code emits: every metric's name, unit and
//! dimension names, in the namespace [`NAMESPACE`]. The template's alarms and dashboard
//! name metrics from it (a test holds them to it), and `/_local/metrics` sums what the
//! functions wrote.

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
        description: "Outbox events: Relayed, Retried (a publish failed, left for the sweeper), DeadLettered",
    },
    MetricSpec {
        name: "FeedLag",
        unit: Unit::Milliseconds,
        dimensions: &[],
        description: "From an event's commit to its publication",
    },
    MetricSpec {
        name: "TransactionConflictsRetried",
        unit: Unit::Count,
        dimensions: &["Operation"],
        description: "DynamoDB TransactionConflict cancellations retried",
    },
];

/// The spec of the metric named `name`.
pub fn spec(name: &str) -> Option<&'static MetricSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}
