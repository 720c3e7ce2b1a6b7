//! The capacity model: a token bucket per partition key value, per table and per
//! index, per axis (reads and writes apart), and an optional ceiling per table. Pure:
//! the caller passes the time.
//!
//! A partition's bucket refills at its limit × `scale` a second (1,000 write units and
//! 3,000 read units at scale 1) and holds one second of that plus [`BURST_SECONDS`] of
//! it; it starts full. So a partition pays exactly `limit × scale × (1 + 0.05)` units
//! before it refills, and over any `t` seconds at most `limit × scale × (t + 1.05)`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::bucket::Bucket;
use crate::metrics::{Counters, Outcome};
use crate::plan::{Admission, Charge, Plan, Target};
use crate::units::Axis;

/// The burst a bucket holds beyond one second of its limit, in seconds of the limit.
///
/// DynamoDB documents a partition's limit per second, with no burst above it (the
/// 300 s of unused capacity it keeps applies to a provisioned table's own throughput,
/// and is still served within the partition limits). The model's bucket holds that one
/// second, plus this much as a tolerance for measuring arrival at the proxy rather than
/// at the partition. Bounded at 5% of a second's units, it stays under 5% of what a
/// partition pays in any run of a second or more.
pub const BURST_SECONDS: f64 = 0.05;

/// How many buckets the model keeps before it drops the full ones (a full bucket is
/// the same as no bucket).
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Partition limits × this (`CAPACITY_SCALE`: 0.2 makes a partition's write limit
    /// 200 units a second).
    pub scale: f64,
    /// A ceiling on each table's own units a second, reads and writes apart
    /// (`CAPACITY_TABLE_MAX`), like an on-demand table's maximum throughput. Not
    /// scaled, and not charged with its indexes' units.
    pub table_max: Option<f64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { scale: 1.0, table_max: None }
    }
}

impl Limits {
    /// A partition's units a second on `axis`.
    pub fn partition_rate(&self, axis: Axis) -> f64 {
        axis.partition_limit() * self.scale
    }
}

/// What a bucket holds: one second of `rate` plus the burst.
fn capacity(rate: f64) -> f64 {
    rate + rate * BURST_SECONDS
}

/// Which limit refused a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A partition's own (`…KeyRangeThroughputExceeded`).
    Partition,
    /// The table's ceiling (`…MaxOnDemandThroughputExceeded`).
    TableMax,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub target: Target,
    pub axis: Axis,
    pub limit: Limit,
}

impl Refusal {
    /// DynamoDB's throttling reason: resource, operation, limit
    /// (`TableWriteKeyRangeThroughputExceeded`, `IndexReadKeyRangeThroughputExceeded` …).
    pub fn reason(&self) -> String {
        let resource = if self.target.index.is_some() { "Index" } else { "Table" };
        let limit = match self.limit {
            Limit::Partition => "KeyRangeThroughputExceeded",
            Limit::TableMax => "MaxOnDemandThroughputExceeded",
        };
        format!("{resource}{}{limit}", self.axis.word())
    }
}

/// The model's answer to a plan: each item's refusals (none: admitted).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub refused: Vec<Vec<Refusal>>,
}

impl Verdict {
    pub fn admitted_all(&self) -> bool {
        self.refused.iter().all(Vec::is_empty)
    }

    pub fn admitted_none(&self) -> bool {
        self.refused.iter().all(|refusals| !refusals.is_empty())
    }

    pub fn refusals(&self) -> impl Iterator<Item = &Refusal> {
        self.refused.iter().flatten()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Partition { table: String, index: Option<String>, partition: String, axis: Axis },
    Table { table: String, axis: Axis },
}

#[derive(Debug, Clone)]
pub struct Model {
    limits: Limits,
    buckets: HashMap<Slot, Bucket>,
    prune_above: usize,
    counters: Counters,
}

impl Model {
    pub fn new(limits: Limits) -> Model {
        Model { limits, buckets: HashMap::new(), prune_above: PRUNE_ABOVE, counters: Counters::default() }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Puts `limits` in force from now on (a throttle storm lowers the scale, then puts
    /// it back). Every bucket starts again full at the new limits: what a partition
    /// had saved or owed under the old ones is forgotten.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.buckets.clear();
    }

    /// Admits `plan` at `now` and takes its charges, or refuses it: all of it
    /// ([`Admission::Whole`], [`Admission::Transaction`]) or item by item
    /// ([`Admission::EachItem`]). A refused item takes nothing.
    pub fn admit(&mut self, now: Duration, plan: &Plan) -> Verdict {
        let mut refused: Vec<Vec<Refusal>> = vec![Vec::new(); plan.items.len()];
        let mut taken: Vec<(Slot, f64)> = Vec::new();
        for (at, item) in plan.items.iter().enumerate() {
            let mut item_taken = Vec::new();
            for charge in &item.charges {
                for (slot, limit) in self.slots(charge) {
                    let bucket = self.bucket(&slot, now);
                    if bucket.fits(charge.units) {
                        bucket.take(charge.units);
                        item_taken.push((slot, charge.units));
                    } else {
                        let refusal = Refusal { target: charge.target.clone(), axis: charge.axis, limit };
                        if !refused[at].contains(&refusal) {
                            refused[at].push(refusal);
                        }
                    }
                }
            }
            if refused[at].is_empty() || plan.admission != Admission::EachItem {
                taken.extend(item_taken);
            } else {
                self.give_back(item_taken);
            }
        }
        let verdict = Verdict { refused };
        let whole_refused = plan.admission != Admission::EachItem && !verdict.admitted_all();
        if whole_refused {
            self.give_back(taken);
        } else {
            for (item, refusals) in plan.items.iter().zip(&verdict.refused) {
                if refusals.is_empty() {
                    item.charges.iter().for_each(|charge| self.counters.consumed(charge));
                }
            }
        }
        let throttles = throttles(&verdict);
        self.counters.request(if verdict.admitted_all() {
            Outcome::Admitted
        } else if whole_refused || verdict.admitted_none() {
            Outcome::Throttled(&throttles)
        } else {
            Outcome::PartlyThrottled(&throttles)
        });
        self.prune(now);
        verdict
    }

    /// Takes what a read cost beyond the minimum it was admitted with: no refusal now,
    /// the read has happened; a bucket may go below zero.
    pub fn settle(&mut self, now: Duration, charges: &[Charge]) {
        for charge in charges.iter().filter(|charge| charge.units > 0.0) {
            for (slot, _) in self.slots(charge) {
                self.bucket(&slot, now).take(charge.units);
            }
            self.counters.consumed(charge);
        }
    }

    /// Counts a request forwarded uncharged.
    pub fn uncharged(&mut self) {
        self.counters.uncharged();
    }

    /// What a partition's bucket holds at `now` (a fresh one: full).
    pub fn tokens(&mut self, now: Duration, target: &Target, axis: Axis) -> Option<f64> {
        let partition = target.partition.clone()?;
        let slot = Slot::Partition { table: target.table.clone(), index: target.index.clone(), partition, axis };
        Some(self.bucket(&slot, now).tokens())
    }

    /// The counters and the limits in force, as `GET /_capacity/metrics` shows them.
    pub fn metrics(&self) -> Value {
        let mut metrics = self.counters.json();
        metrics["limits"] = json!({
            "scale": self.limits.scale,
            "partitionUnitsPerSecond": {
                "read": self.limits.partition_rate(Axis::Read),
                "write": self.limits.partition_rate(Axis::Write),
            },
            "burstSeconds": BURST_SECONDS,
            "tableMaxUnitsPerSecond": self.limits.table_max,
        });
        metrics
    }

    /// The buckets a charge draws on: its partition's, and the table's ceiling for a
    /// table (not an index) charge when there is one.
    fn slots(&self, charge: &Charge) -> Vec<(Slot, Limit)> {
        let target = &charge.target;
        let mut slots = Vec::with_capacity(2);
        if let Some(partition) = &target.partition {
            let slot = Slot::Partition {
                table: target.table.clone(),
                index: target.index.clone(),
                partition: partition.clone(),
                axis: charge.axis,
            };
            slots.push((slot, Limit::Partition));
        }
        if self.limits.table_max.is_some() && target.index.is_none() {
            slots.push((Slot::Table { table: target.table.clone(), axis: charge.axis }, Limit::TableMax));
        }
        slots
    }

    fn bucket(&mut self, slot: &Slot, now: Duration) -> &mut Bucket {
        let rate = match slot {
            Slot::Partition { axis, .. } => self.limits.partition_rate(*axis),
            Slot::Table { .. } => self.limits.table_max.unwrap_or(f64::INFINITY),
        };
        let bucket = self.buckets.entry(slot.clone()).or_insert_with(|| Bucket::full(rate, capacity(rate), now));
        bucket.refill(now);
        bucket
    }

    fn give_back(&mut self, taken: Vec<(Slot, f64)>) {
        for (slot, units) in taken {
            if let Some(bucket) = self.buckets.get_mut(&slot) {
                bucket.give_back(units);
            }
        }
    }

    fn prune(&mut self, now: Duration) {
        if self.buckets.len() <= self.prune_above {
            return;
        }
        self.buckets.retain(|_, bucket| {
            bucket.refill(now);
            !bucket.is_full()
        });
        self.prune_above = PRUNE_ABOVE.max(2 * self.buckets.len());
    }
}

/// A verdict's distinct (reason, table, index, partition key), for the counters.
fn throttles(verdict: &Verdict) -> Vec<(String, String, Option<String>, String)> {
    let mut throttles: Vec<_> = verdict
        .refusals()
        .map(|refusal| {
            let target = &refusal.target;
            let partition = target.partition.clone().unwrap_or_else(|| "(table)".to_owned());
            (refusal.reason(), target.table.clone(), target.index.clone(), partition)
        })
        .collect();
    throttles.sort();
    throttles.dedup();
    throttles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanItem;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn target(index: Option<&str>, partition: &str) -> Target {
        let arn = match index {
            Some(index) => format!("arn:table/t/index/{index}"),
            None => "arn:table/t".to_owned(),
        };
        Target { table: "t".into(), index: index.map(str::to_owned), partition: Some(partition.into()), arn }
    }

    fn charge(index: Option<&str>, partition: &str, axis: Axis, units: f64) -> Charge {
        Charge { target: target(index, partition), axis, units }
    }

    fn plan(admission: Admission, items: Vec<Vec<Charge>>) -> Plan {
        let items = items
            .into_iter()
            .enumerate()
            .map(|(position, charges)| PlanItem { table: "t".into(), position, charges })
            .collect();
        Plan { admission, items }
    }

    fn write(partition: &str, units: f64) -> Plan {
        plan(Admission::Whole, vec![vec![charge(None, partition, Axis::Write, units)]])
    }

    /// How many one-unit writes to `partition` it admits at `now` before the first refusal.
    fn writes_admitted(model: &mut Model, now: Duration, partition: &str) -> usize {
        let mut admitted = 0;
        while model.admit(now, &write(partition, 1.0)).admitted_all() {
            admitted += 1;
            assert!(admitted < 100_000, "never refused");
        }
        admitted
    }

    #[test]
    fn a_partition_throttles_exactly_past_its_scaled_limit_for_one_second_plus_the_burst() {
        // Scale 0.1: 100 write units a second, 5 more of burst.
        let mut model = Model::new(Limits { scale: 0.1, table_max: None });
        assert_eq!(writes_admitted(&mut model, ms(0), "S:HOT"), 105);
        let refused = model.admit(ms(0), &write("S:HOT", 1.0));
        assert_eq!(
            refused.refusals().map(Refusal::reason).collect::<Vec<_>>(),
            ["TableWriteKeyRangeThroughputExceeded"]
        );
        // Reads draw on their own budget: 300 a second, 315 in the bucket.
        let read = plan(Admission::Whole, vec![vec![charge(None, "S:HOT", Axis::Read, 315.0)]]);
        assert!(model.admit(ms(0), &read).admitted_all());
        let read = plan(Admission::Whole, vec![vec![charge(None, "S:HOT", Axis::Read, 0.5)]]);
        assert_eq!(
            model.admit(ms(0), &read).refusals().map(Refusal::reason).collect::<Vec<_>>(),
            ["TableReadKeyRangeThroughputExceeded"]
        );
    }

    #[test]
    fn at_scale_one_a_partition_takes_1050_write_units_and_3150_read_units_at_once() {
        let mut model = Model::new(Limits::default());
        assert_eq!(writes_admitted(&mut model, ms(0), "S:HOT"), 1050);
        let reads = plan(Admission::Whole, vec![vec![charge(None, "S:HOT", Axis::Read, 3150.0)]]);
        assert!(model.admit(ms(0), &reads).admitted_all());
        let more = plan(Admission::Whole, vec![vec![charge(None, "S:HOT", Axis::Read, 0.5)]]);
        assert!(!model.admit(ms(0), &more).admitted_all());
    }

    #[test]
    fn a_partition_refills_at_its_scaled_limit() {
        let mut model = Model::new(Limits { scale: 0.1, table_max: None });
        assert_eq!(writes_admitted(&mut model, ms(0), "S:HOT"), 105);
        // 100 a second: 10 units in 100 ms, 50 in half a second, never more than 105.
        assert_eq!(writes_admitted(&mut model, ms(100), "S:HOT"), 10);
        assert_eq!(writes_admitted(&mut model, ms(600), "S:HOT"), 50);
        assert_eq!(writes_admitted(&mut model, ms(60_000), "S:HOT"), 105);
    }

    #[test]
    fn new_limits_hold_from_the_moment_they_are_set_and_the_old_ones_come_back() {
        let mut model = Model::new(Limits { scale: 0.1, table_max: None });
        assert_eq!(writes_admitted(&mut model, ms(0), "S:HOT"), 105);
        model.set_limits(Limits { scale: 0.01, table_max: None });
        assert_eq!(writes_admitted(&mut model, ms(0), "S:HOT"), 10);
        assert_eq!(writes_admitted(&mut model, ms(1_000), "S:HOT"), 10);
        model.set_limits(Limits { scale: 0.1, table_max: None });
        assert_eq!(model.limits().scale, 0.1);
        assert_eq!(writes_admitted(&mut model, ms(1_000), "S:HOT"), 105);
    }

    #[test]
    fn other_partitions_are_not_held_back_by_a_hot_one() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        assert_eq!(writes_admitted(&mut model, ms(0), "S:HOT"), 10);
        for key in 0..1000 {
            assert!(model.admit(ms(0), &write(&format!("S:COLD#{key}"), 1.0)).admitted_all());
        }
    }

    #[test]
    fn an_index_partition_throttles_independently_of_the_tables() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        // Ten items, each on a partition of its own, all in one index partition.
        let put = |key: usize| {
            plan(
                Admission::Whole,
                vec![vec![
                    charge(None, &format!("S:PRODUCT#{key}"), Axis::Write, 1.0),
                    charge(Some("gsi1"), "S:PRODUCTS", Axis::Write, 1.0),
                ]],
            )
        };
        for key in 0..10 {
            assert!(model.admit(ms(0), &put(key)).admitted_all());
        }
        let refused = model.admit(ms(0), &put(10));
        let reasons: Vec<_> = refused.refusals().map(|r| (r.reason(), r.target.arn.clone())).collect();
        assert_eq!(reasons, [("IndexWriteKeyRangeThroughputExceeded".to_owned(), "arn:table/t/index/gsi1".to_owned())]);
        // The refused put took nothing from its table partition.
        let product = target(None, "S:PRODUCT#10");
        assert_eq!(model.tokens(ms(0), &product, Axis::Write), Some(10.5));
        // And a hot table partition leaves the index alone.
        assert_eq!(writes_admitted(&mut model, ms(0), "S:PRODUCT#0"), 9);
    }

    #[test]
    fn a_transaction_is_refused_whole_naming_exactly_the_items_that_did_not_fit() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        // The hot partition has 2.5 units left.
        for _ in 0..8 {
            assert!(model.admit(ms(0), &write("S:HOT", 1.0)).admitted_all());
        }
        // Transactional items cost 2 each: the first fits, the third no longer does.
        let transaction = plan(
            Admission::Transaction,
            vec![
                vec![charge(None, "S:HOT", Axis::Write, 2.0)],
                vec![charge(None, "S:COLD", Axis::Write, 2.0)],
                vec![charge(None, "S:HOT", Axis::Write, 2.0)],
            ],
        );
        let verdict = model.admit(ms(0), &transaction);
        let refused: Vec<bool> = verdict.refused.iter().map(|r| !r.is_empty()).collect();
        assert_eq!(refused, [false, false, true]);
        // Nothing was taken: the hot partition still pays two 1-unit writes.
        assert_eq!(model.tokens(ms(0), &target(None, "S:HOT"), Axis::Write), Some(2.5));
        assert_eq!(model.tokens(ms(0), &target(None, "S:COLD"), Axis::Write), Some(10.5));
    }

    #[test]
    fn a_batch_admits_the_items_that_fit_and_refuses_the_rest() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        let batch = plan(
            Admission::EachItem,
            (0..12)
                .map(|_| vec![charge(None, "S:HOT", Axis::Write, 1.0)])
                .chain([vec![charge(None, "S:COLD", Axis::Write, 1.0)]])
                .collect(),
        );
        let verdict = model.admit(ms(0), &batch);
        let admitted = verdict.refused.iter().filter(|r| r.is_empty()).count();
        assert_eq!(admitted, 10 + 1);
        assert!(verdict.refused[12].is_empty(), "the cold item is admitted");
    }

    #[test]
    fn the_table_ceiling_caps_the_table_across_partitions_but_not_its_indexes() {
        let mut model = Model::new(Limits { scale: 1.0, table_max: Some(20.0) });
        for key in 0..21 {
            assert!(model.admit(ms(0), &write(&format!("S:K{key}"), 1.0)).admitted_all(), "{key}");
        }
        let refused = model.admit(ms(0), &write("S:K21", 1.0));
        assert_eq!(
            refused.refusals().map(Refusal::reason).collect::<Vec<_>>(),
            ["TableWriteMaxOnDemandThroughputExceeded"]
        );
        let index = plan(Admission::Whole, vec![vec![charge(Some("gsi1"), "S:G", Axis::Write, 1.0)]]);
        assert!(model.admit(ms(0), &index).admitted_all());
        // 20 a second: one unit every 50 ms.
        assert!(model.admit(ms(50), &write("S:K22", 1.0)).admitted_all());
        assert!(!model.admit(ms(50), &write("S:K23", 1.0)).admitted_all());
    }

    #[test]
    fn a_read_settled_past_its_bucket_holds_the_partition_until_refilled() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        // 30 read units a second, 31.5 in the bucket; a strong read takes 1 up front.
        let read = plan(Admission::Whole, vec![vec![charge(None, "S:HOT", Axis::Read, 1.0)]]);
        assert!(model.admit(ms(0), &read).admitted_all());
        // It found 100 units' worth.
        model.settle(ms(0), &[charge(None, "S:HOT", Axis::Read, 99.0)]);
        assert_eq!(model.tokens(ms(0), &target(None, "S:HOT"), Axis::Read), Some(-68.5));
        assert!(!model.admit(ms(2000), &read).admitted_all(), "-8.5 after 2 s");
        assert!(model.admit(ms(3000), &read).admitted_all(), "21.5 after 3 s");
    }

    #[test]
    fn the_counters_name_the_throttled_partitions_and_the_units_consumed() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        writes_admitted(&mut model, ms(0), "S:HOT");
        let metrics = model.metrics();
        assert_eq!(metrics["requests"]["admitted"], 10);
        assert_eq!(metrics["requests"]["throttled"], 1);
        assert_eq!(metrics["throttledByReason"]["TableWriteKeyRangeThroughputExceeded"], 1);
        assert_eq!(metrics["throttled"][0]["partitionKey"], "S:HOT");
        assert_eq!(metrics["consumedUnits"]["t"]["write"], 10.0);
        assert_eq!(metrics["limits"]["partitionUnitsPerSecond"]["write"], 10.0);
    }

    #[test]
    fn full_buckets_are_dropped_once_there_are_many() {
        let mut model = Model::new(Limits { scale: 0.01, table_max: None });
        for key in 0..PRUNE_ABOVE {
            model.admit(ms(0), &write(&format!("S:K{key}"), 1.0));
        }
        assert_eq!(model.buckets.len(), PRUNE_ABOVE, "none dropped yet");
        model.admit(ms(60_000), &write("S:LAST", 1.0));
        assert_eq!(model.buckets.len(), 1, "every refilled bucket went, the one just used stayed");
    }
}
