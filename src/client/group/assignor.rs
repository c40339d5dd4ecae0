//! Client-side partition assignors for the classic protocol: the group leader runs
//! one over every member's subscription and hands the result to the coordinator in
//! SyncGroup.
//!
//! - `range` (Java's `RangeAssignor`): per topic, consecutive ranges of partitions to
//!   the members subscribed to it, in member order; the first `n % m` get one more.
//! - `roundrobin` (Java's `RoundRobinAssignor`): every partition of every topic, in
//!   (topic, partition) order, dealt to the subscribed members in a circle.
//! - `cooperative-sticky` (KIP-429): members keep what they own as long as the
//!   assignment stays balanced, and a partition that moves is *withheld* from its
//!   new owner for one generation: its old owner revokes it first and rejoins, and
//!   the follow-up rebalance hands it over. No partition is ever held by two members.
//!
//! Member order is Java's: members with a static instance id first, by instance id,
//! then the others by member id, so the same group gives the same assignment here as
//! in the Java and librdkafka leaders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::client::consumer::TopicPartition;

/// A partition assignor a classic-protocol group leader can run
/// ([`ConsumerConfig::assignors`](crate::client::ConsumerConfig::assignors)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assignor {
    /// `range`: consecutive partitions of each topic per member (eager).
    Range,
    /// `roundrobin`: all partitions dealt out in a circle (eager).
    RoundRobin,
    /// `cooperative-sticky`: balanced, sticky, and incremental (KIP-429): only the
    /// partitions that move are revoked, the rest keep being consumed through the
    /// rebalance.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name members announce in JoinGroup.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor with this protocol name, if this client has it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// Whether it supports the cooperative (incremental) rebalance protocol.
    #[must_use]
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }
}

/// What the leader knows of one member from its JoinGroup metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSubscription {
    pub member_id: String,
    pub instance_id: Option<String>,
    /// Subscribed topics, sorted, without duplicates.
    pub topics: Vec<Arc<str>>,
    /// Partitions it says it owns (subscription v1+).
    pub owned: Vec<TopicPartition>,
    /// The generation its owned partitions are from (`-1` if unknown).
    pub generation: i32,
}

/// Java's member order: static members by instance id first, then by member id.
fn member_order(members: &[MemberSubscription]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&members[a], &members[b]);
        match (&x.instance_id, &y.instance_id) {
            (Some(i), Some(j)) => i.cmp(j).then_with(|| x.member_id.cmp(&y.member_id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => x.member_id.cmp(&y.member_id),
        }
    });
    order
}

/// Runs `assignor` over `members`; `partitions` gives a topic's partition count (0
/// for a topic that does not exist). Every member gets an entry, possibly empty;
/// partitions come out sorted.
pub(crate) fn assign(
    assignor: Assignor,
    members: &[MemberSubscription],
    partitions: &dyn Fn(&str) -> i32,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeSet::new()))
        .collect();
    let order = member_order(members);
    let topics: BTreeSet<Arc<str>> = members.iter().flat_map(|m| m.topics.clone()).collect();
    match assignor {
        Assignor::Range => {
            for topic in &topics {
                let subscribed: Vec<&MemberSubscription> = order
                    .iter()
                    .map(|&i| &members[i])
                    .filter(|m| m.topics.binary_search(topic).is_ok())
                    .collect();
                let n = partitions(topic).max(0) as usize;
                let per = n / subscribed.len().max(1);
                let extra = n % subscribed.len().max(1);
                let mut next = 0;
                for (i, m) in subscribed.iter().enumerate() {
                    let len = per + usize::from(i < extra);
                    let set = out.entry(m.member_id.clone()).or_default();
                    for p in next..next + len {
                        set.insert(TopicPartition::new(topic.clone(), p as i32));
                    }
                    next += len;
                }
            }
        }
        Assignor::RoundRobin => {
            let mut ring = order.iter().cycle();
            for topic in &topics {
                if !members
                    .iter()
                    .any(|m| m.topics.binary_search(topic).is_ok())
                {
                    continue;
                }
                for p in 0..partitions(topic).max(0) {
                    // Some member takes the topic, so this ends within one turn.
                    for &i in ring.by_ref() {
                        let m = &members[i];
                        if m.topics.binary_search(topic).is_ok() {
                            out.entry(m.member_id.clone())
                                .or_default()
                                .insert(TopicPartition::new(topic.clone(), p));
                            break;
                        }
                    }
                }
            }
        }
        Assignor::CooperativeSticky => return cooperative_sticky(members, &order, partitions),
    }
    out.into_iter()
        .map(|(m, set)| (m, set.into_iter().collect()))
        .collect()
}

/// The cooperative-sticky assignment (see the module doc).
fn cooperative_sticky(
    members: &[MemberSubscription],
    order: &[usize],
    partitions: &dyn Fn(&str) -> i32,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let subscribes = |i: usize, topic: &str| {
        members[i]
            .topics
            .binary_search_by(|t| (**t).cmp(topic))
            .is_ok()
    };
    // Every partition some member subscribes to.
    let mut all: BTreeSet<TopicPartition> = BTreeSet::new();
    for m in members {
        for t in &m.topics {
            for p in 0..partitions(t).max(0) {
                all.insert(TopicPartition::new(t.clone(), p));
            }
        }
    }
    // Who owns what: a partition claimed by several members belongs to the claim
    // from the newest generation; claims tied at that generation are all void.
    let mut claims: BTreeMap<&TopicPartition, Vec<(i32, usize)>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for tp in &m.owned {
            claims.entry(tp).or_default().push((m.generation, i));
        }
    }
    let mut owner: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for (tp, mut cs) in claims {
        cs.sort_unstable();
        let (newest, i) = cs[cs.len() - 1];
        if cs.len() == 1 || cs[cs.len() - 2].0 < newest {
            owner.insert(tp.clone(), i);
        }
    }
    // Start from what members own and may keep.
    let mut load: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    for (tp, &i) in &owner {
        if all.contains(tp) && subscribes(i, &tp.topic) {
            load[i].insert(tp.clone());
        }
    }
    let taken: BTreeSet<&TopicPartition> = load.iter().flatten().collect();
    let free: Vec<TopicPartition> = all
        .iter()
        .filter(|tp| !taken.contains(tp))
        .cloned()
        .collect();
    // Rank of each member in Java's order, for ties.
    let mut rank = vec![0; members.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    // Free partitions to the least loaded member that takes them.
    for tp in free {
        let best = (0..members.len())
            .filter(|&i| subscribes(i, &tp.topic))
            .min_by_key(|&i| (load[i].len(), rank[i]));
        if let Some(i) = best {
            load[i].insert(tp);
        }
    }
    // Then move partitions from the most to the least loaded members until no
    // member has two more than another that could take one of its partitions. Each
    // move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let mut by_load: Vec<usize> = (0..members.len()).collect();
        by_load.sort_by_key(|&i| (std::cmp::Reverse(load[i].len()), rank[i]));
        'donors: for &from in &by_load {
            let mut receivers: Vec<usize> = (0..members.len())
                .filter(|&to| load[to].len() + 2 <= load[from].len())
                .collect();
            receivers.sort_by_key(|&to| (load[to].len(), rank[to]));
            for to in receivers {
                // Prefer giving away what the donor did not own before (it has not
                // started consuming it), then the highest partition.
                let pick = load[from]
                    .iter()
                    .rev()
                    .filter(|tp| subscribes(to, &tp.topic))
                    .min_by_key(|tp| owner.get(*tp) == Some(&from))
                    .cloned();
                if let Some(tp) = pick {
                    load[from].remove(&tp);
                    load[to].insert(tp);
                    moved = true;
                    break 'donors;
                }
            }
        }
        if !moved {
            break;
        }
    }
    // Cooperative: a partition still owned by another member is withheld this
    // generation; its owner sees it gone, revokes it and rejoins.
    let mut out = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        let mine: Vec<TopicPartition> = load[i]
            .iter()
            .filter(|tp| owner.get(*tp).is_none_or(|&o| o == i))
            .filter(|tp| {
                // A void (tied) claim by someone else also still holds it.
                !members.iter().enumerate().any(|(j, other)| {
                    j != i && !owner.contains_key(*tp) && other.owned.contains(tp)
                })
            })
            .cloned()
            .collect();
        out.insert(m.member_id.clone(), mine);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn member(
        id: &str,
        topics: &[&str],
        owned: &[(&str, i32)],
        generation: i32,
    ) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            instance_id: None,
            topics: topics.iter().map(|t| Arc::from(*t)).collect(),
            owned: owned
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
            generation,
        }
    }

    fn parts(a: &BTreeMap<String, Vec<TopicPartition>>, m: &str) -> Vec<String> {
        a[m].iter().map(|tp| tp.to_string()).collect()
    }

    fn counts(topic: &str) -> i32 {
        match topic {
            "a" => 3,
            "b" => 4,
            "c" => 7,
            _ => 0,
        }
    }

    #[test]
    fn range_gives_consecutive_ranges_per_topic_with_the_extras_first() {
        let ms = [
            member("m2", &["a", "b"], &[], -1),
            member("m1", &["a", "b"], &[], -1),
        ];
        let a = assign(Assignor::Range, &ms, &counts);
        assert_eq!(parts(&a, "m1"), ["a-0", "a-1", "b-0", "b-1"]);
        assert_eq!(parts(&a, "m2"), ["a-2", "b-2", "b-3"]);
    }

    #[test]
    fn roundrobin_deals_partitions_in_a_circle_skipping_members_not_subscribed() {
        let ms = [
            member("m1", &["a"], &[], -1),
            member("m2", &["a", "b"], &[], -1),
        ];
        let a = assign(Assignor::RoundRobin, &ms, &counts);
        assert_eq!(parts(&a, "m1"), ["a-0", "a-2"]);
        assert_eq!(parts(&a, "m2"), ["a-1", "b-0", "b-1", "b-2", "b-3"]);
    }

    #[test]
    fn static_members_come_first_in_the_order() {
        let mut ms = [
            member("a-member", &["a"], &[], -1),
            member("z-member", &["a"], &[], -1),
        ];
        ms[1].instance_id = Some("instance".into());
        let a = assign(Assignor::Range, &ms, &counts);
        assert_eq!(parts(&a, "z-member"), ["a-0", "a-1"]);
    }

    #[test]
    fn cooperative_sticky_keeps_what_members_own_and_withholds_what_moves() {
        // m1 owned everything of c; m2 joins.
        let all: Vec<(&str, i32)> = (0..7).map(|p| ("c", p)).collect();
        let ms = [member("m1", &["c"], &all, 5), member("m2", &["c"], &[], -1)];
        let a = assign(Assignor::CooperativeSticky, &ms, &counts);
        // m1 keeps four and gives three up; m2 gets nothing this generation.
        assert_eq!(a["m1"].len(), 4);
        assert!(a["m2"].is_empty());
        // The follow-up: m1 owns its four, m2 nothing; the three free go to m2.
        let kept: Vec<(&str, i32)> = a["m1"].iter().map(|tp| ("c", tp.partition)).collect();
        let ms = [member("m1", &["c"], &kept, 6), member("m2", &["c"], &[], 6)];
        let b = assign(Assignor::CooperativeSticky, &ms, &counts);
        assert_eq!(b["m1"], a["m1"], "sticky");
        assert_eq!(b["m2"].len(), 3);
    }

    #[test]
    fn cooperative_sticky_balances_heterogeneous_subscriptions_without_overlap() {
        let ms = [
            member(
                "m1",
                &["a", "b", "c"],
                &[("a", 0), ("a", 1), ("a", 2), ("b", 0)],
                3,
            ),
            member("m2", &["b"], &[("b", 1)], 3),
            member("m3", &["c"], &[], -1),
        ];
        let a = assign(Assignor::CooperativeSticky, &ms, &counts);
        let mut seen = BTreeSet::new();
        for ps in a.values() {
            for tp in ps {
                assert!(seen.insert(tp.clone()), "{tp} assigned twice");
            }
        }
        // m3 can only take c; c's seven partitions are spread.
        assert!(a["m3"].iter().all(|tp| &*tp.topic == "c"));
        assert!(a["m3"].len() >= 3);
    }

    #[test]
    fn a_claim_from_an_older_generation_loses() {
        let ms = [
            member("m1", &["a"], &[("a", 0)], 4),
            member("m2", &["a"], &[("a", 0)], 7),
        ];
        let a = assign(Assignor::CooperativeSticky, &ms, &counts);
        assert!(a["m2"].contains(&TopicPartition::new("a", 0)));
        assert!(!a["m1"].contains(&TopicPartition::new("a", 0)));
    }
}
