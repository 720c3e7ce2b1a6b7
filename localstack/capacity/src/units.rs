//! Capacity units: what one read or write of a given size costs, and what a partition
//! takes in a second.

/// A partition's write units a second (on-demand tables too).
pub const PARTITION_WRITE_UNITS: f64 = 1000.0;
/// A partition's read units a second.
pub const PARTITION_READ_UNITS: f64 = 3000.0;
/// A write unit covers this many bytes of an item, rounded up.
pub const WRITE_UNIT_BYTES: usize = 1024;
/// A strongly consistent read unit covers this many bytes, rounded up.
pub const READ_UNIT_BYTES: usize = 4096;
/// Every item of a transaction costs this many times its single-item cost (on the
/// table; see [`crate::plan`] for its index writes).
pub const TRANSACTION_FACTOR: f64 = 2.0;

/// Which of a partition's two budgets a charge draws on: DynamoDB throttles a
/// partition's reads and writes independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    Read,
    Write,
}

impl Axis {
    /// A partition's units a second on this axis, before scaling.
    pub fn partition_limit(self) -> f64 {
        match self {
            Axis::Read => PARTITION_READ_UNITS,
            Axis::Write => PARTITION_WRITE_UNITS,
        }
    }

    /// The word DynamoDB puts in a throttling reason (`TableWriteKeyRange…`).
    pub fn word(self) -> &'static str {
        match self {
            Axis::Read => "Read",
            Axis::Write => "Write",
        }
    }
}

/// A read's consistency: an eventually consistent read costs half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Strong,
    Eventual,
}

impl Consistency {
    /// `ConsistentRead` as a request carries it (absent: eventual).
    pub fn from_flag(consistent: Option<bool>) -> Consistency {
        if consistent == Some(true) {
            Consistency::Strong
        } else {
            Consistency::Eventual
        }
    }
}

/// Write units for an item of `bytes`: 1 per KB, rounded up, at least 1.
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// Read units for `bytes` read at once: 1 per 4 KB, rounded up, at least 1; half that
/// for an eventually consistent read.
pub fn read_units(bytes: usize, consistency: Consistency) -> f64 {
    let strong = bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    match consistency {
        Consistency::Strong => strong,
        Consistency::Eventual => strong / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_costs_one_unit_per_kilobyte_rounded_up() {
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(400 * 1024), 400.0);
    }

    #[test]
    fn a_strong_read_costs_one_unit_per_4_kilobytes_and_an_eventual_one_half() {
        assert_eq!(read_units(0, Consistency::Strong), 1.0);
        assert_eq!(read_units(4096, Consistency::Strong), 1.0);
        assert_eq!(read_units(4097, Consistency::Strong), 2.0);
        assert_eq!(read_units(0, Consistency::Eventual), 0.5);
        assert_eq!(read_units(4097, Consistency::Eventual), 1.0);
        assert_eq!(read_units(9000, Consistency::Eventual), 1.5);
    }

    #[test]
    fn consistent_read_is_strong_only_when_asked_for() {
        assert_eq!(Consistency::from_flag(Some(true)), Consistency::Strong);
        assert_eq!(Consistency::from_flag(Some(false)), Consistency::Eventual);
        assert_eq!(Consistency::from_flag(None), Consistency::Eventual);
    }
}
