//! A deterministic, in-memory Kafka cluster that speaks the wire protocol from the
//! broker side (feature `sim`).
//!
//! [`Cluster`] is a sans-IO state machine like the client side: bytes from a client
//! connection go in with [`Cluster::handle_input`], response bytes come out of
//! [`Cluster::poll_transmit`], and time is an argument ([`Cluster::handle_timeout`],
//! [`Cluster::poll_timeout`]). It never reads a clock or touches a socket, so one seed
//! gives one exact run, and the same cluster can be served on loopback by a runtime
//! adapter for clients in any language.
//!
//! What it implements: ApiVersions, Metadata (with auto-creation), Produce (acks 0, 1
//! and all; idempotent sequence checks), Fetch (min bytes and max wait in virtual time,
//! max bytes, optional partial last batch), ListOffsets (earliest, latest, by
//! timestamp), CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords,
//! InitProducerId, transactions (a transaction coordinator: InitProducerId with a
//! transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and
//! EndTxn, with commit and abort markers, the last stable offset and the aborted
//! transactions a read_committed Fetch is told of), FindCoordinator,
//! OffsetForLeaderEpoch, OffsetCommit/OffsetFetch,
//! the classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups), ListGroups over the groups of both protocols, and
//! KIP-848 (ConsumerGroupHeartbeat, ConsumerGroupDescribe). Other APIs are not
//! advertised, and a request for one closes the connection, as Kafka does with
//! requests it cannot parse.
//!
//! Connections are kept as Kafka's socket server keeps them: one request in progress
//! per connection, the next read only once its reply is taken ([`Cluster::read_limit`]),
//! so a client that does not read its replies stops being read; and every call costs
//! in proportion to what it concerns, not to how many connections, topics or batches
//! the cluster holds. Kafka's own limits are [`ClusterConfig`] fields with Kafka's
//! defaults: `connections.max.idle.ms`, `max.connections`, `message.max.bytes`,
//! `fetch.max.bytes`, the group session timeouts, and partition caps that
//! auto-creation cannot exhaust.
//!
//! Durability follows Kafka's rules closely enough to judge a client: a batch written
//! with `acks=all` is on every replica before it is acknowledged; one written with
//! `acks=1` reaches the followers only after [`ClusterConfig::replication_delay`], and
//! a leader crash before then loses it. Consumers only see data below the high
//! watermark (what every replica holds), and read_committed ones only below the
//! last stable offset (the first record of a transaction still open). A
//! transaction open longer than its timeout is aborted, and its producer fenced.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kafka_sansio::sim::{Cluster, ClusterConfig};
//!
//! let t0 = Instant::now(); // the only clock read: the caller's
//! let mut cluster = Cluster::new(ClusterConfig { brokers: 3, ..ClusterConfig::default() }, t0);
//! cluster.create_topic("orders", 4, 3).unwrap();
//! let conn = cluster.connect(0, t0).unwrap();
//! // ...feed request frames with handle_input(conn, now, bytes), read poll_transmit(conn)...
//! assert_eq!(cluster.partition_leader("orders", 0), Some(0));
//! cluster.crash_broker(0, t0 + Duration::from_millis(5));
//! assert_ne!(cluster.partition_leader("orders", 0), Some(0));
//! ```

mod assignors;
mod config;
mod conn;
mod consumer_groups;
mod coordinator;
mod fetch_sessions;
mod groups;
mod handlers;
mod harness;
mod log;
mod sasl;
mod topic_configs;
mod transactions;

pub use config::{
    ClusterConfig, Faults, MAX_BROKERS, MAX_PARTITIONS_PER_CLUSTER, MAX_PARTITIONS_PER_TOPIC,
};
pub use coordinator::{GroupProtocol, GroupSummary, MemberSummary};
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
pub(crate) use harness::SocketRead;
pub use harness::{ClientId, HostId, NetworkConfig, SimRng, Simulation};
pub use sasl::SimSasl;

use crate::messages::ApiKey;
use crate::wire::{Bytes, Uuid};
use conn::Conns;
pub(crate) use conn::Pending;
use log::PartitionLog;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

/// A client connection to one simulated broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Errors from the cluster's own API (not from clients' requests, which get Kafka
/// error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The broker id is not in the cluster.
    #[error("no broker {0} in the cluster")]
    NoSuchBroker(i32),
    /// The broker is crashed.
    #[error("broker {0} is down")]
    BrokerDown(i32),
    /// The topic already exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// The topic does not exist.
    #[error("topic {0} does not exist")]
    NoSuchTopic(String),
    /// A partition count or replication factor the cluster cannot hold.
    #[error("invalid topic layout: {0}")]
    InvalidLayout(String),
    /// [`ClusterConfig::max_connections`] connections are open already.
    #[error("the cluster has {0} connections open, its maximum")]
    TooManyConnections(usize),
    /// A configuration setting out of its range ([`ClusterConfig::validate`]).
    #[error("invalid cluster configuration: {0}")]
    InvalidConfig(String),
    /// The topic has no such partition.
    #[error("topic {0} has no partition {1}")]
    NoSuchPartition(String, i32),
    /// No replica of the partition is up to lead it.
    #[error("partition {0}-{1} has no leader")]
    PartitionOffline(String, i32),
}

#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub log: PartitionLog,
}

#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub id: Uuid,
    pub partitions: Vec<Partition>,
    /// Created by a Metadata request naming it (counts against
    /// [`ClusterConfig::max_auto_created_partitions`]).
    pub auto_created: bool,
    /// The cluster's own topic (`__consumer_offsets`): clients cannot write to it,
    /// delete it or grow it, and its partitions do not count against the caps on
    /// what clients create.
    pub internal: bool,
    /// The topic's config overrides (CreateTopics, IncrementalAlterConfigs), by name.
    pub configs: BTreeMap<String, String>,
}

/// Who creates a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicOrigin {
    /// CreateTopics or [`Cluster::create_topic`].
    Created,
    /// A Metadata request naming it.
    Auto,
    /// The cluster itself (`__consumer_offsets`).
    Internal,
}

#[derive(Debug, Clone)]
struct Broker {
    port: i32,
    up: bool,
}

/// A deterministic in-memory Kafka cluster, driven like every sans-IO state machine.
///
/// Driving contract, for each client connection `c` (see [`Cluster::connect`]):
/// 1. read at most [`read_limit(c)`](Self::read_limit) bytes from the client (none
///    while it is 0: a request is in progress or its reply not yet taken) and give
///    them to [`handle_input(c, now, bytes)`](Self::handle_input);
/// 2. take the reply with [`poll_transmit(c)`](Self::poll_transmit) and write it;
///    read again (1) only once it is written, as Kafka does, so that a client that
///    does not read its replies stops being read;
/// 3. drain [`poll_ready`](Self::poll_ready): connections whose parked request was
///    answered (go to 2 for each), and [`poll_closed`](Self::poll_closed):
///    connections to close;
/// 4. when [`poll_timeout`](Self::poll_timeout) passes, call
///    [`handle_timeout(now)`](Self::handle_timeout) and go to 3.
///
/// `now` must never go backwards. Every call does work in proportion to what it is
/// about (its connection, the partitions a request names, the requests whose time
/// came), not to how many connections, topics or batches the cluster holds.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) config: ClusterConfig,
    /// Faults to inject; change them between calls.
    pub faults: Faults,
    brokers: Vec<Broker>,
    pub(crate) topics: BTreeMap<String, Topic>,
    /// Topic names by topic id.
    topic_ids: HashMap<Uuid, String>,
    /// Partitions over every topic, and over auto-created ones.
    partition_total: usize,
    auto_partition_total: usize,
    pub(crate) conns: Conns,
    /// Partitions with an `acks=1` batch replicating, by when it is on every replica.
    replications: BTreeMap<(Instant, u64), (String, i32)>,
    next_replication: u64,
    pub(crate) next_producer_id: i64,
    /// Errors to inject, by API: runs of (error code, count), oldest first.
    injected: BTreeMap<i16, VecDeque<(i16, usize)>>,
    /// Offsets committed by groups without members (OffsetCommit with generation -1),
    /// by (group, topic, partition).
    pub(crate) committed: BTreeMap<(String, String, i32), handlers::CommittedOffset>,
    /// Consumer groups (the classic protocol), by group id.
    pub(crate) groups: groups::Groups,
    /// Consumer groups of the KIP-848 protocol, by group id.
    pub(crate) consumer_groups: consumer_groups::ConsumerGroups,
    /// Records for `__consumer_offsets` (committed offsets), until written.
    pub(crate) outbox: coordinator::Outbox,
    /// Errors to inject for one group ([`Cluster::inject_group_error`]).
    group_injected: coordinator::GroupInjections,
    /// Every broker's incremental fetch sessions (KIP-227).
    pub(crate) fetch_sessions: fetch_sessions::FetchSessions,
    /// The transaction coordinator's transactional ids.
    pub(crate) transactions: transactions::Transactions,
    rng: u64,
    /// When the cluster started (the coordinator's records count time from it).
    started: Instant,
    now: Instant,
}

impl Cluster {
    /// A cluster with no topics; every broker up. A broker count out of range
    /// ([`ClusterConfig::validate`]) is brought into it.
    #[must_use]
    pub fn new(config: ClusterConfig, now: Instant) -> Self {
        let brokers = (0..config.brokers.clamp(1, MAX_BROKERS))
            .map(|i| Broker {
                port: i32::from(config.base_port) + i as i32,
                up: true,
            })
            .collect();
        let rng = config.seed ^ 0x9E37_79B9_7F4A_7C15;
        let clock = coordinator::WallClock {
            start: now,
            origin_ms: config.clock_origin_ms,
        };
        let client_host = format!("/{}", config.host);
        let groups = groups::Groups::new(groups::ClassicSettings {
            secret: rng.rotate_left(17) ^ 0x6A09_E667,
            clock,
            session_timeouts: (
                config.group_min_session_timeout,
                config.group_max_session_timeout,
            ),
            client_host: client_host.clone(),
            max_size: config.group_max_size,
        });
        let consumer_groups =
            consumer_groups::ConsumerGroups::new(consumer_groups::ConsumerSettings {
                session_timeout: config.consumer_group_session_timeout,
                heartbeat_interval: config.consumer_group_heartbeat_interval,
                max_size: config.group_max_size,
                client_host,
                secret: rng.rotate_left(31) ^ 0xBB67_AE85,
            });
        Cluster {
            groups,
            consumer_groups,
            outbox: Vec::new(),
            group_injected: BTreeMap::new(),
            fetch_sessions: fetch_sessions::FetchSessions::default(),
            transactions: transactions::Transactions::default(),
            started: now,
            config,
            faults: Faults::default(),
            brokers,
            topics: BTreeMap::new(),
            topic_ids: HashMap::new(),
            partition_total: 0,
            auto_partition_total: 0,
            conns: Conns::default(),
            replications: BTreeMap::new(),
            next_replication: 0,
            next_producer_id: 1000,
            injected: BTreeMap::new(),
            committed: BTreeMap::new(),
            rng,
            now,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // splitmix64: small, fast, and the same on every platform.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Sets the port broker `id` advertises (a server adapter calls this once it has
    /// bound the listener).
    pub fn set_advertised_port(&mut self, id: i32, port: u16) -> Result<(), SimError> {
        let b = self.broker_mut(id)?;
        b.port = i32::from(port);
        Ok(())
    }

    fn broker_mut(&mut self, id: i32) -> Result<&mut Broker, SimError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.brokers.get_mut(i))
            .ok_or(SimError::NoSuchBroker(id))
    }

    /// Broker ids, in order.
    pub fn broker_ids(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.brokers.len()).map(|i| i as i32)
    }

    /// The broker advertising `port` (on the configured host), if any.
    #[must_use]
    pub fn broker_at(&self, port: u16) -> Option<i32> {
        self.brokers
            .iter()
            .position(|b| b.port == i32::from(port))
            .map(|i| i as i32)
    }

    /// The bootstrap list a client would be given: every broker's `host:port`.
    #[must_use]
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| format!("{}:{}", self.config.host, b.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether broker `id` is up.
    #[must_use]
    pub fn is_up(&self, id: i32) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.brokers.get(i))
            .is_some_and(|b| b.up)
    }

    pub(crate) fn live_brokers(&self) -> Vec<(i32, i32)> {
        self.brokers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.up)
            .map(|(i, b)| (i as i32, b.port))
            .collect()
    }

    pub(crate) fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Creates a topic; replicas are spread round-robin from partition index.
    ///
    /// # Errors
    /// The topic exists, or the layout is out of the cluster's limits (partitions per
    /// topic and in all, replication up to the broker count).
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication: i16,
    ) -> Result<Uuid, SimError> {
        self.create_topic_as(name, partitions, replication, TopicOrigin::Created)
    }

    /// Why a topic cannot grow from `now` to `after` partitions (`auto`: an
    /// auto-created topic), if it cannot: the per-topic, cluster and auto-creation
    /// limits.
    pub(crate) fn partition_room(&self, now: usize, after: i32, auto: bool) -> Result<(), String> {
        let config = &self.config;
        let added = usize::try_from(after).unwrap_or(0).saturating_sub(now);
        if !(1..=config.max_partitions_per_topic).contains(&after) {
            Err(format!(
                "{after} partitions; a topic has 1 to {}",
                config.max_partitions_per_topic
            ))
        } else if self.partition_total + added > config.max_partitions {
            Err(format!(
                "{added} more partitions; the cluster holds {} of at most {}",
                self.partition_total, config.max_partitions
            ))
        } else if auto && self.auto_partition_total + added > config.max_auto_created_partitions {
            Err(format!(
                "{added} more partitions of auto-created topics, which hold {} of at most {}",
                self.auto_partition_total, config.max_auto_created_partitions
            ))
        } else {
            Ok(())
        }
    }

    /// [`Cluster::create_topic`], by whom `origin` says.
    pub(crate) fn create_topic_as(
        &mut self,
        name: &str,
        partitions: i32,
        replication: i16,
        origin: TopicOrigin,
    ) -> Result<Uuid, SimError> {
        if self.topics.contains_key(name) {
            return Err(SimError::TopicExists(name.into()));
        }
        if name == coordinator::OFFSETS_TOPIC && origin != TopicOrigin::Internal {
            return Err(SimError::InvalidLayout(format!(
                "{name} is the group coordinator's own topic"
            )));
        }
        let n = self.brokers.len() as i32;
        if replication < 1 || i32::from(replication) > n {
            return Err(SimError::InvalidLayout(format!(
                "replication {replication}, {n} brokers"
            )));
        }
        let auto = origin == TopicOrigin::Auto;
        let internal = origin == TopicOrigin::Internal;
        if !internal {
            self.partition_room(0, partitions, auto)
                .map_err(SimError::InvalidLayout)?;
        }
        let hi = self.next_random();
        let lo = self.next_random();
        let id = Uuid::from_u128((u128::from(hi) << 64) | u128::from(lo));
        let partitions: Vec<Partition> = (0..partitions)
            .map(|p| self.new_partition(p, replication))
            .collect();
        if !internal {
            self.partition_total += partitions.len();
        }
        if auto {
            self.auto_partition_total += partitions.len();
        }
        self.topics.insert(
            name.into(),
            Topic {
                id,
                partitions,
                auto_created: auto,
                internal,
                configs: BTreeMap::new(),
            },
        );
        self.topic_ids.insert(id, name.into());
        Ok(id)
    }

    pub(crate) fn new_partition(&self, index: i32, replication: i16) -> Partition {
        let n = self.brokers.len() as i32;
        let replicas: Vec<i32> = (0..i32::from(replication))
            .map(|r| (index + r) % n)
            .collect();
        let leader = replicas
            .iter()
            .copied()
            .find(|b| self.is_up(*b))
            .unwrap_or(-1);
        Partition {
            leader,
            leader_epoch: 0,
            replicas,
            log: PartitionLog::new(),
        }
    }

    /// How many partitions the cluster holds, over every topic clients created (the
    /// internal `__consumer_offsets` is not counted).
    #[must_use]
    pub fn partition_count(&self) -> usize {
        self.partition_total
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<&Partition> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        self.topics
            .get_mut(topic)?
            .partitions
            .get_mut(usize::try_from(partition).ok()?)
    }

    pub(crate) fn partition_by_id(&self, topic: Uuid, partition: i32) -> Option<&Partition> {
        self.partition(self.topic_ids.get(&topic)?, partition)
    }

    /// The current leader of a partition (`None` if unknown or offline).
    #[must_use]
    pub fn partition_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self.partition(topic, partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// The high watermark and log start offset of a partition.
    #[must_use]
    pub fn partition_offsets(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let p = self.partition(topic, partition)?;
        Some((p.log.high_watermark(self.now), p.log.log_start_offset))
    }

    /// The last stable offset of a partition: where read_committed consumers stop
    /// (the first offset of a transaction still open there, or the high watermark).
    #[must_use]
    pub fn partition_last_stable_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let p = self.partition(topic, partition)?;
        Some(p.log.last_stable_offset(self.now))
    }

    /// The batches a partition holds (committed or not), as the leader stored them.
    #[must_use]
    pub fn partition_batches(&self, topic: &str, partition: i32) -> Vec<Bytes> {
        self.partition(topic, partition)
            .map(|p| p.log.batches.iter().map(|b| b.bytes.clone()).collect())
            .unwrap_or_default()
    }

    /// Record batch bytes the cluster holds, over every partition.
    #[must_use]
    pub fn stored_bytes(&self) -> u64 {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .map(|p| p.log.stored_bytes())
            .sum()
    }

    /// How many consumer groups the coordinator holds, of either protocol (groups
    /// left empty without committed offsets are removed).
    #[must_use]
    pub fn group_count(&self) -> usize {
        self.groups.len() + self.consumer_groups.len()
    }

    /// How many incremental fetch sessions (KIP-227) broker `broker` keeps.
    #[must_use]
    pub fn fetch_session_count(&self, broker: i32) -> usize {
        self.fetch_sessions.count(broker)
    }

    /// The offset group `group` committed for a partition (OffsetCommit), if any.
    #[must_use]
    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.committed
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .map(|c| c.offset)
    }

    /// The name of the topic with id `id`.
    pub(crate) fn topic_name(&self, id: Uuid) -> Option<&String> {
        self.topic_ids.get(&id)
    }

    /// Deletes a topic, and the offsets groups committed for it (as Kafka does); its
    /// parked fetches wake to learn it is gone.
    pub(crate) fn delete_topic(&mut self, name: &str) {
        let Some(topic) = self.topics.remove(name) else {
            return;
        };
        self.topic_ids.remove(&topic.id);
        if !topic.internal {
            self.partition_total -= topic.partitions.len();
        }
        if topic.auto_created {
            self.auto_partition_total -= topic.partitions.len();
        }
        for p in 0..topic.partitions.len() {
            self.conns.wake_partition(topic.id, p as i32);
        }
        // As Kafka: the groups' offsets for the topic go, with tombstones.
        let outbox = &mut self.outbox;
        self.committed.retain(|(g, t, p), _| {
            let keep = t != name;
            if !keep {
                outbox.extend(coordinator::CoordinatorRecord::offset_commit(
                    g, t, *p, None,
                ));
            }
            keep
        });
        self.write_coordinator_records();
    }

    /// Adds partitions at the end of topic `name` (CreatePartitions).
    pub(crate) fn add_partitions(&mut self, name: &str, new: Vec<Partition>) {
        if let Some(topic) = self.topics.get_mut(name) {
            self.partition_total += new.len();
            if topic.auto_created {
                self.auto_partition_total += new.len();
            }
            topic.partitions.extend(new);
        }
    }

    /// An `acks=1` batch appended to `topic`/`partition` reaches every replica at
    /// `at`: its fetches wake then.
    pub(crate) fn replicating(&mut self, topic: &str, partition: i32, at: Instant) {
        self.next_replication += 1;
        self.replications
            .insert((at, self.next_replication), (topic.to_owned(), partition));
    }

    /// Batches replicated by `now` become visible: the fetches waiting for them wake.
    fn replicate_due(&mut self, now: Instant) {
        while let Some(entry) = self.replications.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (topic, partition) = entry.remove();
            if let Some(t) = self.topics.get_mut(&topic)
                && let Some(p) = usize::try_from(partition)
                    .ok()
                    .and_then(|i| t.partitions.get_mut(i))
            {
                p.log.settle(now);
                self.conns.wake_partition(t.id, partition);
            }
        }
    }

    /// Topic names, sorted.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// Crashes broker `id`: its connections close, and every partition it led moves to
    /// another live replica, losing the batches that had not reached the followers.
    pub fn crash_broker(&mut self, id: i32, now: Instant) {
        self.advance(now);
        let Ok(b) = self.broker_mut(id) else { return };
        b.up = false;
        let victims: Vec<ConnectionId> = self
            .conns
            .map
            .iter()
            .filter(|(_, c)| c.broker == id)
            .map(|(k, _)| *k)
            .collect();
        for c in victims {
            self.close(c);
        }
        let up: Vec<bool> = self.brokers.iter().map(|b| b.up).collect();
        let now = self.now;
        // The groups whose coordinator was this broker move with their partitions.
        let moved: Vec<i32> = self
            .topics
            .get(coordinator::OFFSETS_TOPIC)
            .map(|t| {
                (0..t.partitions.len() as i32)
                    .filter(|i| t.partitions[*i as usize].leader == id)
                    .collect()
            })
            .unwrap_or_default();
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.leader == id {
                    p.log.truncate_unreplicated(now);
                    p.leader = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| {
                            usize::try_from(*r)
                                .ok()
                                .and_then(|i| up.get(i))
                                .copied()
                                .unwrap_or(false)
                        })
                        .unwrap_or(-1);
                    p.leader_epoch += 1;
                }
            }
        }
        // Fetches parked on other brokers may read what the crash truncated.
        self.conns.wake_all();
        self.fetch_sessions.broker_gone(id);
        self.coordinator_moved(&moved);
        self.run_woken();
    }

    /// Brings broker `id` back; offline partitions it replicates get it as leader.
    pub fn restart_broker(&mut self, id: i32, now: Instant) {
        self.advance(now);
        let Ok(b) = self.broker_mut(id) else { return };
        b.up = true;
        let mut moved = Vec::new();
        for (name, topic) in &mut self.topics {
            for (i, p) in topic.partitions.iter_mut().enumerate() {
                if p.leader < 0 && p.replicas.contains(&id) {
                    p.leader = id;
                    p.leader_epoch += 1;
                    if name == coordinator::OFFSETS_TOPIC {
                        moved.push(i as i32);
                    }
                }
            }
        }
        self.coordinator_moved(&moved);
    }

    /// Moves a partition's leadership to replica `to` in an orderly way (the new
    /// leader first catches up, so nothing is lost).
    pub fn move_leader(&mut self, topic: &str, partition: i32, to: i32) -> Result<(), SimError> {
        if !self.is_up(to) {
            return Err(SimError::BrokerDown(to));
        }
        let now = self.now;
        let t = self
            .topics
            .get_mut(topic)
            .ok_or_else(|| SimError::NoSuchTopic(topic.into()))?;
        let p = t
            .partitions
            .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
            .ok_or_else(|| SimError::NoSuchTopic(format!("{topic}-{partition}")))?;
        if !p.replicas.contains(&to) {
            p.replicas.push(to);
        }
        p.log.replicate_all(now);
        p.leader = to;
        p.leader_epoch += 1;
        // Its parked fetches now ask a broker that no longer leads it.
        let id = t.id;
        self.conns.wake_partition(id, partition);
        self.run_woken();
        Ok(())
    }

    /// The next `count` requests of `api` are answered with `error` (in every
    /// partition or at the top level, as the API has it) and change nothing. Any
    /// count is held in constant space.
    pub fn inject_error(&mut self, api: ApiKey, error: crate::messages::ErrorCode, count: usize) {
        if count == 0 {
            return;
        }
        let q = self.injected.entry(api.as_i16()).or_default();
        match q.back_mut() {
            Some((code, n)) if *code == error.code() => *n = n.saturating_add(count),
            _ => q.push_back((error.code(), count)),
        }
    }

    /// How many errors injected for `api` are still waiting for a request.
    #[must_use]
    pub fn injected_pending(&self, api: ApiKey) -> usize {
        self.injected.get(&api.as_i16()).map_or(0, |q| {
            q.iter().fold(0usize, |sum, (_, n)| sum.saturating_add(*n))
        })
    }

    pub(crate) fn take_injected(&mut self, api: ApiKey) -> Option<i16> {
        let q = self.injected.get_mut(&api.as_i16())?;
        let (code, n) = q.front_mut()?;
        let code = *code;
        *n -= 1;
        if *n == 0 {
            q.pop_front();
        }
        Some(code)
    }
}
