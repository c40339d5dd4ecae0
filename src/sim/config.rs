//! How a simulated cluster is set up, with Kafka's own limits and their defaults, and
//! the faults it can inject.

use super::{SimError, SimSasl};
use std::time::Duration;

/// The most partitions one simulated topic may have by default
/// ([`ClusterConfig::max_partitions_per_topic`]). Kafka sets no such limit, but a
/// simulation holds every partition in memory, and a client asking for two billion
/// (found by fuzzing) must get an error, not exhaust the process.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// The most partitions the whole simulated cluster may hold by default
/// ([`ClusterConfig::max_partitions`]), for the same reason: one CreateTopics request
/// may name many topics (found by fuzzing).
pub const MAX_PARTITIONS_PER_CLUSTER: usize = 50_000;

/// The most brokers a simulated cluster may have: each is a listener when served,
/// and a port number has 16 bits.
pub const MAX_BROKERS: usize = 1024;

/// How the simulated cluster is set up.
///
/// The limits are Kafka's broker settings of the same names, with Kafka's defaults
/// where Kafka has a finite one; [`ClusterConfig::validate`] says whether a
/// configuration makes sense.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of brokers, with ids `0..brokers` (1 to [`MAX_BROKERS`]).
    pub brokers: usize,
    /// The cluster id Metadata reports.
    pub cluster_id: String,
    /// The host every broker advertises.
    pub host: String,
    /// The port broker `i` advertises is `base_port + i` until
    /// [`Cluster::set_advertised_port`](super::Cluster::set_advertised_port) says
    /// otherwise.
    pub base_port: u16,
    /// Create unknown topics on Metadata requests that allow it.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (and of a CreateTopics request asking -1).
    pub default_partitions: i32,
    /// Replication factor of auto-created topics (capped at the broker count).
    pub default_replication: i16,
    /// How long an `acks=1` batch takes to reach the followers.
    pub replication_delay: Duration,
    /// Largest request frame accepted (`socket.request.max.bytes`, 100 MiB); a larger
    /// size prefix closes the connection before any of its body is kept.
    pub max_frame_size: usize,
    /// Seed for everything random in the cluster (topic ids, SCRAM nonces, ...).
    pub seed: u64,
    /// Require SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) before any other API.
    pub sasl: Option<SimSasl>,
    /// Most client connections open at once (`max.connections`); one more is
    /// refused. Kafka's default has no limit; the simulation's is 10,000.
    pub max_connections: usize,
    /// A connection with no request in progress and no input for this long is
    /// closed (`connections.max.idle.ms`, 10 minutes), half-sent frames included.
    pub connections_max_idle: Duration,
    /// Most input bytes the cluster keeps for a connection beyond the request it is
    /// reading (1 MiB). A transport that gives only what
    /// [`Cluster::read_limit`](super::Cluster::read_limit) asks for never queues
    /// any; one that keeps pushing while its requests wait has the connection closed.
    pub max_queued_bytes: usize,
    /// Largest record batch a Produce may append (`message.max.bytes`, 1,048,588);
    /// a larger one is refused with MESSAGE_TOO_LARGE.
    pub message_max_bytes: usize,
    /// Most record bytes in one Fetch response (`fetch.max.bytes`, 55 MiB), whatever
    /// the request asks; as in Kafka, the first batch of the first partition with
    /// data is returned even when it is larger.
    pub fetch_max_bytes: usize,
    /// Most partitions the cluster holds, over every topic (default
    /// [`MAX_PARTITIONS_PER_CLUSTER`]).
    pub max_partitions: usize,
    /// Most partitions of one topic (default [`MAX_PARTITIONS_PER_TOPIC`]).
    pub max_partitions_per_topic: i32,
    /// Most partitions auto-created topics may hold together (25,000), so that
    /// Metadata requests naming unknown topics cannot take the room that explicit
    /// creations need.
    pub max_auto_created_partitions: usize,
    /// Shortest session timeout a JoinGroup may ask (`group.min.session.timeout.ms`,
    /// 6 seconds).
    pub group_min_session_timeout: Duration,
    /// Longest session timeout a JoinGroup may ask (`group.max.session.timeout.ms`,
    /// 30 minutes): the longest a pending member id or a silent member is kept.
    pub group_max_session_timeout: Duration,
    /// Partitions of the `__consumer_offsets` topic (`offsets.topic.num.partitions`;
    /// Kafka's default is 50, the simulation's 10). A group's coordinator is the
    /// leader of partition `abs(hashCode(group id)) % offsets_topic_partitions`.
    pub offsets_topic_partitions: i32,
    /// Replication factor of `__consumer_offsets` (`offsets.topic.replication.factor`,
    /// 3), capped at the broker count.
    pub offsets_topic_replication: i16,
    /// How long a member of a KIP-848 consumer group stays without a heartbeat
    /// before it is fenced (`group.consumer.session.timeout.ms`, 45 seconds).
    pub consumer_group_session_timeout: Duration,
    /// How often KIP-848 consumer group members are told to heartbeat
    /// (`group.consumer.heartbeat.interval.ms`, 5 seconds).
    pub consumer_group_heartbeat_interval: Duration,
    /// Most members one group may have (`group.max.size` and
    /// `group.consumer.max.size`; Kafka's default has no limit, the simulation's is
    /// 10,000): one more is refused with GROUP_MAX_SIZE_REACHED.
    pub group_max_size: usize,
    /// Whether the brokers speak the KIP-848 consumer group protocol
    /// (ConsumerGroupHeartbeat and ConsumerGroupDescribe; default true, as Kafka 4
    /// where `group.coordinator.rebalance.protocols` includes `consumer`). False
    /// stands for an older broker: ApiVersions leaves both APIs out and a request for
    /// them closes the connection, so clients fall back to the classic protocol.
    pub consumer_group_protocol: bool,
    /// Most incremental fetch sessions (KIP-227) each broker keeps
    /// (`max.incremental.fetch.session.cache.slots`, 1,000); when they are all in
    /// use, a new session evicts one idle for two minutes or, failing that, the
    /// fetch goes without a session.
    pub max_incremental_fetch_sessions: usize,
    /// The wall-clock time, in milliseconds since the Unix epoch, that the cluster's
    /// start stands for: the records the coordinator writes to `__consumer_offsets`
    /// (commit times, group state times) are stamped with it plus the virtual time
    /// elapsed. Default 0, so that a seed gives the same bytes; `kafka-sim` sets the
    /// real time.
    pub clock_origin_ms: i64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            brokers: 1,
            cluster_id: "kafka-sansio-sim".into(),
            host: "127.0.0.1".into(),
            base_port: 9092,
            auto_create_topics: true,
            default_partitions: 1,
            default_replication: 3,
            replication_delay: Duration::from_millis(5),
            max_frame_size: 100 * 1024 * 1024,
            seed: 0x5EED,
            sasl: None,
            max_connections: 10_000,
            connections_max_idle: Duration::from_secs(600),
            max_queued_bytes: 1024 * 1024,
            message_max_bytes: 1_048_588,
            fetch_max_bytes: 55 * 1024 * 1024,
            max_partitions: MAX_PARTITIONS_PER_CLUSTER,
            max_partitions_per_topic: MAX_PARTITIONS_PER_TOPIC,
            max_auto_created_partitions: MAX_PARTITIONS_PER_CLUSTER / 2,
            group_min_session_timeout: Duration::from_secs(6),
            group_max_session_timeout: Duration::from_secs(30 * 60),
            offsets_topic_partitions: 10,
            offsets_topic_replication: 3,
            consumer_group_session_timeout: Duration::from_secs(45),
            consumer_group_heartbeat_interval: Duration::from_secs(5),
            group_max_size: 10_000,
            consumer_group_protocol: true,
            max_incremental_fetch_sessions: 1000,
            clock_origin_ms: 0,
        }
    }
}

impl ClusterConfig {
    /// Whether the configuration makes sense: every count and size in its range.
    ///
    /// ```
    /// use kafka_sansio::sim::ClusterConfig;
    ///
    /// assert!(ClusterConfig::default().validate().is_ok());
    /// let absurd = ClusterConfig { brokers: 4_000_000_000, ..ClusterConfig::default() };
    /// assert!(absurd.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        let i32_max = i32::MAX as usize;
        let checks: [(bool, &str); 18] = [
            (
                (1..=MAX_BROKERS).contains(&self.brokers),
                "brokers: 1 to 1024",
            ),
            (
                (8..=i32_max).contains(&self.max_frame_size),
                "max frame size: 8 bytes to 2 GiB",
            ),
            (
                (1..=i32_max).contains(&self.fetch_max_bytes),
                "fetch max bytes: 1 byte to 2 GiB",
            ),
            (
                (1..=i32_max).contains(&self.message_max_bytes),
                "message max bytes: 1 byte to 2 GiB",
            ),
            (self.max_connections >= 1, "max connections: at least 1"),
            (
                !self.connections_max_idle.is_zero(),
                "connections max idle: more than 0",
            ),
            (
                self.max_partitions_per_topic >= 1,
                "max partitions per topic: at least 1",
            ),
            (self.max_partitions >= 1, "max partitions: at least 1"),
            (
                (1..=self.max_partitions_per_topic).contains(&self.default_partitions),
                "default partitions: 1 to the max partitions per topic",
            ),
            (
                self.default_replication >= 1,
                "default replication: at least 1",
            ),
            (
                !self.group_min_session_timeout.is_zero(),
                "group min session timeout: more than 0",
            ),
            (
                self.group_min_session_timeout <= self.group_max_session_timeout,
                "group session timeouts: min not above max",
            ),
            (
                (1..=self.max_partitions_per_topic).contains(&self.offsets_topic_partitions),
                "offsets topic partitions: 1 to the max partitions per topic",
            ),
            (
                self.offsets_topic_replication >= 1,
                "offsets topic replication: at least 1",
            ),
            (
                !self.consumer_group_session_timeout.is_zero()
                    && self.consumer_group_session_timeout.as_millis() <= i32::MAX as u128,
                "consumer group session timeout: 1 ms to 2^31 ms",
            ),
            (
                !self.consumer_group_heartbeat_interval.is_zero()
                    && self.consumer_group_heartbeat_interval < self.consumer_group_session_timeout,
                "consumer group heartbeat interval: more than 0, less than the session timeout",
            ),
            (self.group_max_size >= 1, "group max size: at least 1"),
            (
                self.max_incremental_fetch_sessions <= 1_000_000,
                "max incremental fetch sessions: at most 1,000,000",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, what)) => Err(SimError::InvalidConfig((*what).to_owned())),
            None => Ok(()),
        }
    }
}

/// Faults the cluster injects; all off by default. Switch them at any time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Throttle time reported in every response, in milliseconds.
    pub throttle_ms: i32,
    /// Extra virtual time before a Fetch response is sent.
    pub fetch_delay: Duration,
    /// Cut Fetch responses at max bytes in the middle of a batch, as some brokers do.
    pub partial_batches: bool,
    /// A planted bug, for proving that a simulation test can catch one: the chance
    /// that an `acks=all` batch is dropped from the log right after it was
    /// acknowledged. Never set this outside such a test.
    #[doc(hidden)]
    pub planted_bug_lose_acked: f64,
}
