//! Rebalancing: spreading the shards evenly over the groups while moving as few as possible.
//!
//! Deterministic on every replica: it depends only on the assignment and the set of groups, and
//! breaks every tie by group id or shard number (no iteration over unordered maps).
//!
//! With `n` groups each gets `NSHARDS / n` shards, and `NSHARDS % n` of them one more. The groups
//! that get one more are those that already hold the most (ties: lower gid first), so as many
//! shards as possible stay where they are. Then every group gives up its shards beyond its target
//! (highest shard numbers first), and the freed shards, with those of departed groups, go to the
//! groups below their target (lowest shard numbers first, to the groups in the same order).
//!
//! A shard moves only if its group departed or holds more than its target, and no group is
//! given more than it lacks, so no assignment with the same balance moves fewer shards.

use std::collections::{BTreeMap, BTreeSet};

use super::common::{Gid, NSHARDS};

/// The balanced assignment closest to `shards` over the groups in `groups` (all shards to group
/// 0 when there are none).
pub fn rebalance(shards: &[Gid; NSHARDS], groups: &BTreeSet<Gid>) -> [Gid; NSHARDS] {
    // SOLUTION BEGIN: rebalance: deterministically spread the shards over the groups so that group sizes differ by at most one, moving as few shards as possible
    if groups.is_empty() {
        return [0; NSHARDS];
    }
    let mut held: BTreeMap<Gid, Vec<usize>> = groups.iter().map(|&g| (g, Vec::new())).collect();
    let mut free = Vec::new();
    for (s, g) in shards.iter().enumerate() {
        match held.get_mut(g) {
            Some(list) => list.push(s),
            None => free.push(s),
        }
    }
    let order = by_load(&held);
    let targets = targets(&order);
    let mut out = *shards;
    // Take away what is beyond each target.
    for (&g, &target) in order.iter().zip(&targets) {
        if let Some(list) = held.get_mut(&g) {
            while list.len() > target {
                if let Some(s) = list.pop() {
                    free.push(s);
                }
            }
        }
    }
    free.sort_unstable();
    let mut free = free.into_iter();
    // Fill the groups below their target.
    for (&g, &target) in order.iter().zip(&targets) {
        let have = held.get(&g).map_or(0, Vec::len);
        for _ in have..target {
            if let Some(s) = free.next() {
                out[s] = g;
            }
        }
    }
    out
    // SOLUTION END
}

/// Groups from the most loaded to the least; ties by gid.
fn by_load(held: &BTreeMap<Gid, Vec<usize>>) -> Vec<Gid> {
    let mut order: Vec<Gid> = held.keys().copied().collect();
    order.sort_by_key(|g| (std::cmp::Reverse(held.get(g).map_or(0, Vec::len)), *g));
    order
}

/// The target of each group in `order`: the first `NSHARDS % n` get one more.
fn targets(order: &[Gid]) -> Vec<usize> {
    let n = order.len().max(1);
    let (base, extra) = (NSHARDS / n, NSHARDS % n);
    (0..order.len())
        .map(|i| base + usize::from(i < extra))
        .collect()
}

/// How many shards any balanced assignment over `groups` must move from `shards`: the shards of
/// departed groups plus, with the larger targets given to the groups that hold most, everything
/// beyond the targets. For tests of minimality.
pub fn min_moves(shards: &[Gid; NSHARDS], groups: &BTreeSet<Gid>) -> usize {
    if groups.is_empty() {
        return shards.iter().filter(|&&g| g != 0).count();
    }
    let mut held: BTreeMap<Gid, Vec<usize>> = groups.iter().map(|&g| (g, Vec::new())).collect();
    for (s, g) in shards.iter().enumerate() {
        if let Some(list) = held.get_mut(g) {
            list.push(s);
        }
    }
    let order = by_load(&held);
    let kept: usize = order
        .iter()
        .zip(targets(&order))
        .map(|(g, t)| held.get(g).map_or(0, Vec::len).min(t))
        .sum();
    NSHARDS - kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(gids: &[Gid]) -> BTreeSet<Gid> {
        gids.iter().copied().collect()
    }

    fn counts(shards: &[Gid; NSHARDS], groups: &BTreeSet<Gid>) -> Vec<usize> {
        groups
            .iter()
            .map(|g| shards.iter().filter(|&s| s == g).count())
            .collect()
    }

    fn moved(a: &[Gid; NSHARDS], b: &[Gid; NSHARDS]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn first_join_takes_everything() {
        let out = rebalance(&[0; NSHARDS], &set(&[7]));
        assert_eq!(out, [7; NSHARDS]);
    }

    #[test]
    fn balanced_and_minimal_over_a_sequence() {
        let mut shards = [0; NSHARDS];
        let mut groups = BTreeSet::new();
        let steps: &[(bool, Gid)] = &[
            (true, 1),
            (true, 2),
            (true, 3),
            (true, 4),
            (false, 2),
            (true, 5),
            (true, 6),
            (true, 7),
            (true, 8),
            (true, 9),
            (true, 10),
            (true, 11),
            (true, 12),
            (false, 1),
            (false, 7),
            (false, 3),
        ];
        for &(join, g) in steps {
            if join {
                groups.insert(g);
            } else {
                groups.remove(&g);
            }
            let out = rebalance(&shards, &groups);
            let c = counts(&out, &groups);
            let (lo, hi) = (c.iter().min().copied(), c.iter().max().copied());
            assert!(hi.unwrap_or(0) <= lo.unwrap_or(0) + 1, "unbalanced: {c:?}");
            assert!(out.iter().all(|g| groups.contains(g)), "unassigned shard");
            assert_eq!(moved(&shards, &out), min_moves(&shards, &groups));
            shards = out;
        }
    }

    #[test]
    fn rebalances_after_moves_with_minimal_transfers() {
        // Unbalanced by Move: group 1 has 7, group 2 two, group 3 one.
        let shards = [1, 1, 1, 1, 1, 1, 1, 2, 2, 3];
        let groups = set(&[1, 2, 3, 4]);
        let out = rebalance(&shards, &groups);
        assert_eq!(moved(&shards, &out), min_moves(&shards, &groups));
        assert_eq!(min_moves(&shards, &groups), 4);
        assert_eq!(counts(&out, &groups), vec![3, 3, 2, 2]);
    }
}
