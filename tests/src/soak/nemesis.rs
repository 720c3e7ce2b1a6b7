//! The nemesis's schedule: from a seed, a calm of 20–60 s (by default), then a fault for
//! a few seconds, then calm again, until the soak's end. The same seed gives the same
//! schedule, so any run can be replayed.

use serde::{Deserialize, Serialize};

/// A dependency of the local API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dependency {
    /// The DynamoDB engine (and its stream).
    Engine,
    /// moto: SQS and Kinesis.
    Moto,
    Redis,
}

impl Dependency {
    pub const ALL: [Dependency; 3] = [Dependency::Engine, Dependency::Moto, Dependency::Redis];

    /// Its name in the stack's `pids` file.
    pub fn process(self) -> &'static str {
        match self {
            Dependency::Engine => "dynamodb",
            Dependency::Moto => "moto",
            Dependency::Redis => "redis",
        }
    }
}

/// What the nemesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// The process stopped (SIGSTOP) and resumed: every connection freezes.
    Pause { dependency: Dependency },
    /// Every connection through its proxy dropped, every new one refused.
    Cut { dependency: Dependency },
    /// Each answer through its proxy held back this long.
    Slow { dependency: Dependency, delay_ms: u64 },
    /// The local API killed with SIGKILL mid-flight (as Lambda ends an instance at its
    /// timeout), and started again when the fault ends.
    KillApi,
    /// The feed's process (relay, sweeper, consumer) killed with SIGKILL, and started
    /// again when the fault ends.
    KillFeed,
    /// The engine's next transactions answered `TransactionConflict`, this many.
    Conflicts { count: u64 },
    /// Under the capacity model (`CAPACITY=aws make soak`): every partition's limits cut
    /// to a `divisor`th, so the hot items (a coupon's shards, a product's buckets, a busy
    /// user) throttle; then put back.
    ThrottleStorm { divisor: u64 },
}

impl Fault {
    /// Whether it stands between a payment and the data platform (moto, or the feed's
    /// own process): felt as deliveries held back rather than as answers.
    pub fn holds_up_the_feed(&self) -> bool {
        match self {
            Fault::Pause { dependency } | Fault::Cut { dependency } | Fault::Slow { dependency, .. } => {
                *dependency == Dependency::Moto
            }
            Fault::KillFeed => true,
            Fault::KillApi | Fault::Conflicts { .. } | Fault::ThrottleStorm { .. } => false,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Fault::Pause { dependency } => format!("pause {}", dependency.process()),
            Fault::Cut { dependency } => format!("cut {}", dependency.process()),
            Fault::Slow { dependency, delay_ms } => format!("slow {} ({delay_ms} ms)", dependency.process()),
            Fault::KillApi => "kill -9 the API".to_owned(),
            Fault::KillFeed => "kill -9 the feed".to_owned(),
            Fault::Conflicts { count } => format!("{count} transaction conflicts"),
            Fault::ThrottleStorm { divisor } => format!("throttle storm (limits / {divisor})"),
        }
    }
}

/// One fault in the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// Milliseconds after the soak's start.
    pub at_ms: u64,
    pub length_ms: u64,
    pub fault: Fault,
}

/// How the schedule is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub seed: u64,
    /// The soak's length.
    pub seconds: u64,
    /// The calm before each fault, drawn between these (seconds).
    pub calm: (u64, u64),
    /// Whether throttle storms are among the faults (the capacity model is on).
    pub storms: bool,
}

impl Plan {
    /// The schedule: faults until the soak's last 10 s, which stay calm so the load's
    /// last requests meet a healed stack.
    pub fn schedule(&self) -> Vec<Planned> {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let end_ms = self.seconds.saturating_sub(10) * 1000;
        let mut at_ms = 0;
        let mut planned = Vec::new();
        loop {
            at_ms += rng.u64(self.calm.0..=self.calm.1.max(self.calm.0)) * 1000;
            let (fault, length_ms) = draw(&mut rng, self.storms);
            if at_ms + length_ms > end_ms {
                return planned;
            }
            planned.push(Planned { at_ms, length_ms, fault });
            at_ms += length_ms;
        }
    }
}

/// One fault and how long it lasts: each kind about as likely as each other. Without
/// storms the draws are those of a plan that never had them.
fn draw(rng: &mut fastrand::Rng, storms: bool) -> (Fault, u64) {
    let dependency = Dependency::ALL[rng.usize(..Dependency::ALL.len())];
    match rng.u8(0..if storms { 7 } else { 6 }) {
        0 => (Fault::Pause { dependency }, rng.u64(3..=12) * 1000),
        1 => (Fault::Cut { dependency }, rng.u64(3..=10) * 1000),
        2 => (Fault::Slow { dependency, delay_ms: rng.u64(2..=20) * 100 }, rng.u64(5..=15) * 1000),
        3 => (Fault::KillApi, rng.u64(1..=4) * 1000),
        4 => (Fault::KillFeed, rng.u64(2..=10) * 1000),
        5 => (Fault::Conflicts { count: rng.u64(20..=200) }, rng.u64(3..=8) * 1000),
        _ => (Fault::ThrottleStorm { divisor: rng.u64(5..=50) }, rng.u64(5..=15) * 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let plan = Plan { seed: 42, seconds: 600, calm: (20, 60), storms: false };
        assert_eq!(plan.schedule(), plan.schedule());
        assert_ne!(plan.schedule(), Plan { seed: 43, ..plan }.schedule());
    }

    #[test]
    fn faults_are_apart_by_a_calm_and_end_ten_seconds_before_the_soak() {
        for seed in 0..50 {
            let plan = Plan { seed, seconds: 600, calm: (20, 60), storms: false };
            let schedule = plan.schedule();
            assert!(schedule.len() >= 6, "seed {seed}: {} faults in 10 minutes", schedule.len());
            let mut free_from = 0;
            for planned in &schedule {
                assert!(planned.at_ms >= free_from + 20_000, "seed {seed}: {planned:?} comes too soon");
                free_from = planned.at_ms + planned.length_ms;
            }
            assert!(free_from <= 590_000, "seed {seed}: a fault runs into the last 10 s");
        }
    }

    #[test]
    fn over_many_seeds_every_kind_of_fault_is_drawn_on_every_dependency() {
        let drawn: Vec<Fault> = (0..40)
            .flat_map(|seed| Plan { seed, seconds: 600, calm: (20, 60), storms: false }.schedule())
            .map(|p| p.fault)
            .collect();
        let kinds: std::collections::BTreeSet<&str> = drawn
            .iter()
            .map(|fault| match fault {
                Fault::Pause { .. } => "pause",
                Fault::Cut { .. } => "cut",
                Fault::Slow { .. } => "slow",
                Fault::KillApi => "kill the API",
                Fault::KillFeed => "kill the feed",
                Fault::Conflicts { .. } => "conflicts",
                Fault::ThrottleStorm { .. } => "storm",
            })
            .collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        let dependencies: std::collections::BTreeSet<Dependency> = drawn
            .iter()
            .filter_map(|fault| match fault {
                Fault::Pause { dependency } | Fault::Cut { dependency } | Fault::Slow { dependency, .. } => {
                    Some(*dependency)
                }
                _ => None,
            })
            .collect();
        assert_eq!(dependencies.len(), 3, "{dependencies:?}");
        assert!(!kinds.contains("storm"), "a storm without the capacity model");
    }

    #[test]
    fn storms_come_only_with_the_capacity_model() {
        let stormy = |storms| {
            (0..40)
                .flat_map(|seed| Plan { seed, seconds: 600, calm: (20, 60), storms }.schedule())
                .filter(|p| matches!(p.fault, Fault::ThrottleStorm { .. }))
                .count()
        };
        assert_eq!(stormy(false), 0);
        assert!(stormy(true) > 10, "{} storms in 40 schedules", stormy(true));
    }
}
