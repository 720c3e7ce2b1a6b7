//! Hot counts split over shards: a coupon's copies ([`crate::coupons`]) and a product's
//! stock ([`crate::catalog`]). On DynamoDB one item is one partition, which takes at
//! most 1,000 write units a second, and an item written inside a transaction costs two:
//! one count takes about 500 changes a second however fast everything else is. A count
//! split over `n` items, each a partition of its own, takes `n` times that.
//!
//! The arithmetic and the choices are here, pure; each store keeps its shards its own
//! way.

/// A count of this size or more is sharded unless the operator says otherwise.
pub const SHARDED_FROM: u64 = 1_000;

/// The shards a count of [`SHARDED_FROM`] or more gets: 10 would take 10× what one item
/// takes if every shard were busy all the time; changes pick shards at random, so 16
/// leave room for the uneven picks of a rush (and for the shards that empty first).
pub const DEFAULT_SHARDS: u32 = 16;

/// The most shards an operator may ask for: a change that finds a shard short tries
/// others, and a creation writes every shard in one transaction (of at most 100 items).
pub const MAX_SHARDS: u32 = 64;

/// How many shards a count of `size` gets when its operator does not say.
pub fn default_shards(size: u64) -> u32 {
    if size >= SHARDED_FROM {
        DEFAULT_SHARDS
    } else {
        1
    }
}

/// Shard `k`'s share of `total` over `shards`: as even as it goes, the first
/// `total % shards` shards taking one more. The shares add up to the total.
pub fn shard_total(total: u64, shards: u32, k: u32) -> u64 {
    let shards = u64::from(shards.max(1));
    total / shards + u64::from(u64::from(k) < total % shards)
}

/// Where to take `quantity` from shards holding `levels` (as read): the first shard
/// from `start` on (round the end) that holds it alone, so that concurrent takers
/// starting at random spread over the shards; else from the fullest first, as few
/// shards as it takes. Each pick is a shard and how much it gives. `None` when the
/// shards together hold less than `quantity`: only then is the count short.
pub fn take_from(levels: &[u64], quantity: u64, start: usize) -> Option<Vec<(u32, u64)>> {
    let n = levels.len();
    if n == 0 || levels.iter().sum::<u64>() < quantity {
        return None;
    }
    if let Some(k) = (0..n).map(|i| (start + i) % n).find(|&k| levels[k] >= quantity) {
        return Some(vec![(k as u32, quantity)]);
    }
    let mut fullest: Vec<usize> = (0..n).collect();
    fullest.sort_by(|&a, &b| levels[b].cmp(&levels[a]).then(a.cmp(&b)));
    let mut left = quantity;
    let mut picks = Vec::new();
    for k in fullest {
        if left == 0 {
            break;
        }
        let take = levels[k].min(left);
        if take > 0 {
            picks.push((k as u32, take));
            left -= take;
        }
    }
    Some(picks)
}

/// How to add `add` to shards holding `levels` so that they come out as level as it
/// goes: the emptiest filled first, up to the next level, the remainder spread one by
/// one from the first shard. Each entry is what its shard gets; they add up to `add`.
pub fn level_up(levels: &[u64], add: u64) -> Vec<u64> {
    let n = levels.len();
    if n == 0 {
        return Vec::new();
    }
    // The highest level every shard can be brought to: the largest `t` with
    // Σ max(0, t − level) ≤ add, found by bisection over the u64 range that matters.
    let fill = |t: u64| -> u128 { levels.iter().map(|&l| u128::from(t.saturating_sub(l))).sum() };
    let (mut low, mut high) = (0u64, levels.iter().max().copied().unwrap_or(0).saturating_add(add));
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if fill(mid) <= u128::from(add) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let mut adds: Vec<u64> = levels.iter().map(|&l| low.saturating_sub(l)).collect();
    let mut left = add - adds.iter().sum::<u64>();
    // What is left is less than the shards at the level: one more each, in order.
    for k in 0..n {
        if left == 0 {
            break;
        }
        if levels[k] <= low {
            adds[k] += 1;
            left -= 1;
        }
    }
    adds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total_and_differ_by_at_most_one() {
        for (total, shards) in [(1_000, 16), (1, 1), (7, 7), (100, 3), (10_000_000, 64), (1_001, 16)] {
            let shares: Vec<u64> = (0..shards).map(|k| shard_total(total, shards, k)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {shards}");
            let (least, most) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(most - least <= 1, "{total} over {shards}: {shares:?}");
        }
        assert_eq!((shard_total(100, 3, 0), shard_total(100, 3, 2)), (34, 33));
    }

    #[test]
    fn a_thousand_or_more_is_sharded_by_default() {
        assert_eq!((default_shards(0), default_shards(1), default_shards(999)), (1, 1, 1));
        assert_eq!((default_shards(1_000), default_shards(u64::MAX)), (DEFAULT_SHARDS, DEFAULT_SHARDS));
    }

    #[test]
    fn a_take_comes_from_one_shard_that_holds_it_starting_where_asked() {
        let levels = [5, 0, 9, 3];
        assert_eq!(take_from(&levels, 3, 0), Some(vec![(0, 3)]));
        assert_eq!(take_from(&levels, 3, 1), Some(vec![(2, 3)]), "an empty shard is passed over");
        assert_eq!(take_from(&levels, 3, 3), Some(vec![(3, 3)]));
        assert_eq!(take_from(&levels, 6, 3), Some(vec![(2, 6)]), "round the end");
        assert_eq!(take_from(&levels, 17, 0), Some(vec![(2, 9), (0, 5), (3, 3)]), "every unit there is");
    }

    #[test]
    fn a_take_no_shard_holds_alone_is_split_fullest_first_and_short_only_when_all_are() {
        assert_eq!(take_from(&[5, 0, 9, 3], 12, 2), Some(vec![(2, 9), (0, 3)]));
        assert_eq!(take_from(&[4, 4, 4], 9, 1), Some(vec![(0, 4), (1, 4), (2, 1)]), "ties by shard");
        assert_eq!(take_from(&[5, 0, 9, 3], 18, 0), None);
        assert_eq!(take_from(&[], 1, 0), None);
        assert_eq!(take_from(&[0, 0], 0, 1), Some(vec![(1, 0)]), "nothing to take is taken anywhere");
    }

    #[test]
    fn adding_levels_the_shards_and_adds_exactly_what_was_asked() {
        assert_eq!(level_up(&[5, 0, 9, 3], 8), vec![1, 5, 0, 2], "to 6, 5, 9, 5");
        assert_eq!(level_up(&[5, 0, 9, 3], 0), vec![0, 0, 0, 0]);
        assert_eq!(level_up(&[2, 2, 2], 4), vec![2, 1, 1]);
        assert_eq!(level_up(&[0], 7), vec![7]);
        for (levels, add) in
            [(vec![10, 0, 0, 3], 100), (vec![1_000_000, 0], 5), (vec![7; 16], 1_000_001), (vec![u64::MAX - 5, 0], 3)]
        {
            let adds = level_up(&levels, add);
            assert_eq!(adds.iter().sum::<u64>(), add, "{levels:?} + {add}");
            let after: Vec<u64> = levels.iter().zip(&adds).map(|(l, a)| l + a).collect();
            let touched: Vec<u64> = after.iter().zip(&adds).filter(|(_, a)| **a > 0).map(|(l, _)| *l).collect();
            let lowest = after.iter().min().unwrap();
            assert!(touched.iter().all(|l| l - lowest <= 1), "{levels:?} + {add} → {after:?}");
        }
    }
}
