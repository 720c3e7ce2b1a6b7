//! The model's counters, and the JSON `GET /_capacity/metrics` answers with.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::plan::Charge;
use crate::units::Axis;

/// How many throttled partitions the metrics list (the most throttled first).
const LISTED_PARTITIONS: usize = 100;

#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Requests admitted whole.
    admitted: u64,
    /// Requests answered with a throttle (nothing forwarded).
    throttled: u64,
    /// Batches forwarded without some of their items (returned unprocessed).
    partly_throttled: u64,
    /// Requests the model does not charge, forwarded as they came.
    uncharged: u64,
    /// Throttled requests by reason.
    by_reason: BTreeMap<String, u64>,
    /// Throttled requests by (reason, table, index, partition key).
    by_partition: BTreeMap<(String, String, Option<String>, String), u64>,
    /// Units consumed, by table.
    consumed: BTreeMap<String, TableUnits>,
}

#[derive(Debug, Clone, Default)]
struct TableUnits {
    table: Units,
    indexes: BTreeMap<String, Units>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Units {
    read: f64,
    write: f64,
}

impl Units {
    fn add(&mut self, axis: Axis, units: f64) {
        match axis {
            Axis::Read => self.read += units,
            Axis::Write => self.write += units,
        }
    }

    fn json(self) -> Value {
        json!({"read": self.read, "write": self.write})
    }
}

/// How a request fared, for the counters.
pub enum Outcome<'a> {
    Admitted,
    PartlyThrottled(&'a [(String, String, Option<String>, String)]),
    Throttled(&'a [(String, String, Option<String>, String)]),
}

impl Counters {
    pub fn consumed(&mut self, charge: &Charge) {
        let table = self.consumed.entry(charge.target.table.clone()).or_default();
        match &charge.target.index {
            None => table.table.add(charge.axis, charge.units),
            Some(index) => table.indexes.entry(index.clone()).or_default().add(charge.axis, charge.units),
        }
    }

    /// Counts a request; `throttles` are its distinct (reason, table, index, partition).
    pub fn request(&mut self, outcome: Outcome) {
        let throttles = match outcome {
            Outcome::Admitted => {
                self.admitted += 1;
                return;
            }
            Outcome::PartlyThrottled(throttles) => {
                self.partly_throttled += 1;
                throttles
            }
            Outcome::Throttled(throttles) => {
                self.throttled += 1;
                throttles
            }
        };
        let mut reasons: Vec<&String> = throttles.iter().map(|(reason, ..)| reason).collect();
        reasons.sort();
        reasons.dedup();
        for reason in reasons {
            *self.by_reason.entry(reason.clone()).or_default() += 1;
        }
        for throttle in throttles {
            *self.by_partition.entry(throttle.clone()).or_default() += 1;
        }
    }

    pub fn uncharged(&mut self) {
        self.uncharged += 1;
    }

    /// Requests answered with a throttle so far.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    pub fn json(&self) -> Value {
        let mut partitions: Vec<_> = self.by_partition.iter().collect();
        partitions.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let listed: Vec<Value> = partitions
            .iter()
            .take(LISTED_PARTITIONS)
            .map(|((reason, table, index, key), count)| {
                json!({"reason": reason, "table": table, "index": index, "partitionKey": key, "requests": count})
            })
            .collect();
        let consumed: serde_json::Map<String, Value> = self
            .consumed
            .iter()
            .map(|(table, units)| {
                let indexes: serde_json::Map<String, Value> =
                    units.indexes.iter().map(|(name, units)| (name.clone(), units.json())).collect();
                let mut entry = units.table.json();
                entry["indexes"] = Value::Object(indexes);
                (table.clone(), entry)
            })
            .collect();
        json!({
            "requests": {
                "admitted": self.admitted,
                "throttled": self.throttled,
                "partlyThrottled": self.partly_throttled,
                "uncharged": self.uncharged,
            },
            "throttledByReason": self.by_reason,
            "throttledPartitions": self.by_partition.len(),
            "throttled": listed,
            "consumedUnits": consumed,
        })
    }
}
