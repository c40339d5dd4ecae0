//! The server-side assignors of the KIP-848 coordinator (`group.consumer.assignors`):
//! `uniform` (Kafka's default) and `range`.
//!
//! - `uniform` spreads the partitions of the subscribed topics evenly and keeps each
//!   member's previous partitions where balance allows. When every member subscribes
//!   to the same topics, counts differ by at most one and a member keeps up to its
//!   share of what it had; otherwise each partition (those with the fewest eligible
//!   members first) goes to its previous owner if that owner has no more than the
//!   least loaded eligible member, else to the least loaded one.
//! - `range` gives each topic's members (sorted by member id) contiguous ranges of
//!   its partitions, the first `partitions % members` one more, as the classic range
//!   assignor does.
//!
//! Both are deterministic: the same members and topics give the same assignment.

use crate::wire::Uuid;
use std::collections::{BTreeMap, BTreeSet};

/// A member's partitions, by topic id.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors the coordinator offers, by the names clients ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    /// The assignor named `name`, if the coordinator has it.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// Its name, as clients and ConsumerGroupDescribe say it.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// One member as an assignor sees it.
pub(crate) struct AssignorMember<'a> {
    /// Subscribed topic names, sorted.
    pub topics: &'a [String],
    /// Its target assignment so far (for stickiness).
    pub current: Option<&'a Assignment>,
}

/// The target assignment of every member (in `members`' order, which must be
/// sorted by id): the partitions of the subscribed topics that exist, by `topics`
/// (name to id and partition count).
pub(crate) fn assign(
    assignor: Assignor,
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> Vec<Assignment> {
    let mut out = vec![Assignment::new(); members.len()];
    if members.is_empty() {
        return out;
    }
    // Each topic's partitions, and the members subscribed to it.
    let mut eligible: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for t in m.topics {
            if topics.contains_key(t) {
                eligible.entry(t.as_str()).or_default().push(i);
            }
        }
    }
    match assignor {
        Assignor::Range => {
            for (topic, who) in &eligible {
                let (id, n) = topics[*topic];
                let k = who.len() as i32;
                let (base, extra) = (n / k, n % k);
                let mut next = 0;
                for (j, &i) in who.iter().enumerate() {
                    let take = base + i32::from((j as i32) < extra);
                    if take > 0 {
                        out[i].entry(id).or_default().extend(next..next + take);
                    }
                    next += take;
                }
            }
        }
        Assignor::Uniform => {
            let same = members.windows(2).all(|w| w[0].topics == w[1].topics);
            if same {
                uniform_homogeneous(members, topics, &eligible, &mut out);
            } else {
                uniform_heterogeneous(members, topics, &eligible, &mut out);
            }
        }
    }
    out
}

/// Every member subscribes to the same topics: counts differ by at most one, and
/// each member keeps up to its share of its previous partitions.
fn uniform_homogeneous(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
    eligible: &BTreeMap<&str, Vec<usize>>,
    out: &mut [Assignment],
) {
    let all: Vec<(Uuid, i32)> = eligible
        .keys()
        .flat_map(|t| {
            let (id, n) = topics[*t];
            (0..n).map(move |p| (id, p))
        })
        .collect();
    let valid: BTreeSet<(Uuid, i32)> = all.iter().copied().collect();
    let m = members.len();
    let (base, extra) = (all.len() / m, all.len() % m);
    // What each member had and may keep.
    let kept: Vec<Vec<(Uuid, i32)>> = members
        .iter()
        .map(|mem| {
            mem.current
                .into_iter()
                .flat_map(|a| a.iter().flat_map(|(t, ps)| ps.iter().map(|p| (*t, *p))))
                .filter(|tp| valid.contains(tp))
                .collect()
        })
        .collect();
    // The members that had the most get the `extra` larger shares.
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(kept[i].len()), i));
    let mut quota = vec![base; m];
    for &i in order.iter().take(extra) {
        quota[i] += 1;
    }
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let mut counts = vec![0usize; m];
    for &i in &order {
        for tp in &kept[i] {
            if counts[i] >= quota[i] {
                break;
            }
            if taken.insert(*tp) {
                out[i].entry(tp.0).or_default().insert(tp.1);
                counts[i] += 1;
            }
        }
    }
    let mut next = 0;
    for tp in all.into_iter().filter(|tp| !taken.contains(tp)) {
        while next < m && counts[next] >= quota[next] {
            next += 1;
        }
        let Some(i) = (next < m).then_some(next) else {
            break;
        };
        out[i].entry(tp.0).or_default().insert(tp.1);
        counts[i] += 1;
    }
}

/// Members subscribe to different topics: each partition, those with the fewest
/// eligible members first, goes to its previous owner unless that would make it
/// more loaded than the least loaded eligible member.
fn uniform_heterogeneous(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, (Uuid, i32)>,
    eligible: &BTreeMap<&str, Vec<usize>>,
    out: &mut [Assignment],
) {
    let mut previous: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for (t, ps) in m.current.into_iter().flatten() {
            for p in ps {
                previous.entry((*t, *p)).or_insert(i);
            }
        }
    }
    let mut partitions: Vec<(usize, Uuid, i32, &Vec<usize>)> = eligible
        .iter()
        .flat_map(|(t, who)| {
            let (id, n) = topics[*t];
            (0..n).map(move |p| (who.len(), id, p, who))
        })
        .collect();
    partitions.sort_by_key(|(k, id, p, _)| (*k, *id, *p));
    let mut counts = vec![0usize; members.len()];
    for (_, id, p, who) in partitions {
        let least = who.iter().map(|&i| counts[i]).min().unwrap_or(0);
        let owner = match previous.get(&(id, p)) {
            Some(&i) if who.contains(&i) && counts[i] <= least => i,
            _ => who
                .iter()
                .copied()
                .min_by_key(|&i| (counts[i], i))
                .unwrap_or(0),
        };
        out[owner].entry(id).or_default().insert(p);
        counts[owner] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Uuid {
        Uuid::from_u128(u128::from(n))
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let topics: BTreeMap<String, (Uuid, i32)> =
            [("a".to_owned(), (id(1), 5)), ("b".to_owned(), (id(2), 2))].into();
        let subs = vec!["a".to_owned(), "b".to_owned()];
        let one = [AssignorMember {
            topics: &subs,
            current: None,
        }];
        let first = assign(Assignor::Uniform, &one, &topics);
        assert_eq!(count(&first[0]), 7);
        let two = [
            AssignorMember {
                topics: &subs,
                current: Some(&first[0]),
            },
            AssignorMember {
                topics: &subs,
                current: None,
            },
        ];
        let second = assign(Assignor::Uniform, &two, &topics);
        assert_eq!((count(&second[0]), count(&second[1])), (4, 3));
        // m1 kept only partitions it had, and nothing is given twice.
        for (t, ps) in &second[0] {
            assert!(ps.is_subset(&first[0][t]));
            if let Some(other) = second[1].get(t) {
                assert!(ps.is_disjoint(other));
            }
        }
    }

    #[test]
    fn uniform_with_different_subscriptions_gives_each_only_its_topics() {
        let topics: BTreeMap<String, (Uuid, i32)> =
            [("a".to_owned(), (id(1), 4)), ("b".to_owned(), (id(2), 4))].into();
        let ab = vec!["a".to_owned(), "b".to_owned()];
        let b = vec!["b".to_owned()];
        let members = [
            AssignorMember {
                topics: &ab,
                current: None,
            },
            AssignorMember {
                topics: &b,
                current: None,
            },
        ];
        let out = assign(Assignor::Uniform, &members, &topics);
        assert!(!out[1].contains_key(&id(1)));
        assert_eq!(count(&out[0]) + count(&out[1]), 8);
        assert_eq!((count(&out[0]), count(&out[1])), (4, 4));
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let topics: BTreeMap<String, (Uuid, i32)> = [("a".to_owned(), (id(1), 5))].into();
        let a = vec!["a".to_owned()];
        let members = [
            AssignorMember {
                topics: &a,
                current: None,
            },
            AssignorMember {
                topics: &a,
                current: None,
            },
        ];
        let out = assign(Assignor::Range, &members, &topics);
        assert_eq!(out[0][&id(1)], [0, 1, 2].into());
        assert_eq!(out[1][&id(1)], [3, 4].into());
    }
}
