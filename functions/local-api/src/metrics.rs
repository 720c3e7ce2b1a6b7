//! `/_local/metrics`: what the alarms and the dashboard would see, summed from the
//! CloudWatch Embedded Metric Format records the handlers wrote.
//!
//! The local API installs [`LocalMetrics`] as the process's metrics sink
//! ([`rushcart::metrics::install`]): each record is read back as EMF — the namespace,
//! the dimension sets and metric names of its `_aws` metadata, the values beside it —
//! the way CloudWatch reads a Lambda's log, so the format itself is exercised. Each
//! series (namespace, metric, dimension values) keeps its count, sum and samples, for
//! p50 and p99. `EMF_STDOUT=on` also prints every record, as a Lambda's log would hold
//! it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;

/// A series keeps at most this many samples for its percentiles (its count and sum
/// keep counting).
const MAX_SAMPLES: usize = 200_000;

/// The metrics sink of the local API.
#[derive(Default)]
pub struct LocalMetrics {
    series: Mutex<BTreeMap<SeriesKey, Series>>,
    /// What API Gateway answered itself (throttle, authorizer), by route and status:
    /// no function ran, so only API Gateway's own metrics (`Count`, `4xx`) see them.
    gateway: Mutex<BTreeMap<(String, u16), u64>>,
    echo: bool,
}

/// (namespace, metric, its dimensions and their values).
type SeriesKey = (String, String, BTreeMap<String, String>);

#[derive(Default)]
struct Series {
    unit: String,
    count: u64,
    sum: f64,
    samples: Vec<f64>,
}

impl LocalMetrics {
    /// A sink that also prints each record when `echo`.
    pub fn new(echo: bool) -> LocalMetrics {
        LocalMetrics { series: Mutex::default(), gateway: Mutex::default(), echo }
    }

    /// Reads one EMF record; a record that is not EMF is ignored (and logged).
    pub fn read(&self, record: &str) {
        let Ok(record) = serde_json::from_str::<Value>(record) else {
            tracing::warn!("a metrics record that is not JSON");
            return;
        };
        let directives = record["_aws"]["CloudWatchMetrics"].as_array().cloned().unwrap_or_default();
        let mut series = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for directive in directives {
            let namespace = directive["Namespace"].as_str().unwrap_or_default().to_owned();
            let sets = directive["Dimensions"].as_array().cloned().unwrap_or_default();
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let Some(name) = metric["Name"].as_str() else { continue };
                let values: Vec<f64> = match &record[name] {
                    Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
                    value => value.as_f64().into_iter().collect(),
                };
                for set in &sets {
                    let dimensions: BTreeMap<String, String> = set
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|d| (d.to_owned(), record[d].as_str().unwrap_or_default().to_owned()))
                        .collect();
                    let entry = series.entry((namespace.clone(), name.to_owned(), dimensions)).or_default();
                    entry.unit = metric["Unit"].as_str().unwrap_or("None").to_owned();
                    for value in &values {
                        entry.count += 1;
                        entry.sum += value;
                        if entry.samples.len() < MAX_SAMPLES {
                            entry.samples.push(*value);
                        }
                    }
                }
            }
        }
    }

    /// One answer API Gateway gave itself on `route` (`GET /api/v1/...`).
    pub fn gateway_answer(&self, route: &str, status: http::StatusCode) {
        let mut gateway = self.gateway.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *gateway.entry((route.to_owned(), status.as_u16())).or_default() += 1;
    }

    /// Every series: `{"metrics": [{"namespace", "name", "dimensions", "unit", "count",
    /// "sum", "p50", "p99", "max"}]}`, by namespace, name and dimensions.
    pub fn snapshot(&self) -> Value {
        let series = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let metrics: Vec<Value> = series
            .iter()
            .map(|((namespace, name, dimensions), series)| {
                let mut sorted = series.samples.clone();
                sorted.sort_by(f64::total_cmp);
                serde_json::json!({
                    "namespace": namespace,
                    "name": name,
                    "dimensions": dimensions,
                    "unit": series.unit,
                    "count": series.count,
                    "sum": series.sum,
                    "p50": percentile(&sorted, 0.50),
                    "p99": percentile(&sorted, 0.99),
                    "max": sorted.last(),
                })
            })
            .collect();
        let gateway = self.gateway.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let gateway: Vec<Value> = gateway
            .iter()
            .map(|((route, status), count)| serde_json::json!({ "route": route, "status": status, "count": count }))
            .collect();
        serde_json::json!({ "metrics": metrics, "gateway": gateway })
    }

    /// Forgets every series (a drill starts from zero).
    pub fn reset(&self) {
        self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        self.gateway.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

impl rushcart::metrics::Sink for LocalMetrics {
    fn write(&self, record: &str) {
        if self.echo {
            println!("{record}");
        }
        self.read(record);
    }
}

static METRICS: std::sync::OnceLock<LocalMetrics> = std::sync::OnceLock::new();

/// This process's metrics, summed.
pub fn local() -> &'static LocalMetrics {
    METRICS.get_or_init(|| LocalMetrics::new(std::env::var("EMF_STDOUT").as_deref() == Ok("on")))
}

/// Makes [`local`] the sink of every metric this process emits (once; later calls do
/// nothing).
pub fn install() {
    struct Local;
    impl rushcart::metrics::Sink for Local {
        fn write(&self, record: &str) {
            rushcart::metrics::Sink::write(local(), record);
        }
    }
    rushcart::metrics::install(Box::new(Local));
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rushcart::metrics::{emf, spec, Sample};

    fn record(name: &'static str, dimensions: &[&str], value: f64) -> String {
        let sample = Sample { spec: spec(name).expect("in the catalogue"), dimensions, value };
        emf(&sample, time::OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn records_are_read_back_as_emf_and_summed_per_series() {
        let metrics = LocalMetrics::new(false);
        for ms in 1..=100 {
            metrics.read(&record("Latency", &["pay-order"], f64::from(ms)));
        }
        metrics.read(&record("Requests", &["pay-order", "2xx"], 1.0));
        metrics.read(&record("Requests", &["pay-order", "2xx"], 1.0));
        metrics.read(&record("Requests", &["pay-order", "4xx"], 1.0));
        metrics.read("not json");
        let snapshot = metrics.snapshot();
        let find = |name: &str, dimension: &str| {
            snapshot["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name && m["dimensions"].to_string().contains(dimension))
                .cloned()
                .unwrap_or_else(|| panic!("{name} {dimension} in {snapshot}"))
        };
        let latency = find("Latency", "pay-order");
        assert_eq!(
            (latency["count"].as_u64(), latency["p50"].as_f64(), latency["p99"].as_f64()),
            (Some(100), Some(50.0), Some(99.0))
        );
        assert_eq!(latency["unit"], "Milliseconds");
        assert_eq!(latency["namespace"], "rushcart");
        assert_eq!(find("Requests", "2xx")["sum"].as_f64(), Some(2.0));
        assert_eq!(find("Requests", "4xx")["count"].as_u64(), Some(1));
        metrics.reset();
        assert_eq!(metrics.snapshot()["metrics"].as_array().map(Vec::len), Some(0));
    }
}
