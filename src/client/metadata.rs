//! The metadata cache: brokers, the controller, and each topic's partitions with
//! their leaders and leader epochs (KIP-320), plus when to refresh it.
//!
//! A Metadata response is checked before it is believed: a leader that is not among
//! the response's brokers counts as no leader (and asks for another refresh),
//! duplicate broker ids keep the first entry, a broker with an impossible port is
//! dropped, and a partition whose leader epoch went backwards keeps what the cache
//! already knew (the answering broker is behind).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use crate::messages::{ErrorCode, MetadataResponse};
use crate::wire::Uuid;

/// One broker of the cluster.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::OpOutput;
/// let now = sim.now();
/// let op = sim.client(host).describe_cluster(now);
/// let OpOutput::Cluster(cluster) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// let broker = &cluster.brokers[0];
/// println!("broker {} at {}:{} (rack {:?})", broker.id, broker.host, broker.port, broker.rack);
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// Its node id.
    pub id: i32,
    /// The host it advertises.
    pub host: Arc<str>,
    /// The port it advertises.
    pub port: u16,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

/// One partition of a topic.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::OpOutput;
/// let now = sim.now();
/// let op = sim.client(host).describe_topics(now, vec!["orders".into()]);
/// let OpOutput::Topics(topics) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// let p0 = &topics[0].partitions[0];
/// assert_eq!(p0.partition, 0);
/// assert!(p0.leader.is_some());
/// assert_eq!(p0.replicas.len(), 3);
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, `None` while there is no (known) leader.
    pub leader: Option<i32>,
    /// The leader epoch, `-1` if the broker does not report one.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline_replicas: Vec<i32>,
    /// The partition's error code (`LEADER_NOT_AVAILABLE` during an election, ...).
    pub error: ErrorCode,
}

/// One topic.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::OpOutput;
/// let now = sim.now();
/// let op = sim.client(host).list_topics(now);
/// let OpOutput::Topics(topics) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// let orders = topics.iter().find(|t| &*t.name == "orders").unwrap();
/// assert!(!orders.internal);
/// assert_eq!(orders.partitions.len(), 3);
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic's name.
    pub name: Arc<str>,
    /// The topic id (all zero from brokers before Kafka 2.8).
    pub id: Uuid,
    /// Whether it is internal (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionMetadata>,
}

/// The cluster as a whole.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::OpOutput;
/// let now = sim.now();
/// let op = sim.client(host).describe_cluster(now);
/// let OpOutput::Cluster(cluster) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// assert_eq!(cluster.brokers.len(), 3);
/// assert!(cluster.controller.is_some());
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// The controller's node id, if known.
    pub controller: Option<i32>,
    /// The brokers, by id.
    pub brokers: Vec<BrokerMetadata>,
}

/// What the cache knows of a partition's leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leader {
    /// The leader's node id and epoch.
    Known { node: i32, epoch: i32 },
    /// The partition exists but has no usable leader right now.
    None,
    /// The topic is not in the cache yet: wait for a refresh.
    NotLoaded,
    /// The last refresh said the topic does not exist.
    UnknownTopic,
    /// The topic exists but the partition index is out of range.
    UnknownPartition { count: usize },
}

#[derive(Debug, Clone)]
enum TopicEntry {
    Known(TopicMetadata),
    /// The last refresh that asked for it said it does not exist.
    Missing,
}

/// Anomalies found while applying a response, for logging and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ApplyReport {
    pub duplicate_brokers: Vec<i32>,
    pub bad_brokers: Vec<i32>,
    pub unknown_leaders: usize,
    pub stale_epochs: usize,
    pub leader_changes: usize,
}

/// The cache plus its refresh state.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    brokers: BTreeMap<i32, BrokerMetadata>,
    controller: Option<i32>,
    cluster_id: Option<String>,
    topics: BTreeMap<Arc<str>, TopicEntry>,
    /// Topics the next refresh must ask for.
    pub(crate) wanted: BTreeSet<Arc<str>>,
    /// The next refresh must ask for every topic.
    pub(crate) want_all: bool,
    /// A refresh is wanted no earlier than this.
    pub(crate) refresh_at: Option<Instant>,
    /// A Metadata request is outstanding.
    pub(crate) in_flight: bool,
    /// When the last response was applied.
    pub(crate) last_update: Option<Instant>,
    /// When the last refresh failed: refreshes are debounced from it too, or a
    /// broker that cannot answer Metadata at all would be asked in a loop.
    pub(crate) last_failure: Option<Instant>,
    /// Bumped by every change: each applied response, each leader or topic
    /// forgotten. (The producer rebuilds its routing views when it moves.)
    pub(crate) generation: u64,
    /// Topics asked for at least once: the first ask for a topic is not debounced
    /// (a producer's first record for a topic would otherwise wait out the minimum
    /// interval after the bootstrap's refresh); later asks are.
    pub(crate) asked: BTreeSet<Arc<str>>,
}

impl Metadata {
    /// Known brokers.
    pub(crate) fn brokers(&self) -> impl Iterator<Item = &BrokerMetadata> {
        self.brokers.values()
    }

    pub(crate) fn broker(&self, id: i32) -> Option<&BrokerMetadata> {
        self.brokers.get(&id)
    }

    pub(crate) fn controller(&self) -> Option<i32> {
        self.controller.filter(|c| self.brokers.contains_key(c))
    }

    pub(crate) fn cluster(&self) -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: self.cluster_id.clone(),
            controller: self.controller,
            brokers: self.brokers.values().cloned().collect(),
        }
    }

    pub(crate) fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        match self.topics.get(name) {
            Some(TopicEntry::Known(t)) => Some(t),
            _ => None,
        }
    }

    /// Every known topic, by name.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &TopicMetadata> {
        self.topics.values().filter_map(|t| match t {
            TopicEntry::Known(t) => Some(t),
            TopicEntry::Missing => None,
        })
    }

    /// Topics that are cached (known or known missing), to keep refreshing.
    pub(crate) fn cached_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.topics.keys()
    }

    pub(crate) fn leader(&self, topic: &str, partition: i32) -> Leader {
        match self.topics.get(topic) {
            None => Leader::NotLoaded,
            Some(TopicEntry::Missing) => Leader::UnknownTopic,
            Some(TopicEntry::Known(t)) => {
                let Some(p) = usize::try_from(partition)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
                    .filter(|p| p.partition == partition)
                    .or_else(|| t.partitions.iter().find(|p| p.partition == partition))
                else {
                    return Leader::UnknownPartition {
                        count: t.partitions.len(),
                    };
                };
                match p.leader {
                    Some(node) if self.brokers.contains_key(&node) => Leader::Known {
                        node,
                        epoch: p.leader_epoch,
                    },
                    _ => Leader::None,
                }
            }
        }
    }

    /// Forgets what is known of a partition's leader (after NOT_LEADER and the like),
    /// so requests wait for the next refresh instead of going back to it.
    pub(crate) fn invalidate_leader(&mut self, topic: &str, partition: i32) {
        if let Some(TopicEntry::Known(t)) = self.topics.get_mut(topic)
            && let Some(p) = t.partitions.iter_mut().find(|p| p.partition == partition)
            && p.leader.take().is_some()
        {
            self.generation += 1;
        }
    }

    /// Forgets a topic (after UNKNOWN_TOPIC_ID and the like).
    pub(crate) fn invalidate_topic(&mut self, topic: &str) {
        if self.topics.remove(topic).is_some() {
            self.generation += 1;
        }
    }

    /// Applies a response to a request for `asked` (`None`: every topic).
    pub(crate) fn apply(
        &mut self,
        response: &MetadataResponse,
        asked: Option<&[Arc<str>]>,
        now: Instant,
    ) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut brokers = BTreeMap::new();
        for b in &response.brokers {
            let port = u16::try_from(b.port).ok().filter(|p| *p != 0);
            let Some(port) = port.filter(|_| !b.host.is_empty()) else {
                report.bad_brokers.push(b.node_id);
                continue;
            };
            if brokers.contains_key(&b.node_id) {
                report.duplicate_brokers.push(b.node_id);
                continue;
            }
            brokers.insert(
                b.node_id,
                BrokerMetadata {
                    id: b.node_id,
                    host: Arc::from(&*b.host),
                    port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                },
            );
        }
        if !brokers.is_empty() {
            self.brokers = brokers;
        }
        self.controller = (response.controller_id >= 0).then_some(response.controller_id);
        if let Some(id) = &response.cluster_id {
            self.cluster_id = Some(id.to_string());
        }
        let mut seen = BTreeSet::new();
        for t in &response.topics {
            let Some(name) = t.name.as_ref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let name: Arc<str> = Arc::from(&**name);
            seen.insert(name.clone());
            let code = ErrorCode(t.error_code);
            if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                || code == ErrorCode::INVALID_TOPIC_EXCEPTION
            {
                self.topics.insert(name, TopicEntry::Missing);
                continue;
            }
            if code != ErrorCode::NONE {
                // LEADER_NOT_AVAILABLE while a topic is created, authorization errors:
                // keep what we had; the caller's retry sees the same state again.
                continue;
            }
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| {
                    let leader = (p.leader_id >= 0).then_some(p.leader_id);
                    if leader.is_some_and(|l| !self.brokers.contains_key(&l)) {
                        report.unknown_leaders += 1;
                    }
                    PartitionMetadata {
                        partition: p.partition_index,
                        leader,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().copied().collect(),
                        isr: p.isr_nodes.iter().copied().collect(),
                        offline_replicas: p.offline_replicas.iter().copied().collect(),
                        error: ErrorCode(p.error_code),
                    }
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            partitions.dedup_by_key(|p| p.partition);
            if let Some(TopicEntry::Known(old)) = self.topics.get(&name) {
                for p in &mut partitions {
                    if let Some(o) = old.partitions.iter().find(|o| o.partition == p.partition) {
                        if o.leader_epoch >= 0
                            && p.leader_epoch >= 0
                            && p.leader_epoch < o.leader_epoch
                        {
                            report.stale_epochs += 1;
                            *p = o.clone();
                        } else if o.leader != p.leader {
                            report.leader_changes += 1;
                        }
                    }
                }
            }
            self.topics.insert(
                name.clone(),
                TopicEntry::Known(TopicMetadata {
                    name,
                    id: t.topic_id,
                    internal: t.is_internal,
                    partitions,
                }),
            );
        }
        match asked {
            Some(asked) => {
                for name in asked {
                    if !seen.contains(name) {
                        self.topics.insert(name.clone(), TopicEntry::Missing);
                    }
                }
            }
            None => self.topics.retain(|name, _| seen.contains(name)),
        }
        self.last_update = Some(now);
        self.generation += 1;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn broker(id: i32, port: i32) -> MetadataResponseBroker {
        MetadataResponseBroker {
            node_id: id,
            host: "h".into(),
            port,
            ..Default::default()
        }
    }

    fn topic(name: &str, leaders: &[(i32, i32)]) -> MetadataResponseTopic {
        MetadataResponseTopic {
            name: Some(name.into()),
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(i, (leader, epoch))| MetadataResponsePartition {
                    partition_index: i as i32,
                    leader_id: *leader,
                    leader_epoch: *epoch,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn now() -> Instant {
        crate::test_clock::start()
    }

    #[test]
    fn hostile_responses_do_not_mislead_routing() {
        let mut m = Metadata::default();
        let response = MetadataResponse {
            brokers: vec![
                broker(1, 9092),
                broker(1, 9093),
                broker(2, -5),
                broker(3, 9094),
            ],
            topics: vec![topic("t", &[(1, 0), (7, 0), (-1, 0)])],
            controller_id: 3,
            ..Default::default()
        };
        let report = m.apply(&response, Some(&["t".into(), "gone".into()]), now());
        assert_eq!(report.duplicate_brokers, vec![1]);
        assert_eq!(report.bad_brokers, vec![2]);
        assert_eq!(
            m.broker(1).map(|b| b.port),
            Some(9092),
            "the first entry wins"
        );
        assert_eq!(m.leader("t", 0), Leader::Known { node: 1, epoch: 0 });
        assert_eq!(m.leader("t", 1), Leader::None, "leader 7 is not a broker");
        assert_eq!(m.leader("t", 2), Leader::None);
        assert_eq!(m.leader("t", 3), Leader::UnknownPartition { count: 3 });
        assert_eq!(m.leader("t", -1), Leader::UnknownPartition { count: 3 });
        assert_eq!(m.leader("gone", 0), Leader::UnknownTopic);
        assert_eq!(m.leader("never-asked", 0), Leader::NotLoaded);
        assert_eq!(m.controller(), Some(3));
    }

    /// Every change moves the generation (the producer's routing follows it);
    /// forgetting what is already forgotten does not.
    #[test]
    fn every_change_moves_the_generation() {
        let mut m = Metadata::default();
        m.apply(
            &MetadataResponse {
                brokers: vec![broker(1, 1)],
                topics: vec![topic("t", &[(1, 0), (1, 0)])],
                ..Default::default()
            },
            None,
            now(),
        );
        let applied = m.generation;
        assert!(applied > 0);
        m.invalidate_leader("t", 1);
        assert_eq!(m.generation, applied + 1);
        m.invalidate_leader("t", 1);
        m.invalidate_leader("other", 0);
        assert_eq!(m.generation, applied + 1, "nothing changed");
        m.invalidate_topic("t");
        assert_eq!(m.generation, applied + 2);
        m.invalidate_topic("t");
        assert_eq!(m.generation, applied + 2, "nothing changed");
    }

    #[test]
    fn a_stale_leader_epoch_does_not_overwrite_a_newer_one() {
        let mut m = Metadata::default();
        let fresh = MetadataResponse {
            brokers: vec![broker(1, 1), broker(2, 2)],
            topics: vec![topic("t", &[(2, 5)])],
            ..Default::default()
        };
        m.apply(&fresh, None, now());
        let stale = MetadataResponse {
            brokers: vec![broker(1, 1), broker(2, 2)],
            topics: vec![topic("t", &[(1, 4)])],
            ..Default::default()
        };
        let report = m.apply(&stale, None, now());
        assert_eq!(report.stale_epochs, 1);
        assert_eq!(m.leader("t", 0), Leader::Known { node: 2, epoch: 5 });
        let newer = MetadataResponse {
            brokers: vec![broker(1, 1), broker(2, 2)],
            topics: vec![topic("t", &[(1, 6)])],
            ..Default::default()
        };
        assert_eq!(m.apply(&newer, None, now()).leader_changes, 1);
        assert_eq!(m.leader("t", 0), Leader::Known { node: 1, epoch: 6 });
    }

    #[test]
    fn an_empty_broker_list_keeps_the_known_brokers() {
        let mut m = Metadata::default();
        m.apply(
            &MetadataResponse {
                brokers: vec![broker(1, 1)],
                ..Default::default()
            },
            None,
            now(),
        );
        m.apply(&MetadataResponse::default(), None, now());
        assert!(m.broker(1).is_some());
    }
}
